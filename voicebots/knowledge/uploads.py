"""Accepting uploads: size, type by content, checksum, and the account-wide duplicate check."""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from rest_framework import exceptions

from voicebots.api.errors import Conflict, PayloadTooLarge, UnsupportedFileType

from . import filetypes
from .models import Knowledgebase

_SNIFF_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CheckedUpload:
    file: UploadedFile
    name: str
    size: int
    content_type: str
    checksum: str


def safe_file_name(name: str | None) -> str:
    """An upload's name as shown and stored: no folders, no control or format characters (such as the
    right-to-left override that makes "invoice\u202efdp.exe" read "invoiceexe.pdf"), at most 255 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if char.isspace() else char for char in name
                   if char.isspace() or unicodedata.category(char) not in ("Cc", "Cf"))
    return " ".join(name.split())[:255] or "document"


def fingerprint(upload: UploadedFile) -> tuple[bytes, str]:
    """The first MiB (to recognise the type) and the sha256 of the whole upload."""
    digest = hashlib.sha256()
    head = bytearray()
    for chunk in upload.chunks():
        digest.update(chunk)
        if len(head) < _SNIFF_BYTES:
            head.extend(chunk[: _SNIFF_BYTES - len(head)])
    upload.seek(0)
    return bytes(head), digest.hexdigest()


def check_upload(request, account, *, replacing: Knowledgebase | None = None) -> CheckedUpload:
    upload = request.FILES.get("file") if hasattr(request, "FILES") else None
    if upload is None:
        raise exceptions.ValidationError({"file": ["Send the document as the multipart field 'file'."]})
    limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
    if upload.size > limit:
        raise PayloadTooLarge(f"The file is {upload.size} bytes; the limit is {limit} bytes.")
    if upload.size == 0:
        raise exceptions.ValidationError({"file": ["The file is empty."]})
    head, checksum = fingerprint(upload)
    name = safe_file_name(upload.name)
    try:
        content_type = filetypes.sniff(name, head)
    except filetypes.UnsupportedDocument as exc:
        raise UnsupportedFileType(f"Unsupported file: {exc}")
    duplicate = Knowledgebase.objects.filter(account=account, checksum=checksum)
    if replacing is not None:
        duplicate = duplicate.exclude(pk=replacing.pk)
    existing = duplicate.first()
    if existing is not None:
        raise Conflict(
            f"This file was already uploaded as document {existing.id} ('{existing.name}'); it is not stored twice."
        )
    return CheckedUpload(upload, name, upload.size, content_type, checksum)
