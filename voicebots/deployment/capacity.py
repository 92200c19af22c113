"""Whether the deployment can take one more call: asked by the answer URL before a call is connected.

Plivo's answer request and the call's audio stream are two connections, which a load balancer may send to two
different web processes, so the answer cannot reserve a place in one process: it counts the whole deployment.
Capacity is the sum of MAX_CALLS_PER_PROCESS over the web processes that are not draining; the load is their
live calls plus the calls answered in the last few seconds whose stream has not started yet (each admission
leaves a short reservation, taken back when its stream starts), so that a burst of answers cannot all pass on
the same count.

Two answers checked at the same instant can still both pass on the last place: capacity is a soft limit,
exceeded by at most the answers arriving within one Redis round trip. When Redis cannot say, or no web process
has reported yet (a development server without heartbeats), calls are taken: refusing calls because
bookkeeping failed would be worse than carrying one too many.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from . import registry
from .redis_client import client

logger = logging.getLogger(__name__)

RESERVATIONS_KEY = "voicebots:answering"
RESERVATION_S = 20.0  # Plivo opens the stream within a second or two of our answer; past this it is not coming


@dataclass(frozen=True)
class Admission:
    admitted: bool
    capacity: int | None  # None: unknown (no web process reported, or Redis did not answer)
    load: int

    @property
    def reason(self) -> str:
        if self.admitted:
            return ""
        if not self.capacity:
            return "Refused: every web process of the deployment is draining (shutting down)."
        return f"Refused: the deployment was at capacity ({self.load} of {self.capacity} calls)."


def admit(call_id: str) -> Admission:
    """Take one more call (and reserve its place until its stream starts), or refuse it."""
    try:
        processes = registry.deployment()
        if not processes:
            return Admission(True, None, 0)
        now = time.time()
        redis_client = client()
        redis_client.zremrangebyscore(RESERVATIONS_KEY, 0, now - RESERVATION_S)
        pending = redis_client.zcard(RESERVATIONS_KEY)
        serving = [state for state in processes if not state.draining]
        capacity = sum(state.max_calls for state in serving)
        load = sum(state.calls for state in serving) + pending
        if load >= capacity:
            logger.warning("Refusing a call: %s of %s calls (%s answered, not yet streaming); %s of %s web "
                           "processes draining", load, capacity, pending, len(processes) - len(serving),
                           len(processes))
            return Admission(False, capacity, load)
        with redis_client.pipeline(transaction=True) as pipe:
            pipe.zadd(RESERVATIONS_KEY, {call_id: now})
            pipe.expire(RESERVATIONS_KEY, round(RESERVATION_S * 2))
            pipe.execute()
        return Admission(True, capacity, load)
    except redis.RedisError as error:
        logger.warning("Taking a call without knowing the deployment's load: %s", error)
        return Admission(True, None, 0)


def stream_started(call_id: str) -> None:
    """The call's stream reached a web process: its reservation becomes a live call there."""
    try:
        client().zrem(RESERVATIONS_KEY, call_id)
    except redis.RedisError:
        pass  # it expires by itself
