"""Encryption at rest for secrets stored in the database (Fernet: AES-128-CBC + HMAC-SHA256)."""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        derived = hashlib.sha256(b"voicebots-field-encryption:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(derived).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEYS (or SECRET_KEY) changed"
        ) from exc


class EncryptedTextField(models.TextField):
    """A text field whose value is encrypted in the database and plain in Python.

    Values cannot be filtered on. Empty strings are stored as-is so "not set" stays cheap to check.
    """

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)
