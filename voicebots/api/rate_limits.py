"""API rate limits: per account, per class of endpoint, counted in short fixed windows in Redis.

Each class has its own budget (API_RATE_LIMITS, e.g. chat 20 per 10 s), so a burst of one kind of
request never starves the others, and a window of seconds means a burst waits seconds, not a minute.
Every API answer carries X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (seconds until
the window ends); a refused request is a 429 with Retry-After. Plivo's callbacks are plain Django views
and never limited. If Redis cannot be reached, requests pass (logged): limits protect the service, they
must not take it down.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

CLASSES = ("read", "write", "chat", "upload", "search")


@dataclass(frozen=True)
class RateLimit:
    kind: str
    limit: int
    window_s: int
    count: int
    reset_s: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_s)}

    def refusal(self) -> str:
        window = f"{self.window_s} seconds" if self.window_s != 1 else "second"
        return (f"Too many {self.kind} requests: this account may make {self.limit} per {window}. "
                f"Try again in {self.reset_s} seconds.")


_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _client


def count_request(kind: str, ident: str) -> RateLimit | None:
    """Count one request of `kind` for `ident` in the current window; None when Redis cannot be reached."""
    limit, window = settings.API_RATE_LIMITS[kind]
    now = time.time()
    key = f"ratelimit:{kind}:{ident}:{window}:{int(now // window)}"
    try:
        pipeline = _redis().pipeline()
        pipeline.incr(key)
        pipeline.expire(key, window + 1)  # the key names its window, so renewing the expiry never extends a count
        count = pipeline.execute()[0]
    except redis.RedisError:
        logger.warning("Rate limits not counted: Redis did not answer", exc_info=True)
        return None
    return RateLimit(kind, limit, window, count, max(1, int(window - now % window + 0.999)))


def endpoint_class(request, view) -> str:
    """A view names its classes per action (`rate_classes`); otherwise reads are `read`, the rest `write`."""
    named = getattr(view, "rate_classes", {}).get(getattr(view, "action", None))
    if named:
        return named
    return "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write"


class EndpointClassThrottle(BaseThrottle):
    """DRF's throttle hook for the limits above; the numbers reach the response through the request."""

    def allow_request(self, request, view):
        account = getattr(request, "account", None)
        ident = f"account-{account.pk}" if account is not None else f"address-{self.get_ident(request)}"
        counted = count_request(endpoint_class(request, view), ident)
        if counted is None:
            return True
        request._request.rate_limit = counted  # read by the API middleware (headers) and error handler (429)
        return counted.count <= counted.limit

    def wait(self):
        return None  # the error handler takes Retry-After from the counted limit
