"""This process's name in the deployment, and the settings of how much it may carry."""
from __future__ import annotations

import os
import secrets
import socket

from django.conf import settings

_ids: dict[int, str] = {}


def process_id() -> str:
    """host:pid:tag, new in a forked child. The tag tells apart a restarted process that got the same pid
    (in containers every server is pid 1 or close to it)."""
    pid = os.getpid()
    if pid not in _ids:
        _ids.clear()
        _ids[pid] = f"{socket.gethostname()}:{pid}:{secrets.token_hex(3)}"
    return _ids[pid]


def max_calls() -> int:
    return settings.MAX_CALLS_PER_PROCESS


def heartbeat_interval_s() -> float:
    return float(settings.HEARTBEAT_INTERVAL_S)


def heartbeat_ttl_s() -> float:
    """A process not heard from for this long is gone: three missed heartbeats."""
    return 3 * heartbeat_interval_s()
