"""Sending due deliveries and writing down what happened, so that none is lost or sent twice once delivered.

- Claiming: due deliveries are taken with SELECT ... FOR UPDATE SKIP LOCKED and leased for
  WEBHOOK_LEASE_SECONDS (a token marks whose lease it is). A sender that dies leaves a lease that runs out;
  the sweep (beat) then starts a sender that takes the delivery again. Delivered ones are never taken.
- Sending: one sender runs at a time (WEBHOOK_SENDERS, through PostgreSQL advisory locks, which the server
  drops if the sender's process dies). It sends up to CONCURRENCY deliveries at once on an event loop of its own, at most
  WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT per endpoint, so a slow or dead endpoint holds only its own slots
  while the others' deliveries go on. It keeps claiming while anything is in flight, so deliveries made
  meanwhile are sent without waiting for a new task.
- Bookkeeping: an attempt row per try; the delivery moves pending -> delivered, or waits for its next try
  (WEBHOOK_RETRY_DELAYS), or is failed after its last one.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from voicebots.core.outbound import webhook_client

from . import sender
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

SENDER_LOCK = 7_561_893_456_120_001  # pg advisory lock keys: this one and the next WEBHOOK_SENDERS - 1
CONCURRENCY = 64  # deliveries in flight in one sender
POLL_S = 0.1  # how often a sender with sends in flight looks for new due deliveries
CLAIM_INTERVAL_S = 0.02  # at most this often otherwise (completions come in bursts)
RUN_SECONDS = 60.0  # then a sender hands over to a new task, so other tasks get the worker in between


@dataclass(frozen=True)
class Job:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    lease_token: uuid.UUID
    message: sender.Message


def policy() -> sender.Policy:
    return sender.Policy(timeout_s=float(settings.WEBHOOK_TIMEOUT_SECONDS), allow_http=settings.WEBHOOK_ALLOW_HTTP,
                         allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES)


def max_attempts() -> int:
    return len(settings.WEBHOOK_RETRY_DELAYS) + 1


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the one it replaced while its grace period lasts."""
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires and expires > now:
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


def due(now: datetime) -> QuerySet:
    """Pending deliveries whose time has come and that no live sender holds."""
    return WebhookDelivery.objects.filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=now),
        status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now, endpoint__enabled=True)


def claim(limit: int, *, busy: Counter | None = None, per_endpoint: int | None = None) -> list[Job]:
    """Lease up to `limit` due deliveries, oldest first, at most `per_endpoint` in flight per endpoint
    (`busy` counts those the caller already has)."""
    busy = busy or Counter()
    cap = per_endpoint or settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT
    now = timezone.now()
    full = [endpoint for endpoint, count in busy.items() if count >= cap]
    ranked = (due(now).exclude(endpoint_id__in=full)
              .annotate(rank=Window(RowNumber(), partition_by=[F("endpoint_id")],
                                    order_by=[F("next_attempt_at").asc(), F("id").asc()]))
              .filter(rank__lte=cap).order_by("next_attempt_at", "id"))
    chosen, taken = [], Counter(busy)
    for delivery_id, endpoint_id in ranked.values_list("id", "endpoint_id")[:limit + len(busy) * cap]:
        if len(chosen) == limit:
            break
        if taken[endpoint_id] < cap:
            chosen.append(delivery_id)
            taken[endpoint_id] += 1
    if not chosen:
        return []
    token = uuid.uuid4()
    with transaction.atomic():
        deliveries = list(due(now).filter(pk__in=chosen).select_for_update(skip_locked=True, of=("self",))
                          .select_related("event", "endpoint"))
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(
            leased_until=now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS), lease_token=token)
    return [Job(d.pk, d.endpoint_id, token,
                sender.Message(d.endpoint.url, d.event.message_id, d.event.body.encode(),
                               signing_secrets(d.endpoint, now)))
            for d in deliveries]


