"""Synchronous Redis clients, one per process (thread-safe, pooled: a call reuses connections rather than
opening its own), for the deployment's bookkeeping and the calls' cached audio."""
from __future__ import annotations

import functools
import os

import redis
from django.conf import settings

TIMEOUT_S = 2.0  # bookkeeping must never hold up a call: a Redis that does not answer is treated as unknown


@functools.cache
def _client(url: str, pid: int, decode_responses: bool) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                decode_responses=decode_responses)


def client() -> redis.Redis:
    """Values as text."""
    return _client(settings.REDIS_URL, os.getpid(), True)  # a forked child opens its own connections


def binary_client() -> redis.Redis:
    """Values as bytes."""
    return _client(settings.REDIS_URL, os.getpid(), False)
