"""Webhook endpoints (create, rotate their secret), events (recorded with a delivery per endpoint), and a
manual retry. Event producers call `emit` through events.py, inside their own transaction."""
from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any, Callable

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from . import signing
from .delivery import max_attempts
from .models import WebhookDelivery, WebhookEndpoint, WebhookEvent

logger = logging.getLogger(__name__)


class NotRetryable(Exception):
    """The delivery cannot be sent again; the message says why."""


def create_endpoint(account, *, url: str, events: list[str], description: str = "",
                    enabled: bool = True) -> tuple[WebhookEndpoint, str]:
    """A new endpoint with its secret, which is shown once (returned here) and then only stored encrypted."""
    secret = signing.new_secret()
    endpoint = WebhookEndpoint.objects.create(account=account, url=url, events=events, description=description,
                                              enabled=enabled, secret=secret)
    return endpoint, secret


@transaction.atomic
def rotate_secret(endpoint: WebhookEndpoint) -> str:
    """A new secret signs from now on; the old one signs too for WEBHOOK_SECRET_GRACE_HOURS, so receivers
    can switch without rejecting a delivery."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk, account=endpoint.account_id)
    grace = timedelta(hours=settings.WEBHOOK_SECRET_GRACE_HOURS)
    endpoint.previous_secret = endpoint.secret if grace else ""
    endpoint.previous_secret_expires_at = timezone.now() + grace if grace else None
    endpoint.secret = secret = signing.new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return secret


def emit(account_id, event_type: str, build_data: Callable[[], Any]) -> WebhookEvent | None:
    """Record an event for every enabled endpoint of the account that wants it, and wake the sender once the
    caller's transaction commits. `build_data` runs only when some endpoint wants the event.

    Never raises: a failure here is logged and must not break what the caller was doing (ending a call).
    """
    try:
        endpoints = list(WebhookEndpoint.objects.filter(account_id=account_id, enabled=True,
                                                        events__contains=[event_type]).values_list("id", flat=True))
        if not endpoints:
            return None
        now = timezone.now()
        body = json.dumps({"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z"),
                           "data": build_data()}, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)
        with transaction.atomic():  # a savepoint inside the caller's transaction: a failure here stays here
            event = WebhookEvent.objects.create(account_id=account_id, type=event_type, body=body)
            WebhookDelivery.objects.bulk_create([
                WebhookDelivery(endpoint_id=endpoint_id, event=event, max_attempts=max_attempts(), next_attempt_at=now)
                for endpoint_id in endpoints])
        transaction.on_commit(wake_sender)
        return event
    except Exception:
        logger.exception("Could not record the %s webhook event of account %s", event_type, account_id)
        return None


def wake_sender() -> None:
    from .tasks import deliver

    try:
        # No publish retries: this may run on a call's own thread (call.started), which must not wait for a
        # broker that is down. The sweep sends what is due once it is back.
        deliver.apply_async(retry=False)
    except Exception:
        logger.warning("Could not queue webhook sending; the periodic sweep will send what is due", exc_info=True)


@transaction.atomic
def retry(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now: a failed one gets one more try; a pending one is tried now instead of
    at its next time. A delivered one is not sent again."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk, endpoint=delivery.endpoint_id)
    if delivery.status == WebhookDelivery.Status.DELIVERED:
        raise NotRetryable(f"Delivery {delivery.id} was already delivered; it is not sent twice.")
    if delivery.status == WebhookDelivery.Status.FAILED:
        delivery.status = WebhookDelivery.Status.PENDING
        delivery.max_attempts = delivery.attempts + 1
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["status", "max_attempts", "next_attempt_at", "updated_at"])
    transaction.on_commit(wake_sender)
    return delivery


PRUNE_BATCH = 1000


def prune(now=None) -> int:
    """Delete events (with their deliveries and attempts) older than WEBHOOK_LOG_RETENTION_DAYS once none of
    their deliveries is pending; 0 days keeps them forever. Returns how many events went."""
    days = settings.WEBHOOK_LOG_RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = WebhookEvent.objects.filter(created_at__lt=cutoff).exclude(deliveries__status=WebhookDelivery.Status.PENDING)
    deleted = 0
    while ids := list(old.values_list("id", flat=True)[:PRUNE_BATCH]):  # small batches: short locks
        WebhookEvent.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted
