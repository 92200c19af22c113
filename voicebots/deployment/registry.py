"""The deployment's web processes and the calls each carries, kept in Redis by heartbeats.

Each web process publishes a small hash under `voicebots:web:<process id>` (calls, max_calls, draining, host,
pid, started_at) every HEARTBEAT_INTERVAL_S, and at once when a call starts or ends or it starts draining. The
key expires after three missed heartbeats, so a process killed with SIGKILL drops out of the view by itself:
the answer URL reads the view for capacity, the reaper to find calls whose process is gone.

The heartbeat is a thread, not a task on the event loop: a busy loop must not make a live process look dead,
and publishing never costs a call's loop a Redis round trip.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

import redis

from . import process
from .redis_client import client

logger = logging.getLogger(__name__)

KEY_PREFIX = "voicebots:web:"


@dataclass(frozen=True)
class ProcessState:
    process_id: str
    host: str
    pid: int
    calls: int
    max_calls: int
    draining: bool
    started_at: float

    @classmethod
    def from_hash(cls, process_id: str, fields: dict[str, str]) -> "ProcessState":
        return cls(process_id, fields.get("host", ""), int(fields.get("pid", 0)), int(fields.get("calls", 0)),
                   int(fields.get("max_calls", 0)), fields.get("draining") == "1",
                   float(fields.get("started_at", 0)))


class _Local:
    """This process's own state, published by its heartbeat."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: set[str] = set()
        self.draining = False
        self.started_at = time.time()


_local = _Local()
_heartbeat: "Heartbeat | None" = None
_heartbeat_lock = threading.Lock()


def call_started(call_id: str) -> None:
    with _local.lock:
        _local.calls.add(call_id)
    _poke()


def call_ended(call_id: str) -> None:
    with _local.lock:
        _local.calls.discard(call_id)
    _poke()


def live_calls() -> int:
    """Calls this process carries now."""
    with _local.lock:
        return len(_local.calls)


def start_draining() -> None:
    _local.draining = True
    _poke()


def is_draining() -> bool:
    return _local.draining


def _snapshot() -> dict[str, str | int | float]:
    with _local.lock:
        calls = len(_local.calls)
    return {"host": socket.gethostname(), "pid": os.getpid(), "calls": calls, "max_calls": process.max_calls(),
            "draining": 1 if _local.draining else 0, "started_at": _local.started_at}


class Heartbeat:
    def __init__(self) -> None:
        self.key = KEY_PREFIX + process.process_id()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deployment-heartbeat", daemon=True)

    def start(self) -> None:
        self.publish()  # in the view from the first moment, before any request is served
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def publish(self) -> None:
        try:
            with client().pipeline(transaction=True) as pipe:
                pipe.hset(self.key, mapping=_snapshot())
                pipe.expire(self.key, max(1, round(process.heartbeat_ttl_s())))
                pipe.execute()
        except redis.RedisError as error:  # the next beat tries again; calls go on meanwhile
            logger.warning("Could not publish this process's heartbeat: %s", error)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(process.heartbeat_interval_s())
            self._wake.clear()
            if not self._stopped.is_set():
                self.publish()

    def stop(self) -> None:
        """Leave the view at once (a clean exit), instead of after the key expires."""
        self._stopped.set()
        self._wake.set()
        try:
            client().delete(self.key)
        except redis.RedisError:
            pass


def ensure_started() -> None:
    """Start this process's heartbeat (a web process, once; later calls do nothing)."""
    global _heartbeat
    with _heartbeat_lock:
        if _heartbeat is None or _heartbeat.key != KEY_PREFIX + process.process_id():
            _heartbeat = Heartbeat()
            _heartbeat.start()


def stop() -> None:
    global _heartbeat
    with _heartbeat_lock:
        if _heartbeat is not None:
            _heartbeat.stop()
            _heartbeat = None


def _poke() -> None:
    if _heartbeat is not None:
        _heartbeat.poke()


def deployment() -> list[ProcessState]:
    """Every web process heard from lately. Raises redis.RedisError when Redis cannot say."""
    redis_client = client()
    keys = list(redis_client.scan_iter(match=KEY_PREFIX + "*", count=500))
    if not keys:
        return []
    with redis_client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        hashes = pipe.execute()
    return [ProcessState.from_hash(key[len(KEY_PREFIX):], fields) for key, fields in zip(keys, hashes) if fields]


def alive_process_ids() -> set[str]:
    return {state.process_id for state in deployment()}
