"""Recognise an uploaded document by its content, not only by its name."""
from __future__ import annotations

import codecs
import io
import zipfile
from pathlib import PurePath

import charset_normalizer

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"

CONTENT_TYPES = (PDF, DOCX, HTML, MARKDOWN, TEXT)
SUPPORTED_DESCRIPTION = "PDF, DOCX, Markdown, plain text or HTML"
_MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
_HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
_SNIFF_BYTES = 64 * 1024


class UnsupportedDocument(ValueError):
    """The bytes are not a document type we can read; the message says why, for the user."""


def detect_text_encoding(sample: bytes) -> str | None:
    """The encoding of `sample` if it is text, or None if it looks binary."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
                      (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if sample.startswith(bom):
            return name
    if len(sample) >= 4:
        # UTF-16 without a BOM: Latin-script text has a NUL in (nearly) every other byte. Text with some NULs
        # in it is not UTF-16: read as such, its ordinary bytes would pair up into CJK-looking garbage.
        even_nuls = sample[0::2].count(0) / max(1, len(sample[0::2]))
        odd_nuls = sample[1::2].count(0) / max(1, len(sample[1::2]))
        if odd_nuls > 0.9 and even_nuls < 0.05:
            return "utf-16-le"
        if even_nuls > 0.9 and odd_nuls < 0.05:
            return "utf-16-be"
    if b"\x00" in sample:
        return None
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:  # a multi-byte character cut by the sample's end
            return "utf-8"
    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        return None
    decoded = str(best)
    controls = sum(1 for ch in decoded if ord(ch) < 32 and ch not in "\t\n\r\f")
    return best.encoding if controls <= len(decoded) * 0.01 else None


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:2048].lower()
    return head.startswith("<!doctype html") or "<html" in head or ("<body" in head and "</" in head)


def sniff(name: str, data: bytes) -> str:
    """The content type of an upload, or UnsupportedDocument with a reason."""
    if not data:
        raise UnsupportedDocument("The file is empty.")
    suffix = PurePath(name).suffix.lower()
    if b"%PDF-" in data[:1024]:
        return PDF
    if data.startswith(b"PK\x03\x04"):
        if _is_docx(data):
            return DOCX
        raise UnsupportedDocument("This archive is not a DOCX document.")
    sample = data[:_SNIFF_BYTES]
    encoding = detect_text_encoding(sample)
    if encoding is None and b"\x00" in sample and detect_text_encoding(sample.replace(b"\x00", b"")):
        raise UnsupportedDocument("The file contains NUL bytes, so it is not plain text (a UTF-16 text file "
                                  "needs its byte-order mark); save it as UTF-8.")
    if encoding is None:
        raise UnsupportedDocument(
            f"The file's content is not a supported document ({SUPPORTED_DESCRIPTION}), whatever its name says."
        )
    text = data[:_SNIFF_BYTES].decode(encoding, errors="ignore")
    if suffix in _HTML_SUFFIXES or _looks_like_html(text):
        return HTML
    if suffix in _MARKDOWN_SUFFIXES:
        return MARKDOWN
    return TEXT
