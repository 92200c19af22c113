"""One synchronous Redis client per process for the deployment's bookkeeping (thread-safe, pooled)."""
from __future__ import annotations

import functools
import os

import redis
from django.conf import settings

TIMEOUT_S = 2.0  # bookkeeping must never hold up a call: a Redis that does not answer is treated as unknown


@functools.cache
def _client(url: str, pid: int) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                decode_responses=True)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL, os.getpid())  # a forked child opens its own connections