def record(job: Job, outcome: sender.Outcome, started_at: datetime) -> None:
    """Write down one attempt and move the delivery on. A delivered one stays delivered; a delivery whose
    lease ran out and passed to another sender is left to that sender, apart from a success."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=job.delivery_id).first()
        if delivery is None:  # its endpoint was deleted meanwhile
            return
        WebhookAttempt.objects.create(
            delivery=delivery, number=delivery.attempts + 1, started_at=started_at, duration_ms=outcome.duration_ms,
            status_code=outcome.status_code, error=outcome.error, response_excerpt=outcome.response_excerpt[:1000])
        delivery.attempts += 1
        ours = delivery.lease_token == job.lease_token
        if delivery.status == WebhookDelivery.Status.PENDING:
            delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error
            if outcome.delivered:
                delivery.status, delivery.delivered_at, delivery.next_attempt_at = \
                    WebhookDelivery.Status.DELIVERED, now, None
            elif ours:
                _schedule_next_try(delivery, now)
        if ours:
            delivery.leased_until = delivery.lease_token = None
        delivery.save()


def _schedule_next_try(delivery: WebhookDelivery, now: datetime) -> None:
    delays = settings.WEBHOOK_RETRY_DELAYS
    if delivery.attempts >= delivery.max_attempts or not delays:
        delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.FAILED, None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=delays[min(delivery.attempts, len(delays)) - 1])


# --- The sender -----------------------------------------------------------------------------------------


class _LoopThread:
    """An event loop in a thread of its own, with one HTTP client; the caller's thread keeps the database."""

    def __enter__(self) -> _LoopThread:
        self.loop = asyncio.new_event_loop()
        self.client = None
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.client = webhook_client()
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="webhook-sender", daemon=True)
        self.thread.start()
        started.wait()
        return self

    def submit(self, coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.client.aclose(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _result(future: Future) -> sender.Outcome:
    try:
        return future.result()
    except Exception:  # a bug, not the endpoint: keep the delivery going
        logger.exception("Sending a webhook failed unexpectedly")
        return sender.Outcome(False, None, "Internal error while sending; it will be tried again.", 0.0)


def send_due(max_seconds: float = RUN_SECONDS) -> tuple[int, bool]:
    """Send what is due until nothing is due or in flight (or `max_seconds` have passed: then what is in
    flight is finished). Returns the attempts made and whether time ran out."""
    deadline = time.monotonic() + max_seconds
    rules = policy()
    in_flight: dict[Future, tuple[Job, datetime]] = {}
    busy: Counter = Counter()
    attempts, last_claim = 0, 0.0
    with _LoopThread() as loop:
        while True:
            now = time.monotonic()
            room = CONCURRENCY - len(in_flight)
            if room > 0 and now < deadline and (not in_flight or now - last_claim >= CLAIM_INTERVAL_S):
                last_claim = now
                for job in claim(room, busy=busy):
                    busy[job.endpoint_id] += 1
                    future = loop.submit(sender.send(loop.client, job.message, rules))
                    in_flight[future] = (job, timezone.now())
            if not in_flight:
                return attempts, now >= deadline
            done, _ = wait(in_flight, timeout=POLL_S, return_when=FIRST_COMPLETED)
            for future in done:
                job, started_at = in_flight.pop(future)
                busy[job.endpoint_id] -= 1
                record(job, _result(future), started_at)
                attempts += 1


def _try_lock() -> int | None:
    """The key of a free sender slot, now held by this connection, or None when all are taken."""
    with connection.cursor() as cursor:
        for key in range(SENDER_LOCK, SENDER_LOCK + max(1, settings.WEBHOOK_SENDERS)):
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if cursor.fetchone()[0]:
                return key
    return None


def _unlock(key: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def run(max_seconds: float = RUN_SECONDS) -> tuple[int, bool]:
    """Be a sender if a slot is free (else the running ones send what is due: they watch the table itself).

    Returns the attempts made and whether there is more to send after `max_seconds` (the caller then
    queues a new run). After letting go of the lock it looks once more, so a delivery made just as the
    sender was finishing is never left for the sweep.
    """
    attempts = 0
    while (key := _try_lock()) is not None:
        try:
            made, out_of_time = send_due(max_seconds)
            attempts += made
        finally:
            _unlock(key)
        if out_of_time:
            return attempts, True
        if not made or not due(timezone.now()).exists():
            break
    return attempts, False
