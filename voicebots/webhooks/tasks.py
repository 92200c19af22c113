"""Celery tasks: the sender (queued when an event is recorded) and the sweep (beat)."""
from celery import shared_task


@shared_task(name="webhooks.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver() -> int:
    """Send what is due. Only one sender runs at a time; a task that finds one running ends at once, since
    the running one finds new deliveries in the table itself."""
    from . import delivery

    attempts, more = delivery.run()
    if more:
        deliver.delay()  # hand the worker to other tasks in between
    return attempts


@shared_task(name="webhooks.sweep")
def sweep() -> bool:
    """Every few seconds: start a sender if anything is due (retries whose time came, deliveries whose
    sender died, or ones whose wake-up was lost)."""
    from django.utils import timezone

    from . import delivery

    if delivery.due(timezone.now()).exists():
        deliver.delay()
        return True
    return False


@shared_task(name="webhooks.prune")
def prune() -> int:
    """Hourly: the delivery log keeps WEBHOOK_LOG_RETENTION_DAYS of events."""
    from . import services

    return services.prune()
