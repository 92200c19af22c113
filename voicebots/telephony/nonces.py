"""Plivo's signed requests are good once: each signature's nonce is remembered, and a replay is refused.

Plivo's V3 signature carries a random nonce but no timestamp, so a captured request would otherwise stay
valid for ever. The nonce is remembered (in the cache, Redis) for PLIVO_NONCE_TTL seconds; after that the
request it signed has no effect left to replay: stream tokens expire within STREAM_TOKEN_MAX_AGE and a live
call takes only one stream (see access.py).
"""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def first_use(account_id, nonce: str) -> bool:
    """Whether this account has not seen `nonce` before; remembers it either way (atomic: SET NX)."""
    digest = hashlib.sha256(f"{account_id}:{nonce}".encode()).hexdigest()[:32]
    return cache.add(f"plivo-nonce:{digest}", 1, timeout=settings.PLIVO_NONCE_TTL)
