from celery import shared_task

from . import services


@shared_task(name="recordings.delete_expired")
def delete_expired() -> int:
    """Recordings past their account's retention leave storage (Celery beat, hourly)."""
    return services.delete_expired()


@shared_task(name="recordings.sweep")
def sweep() -> dict:
    """Finish recordings whose process died and retry copies to the bucket (Celery beat)."""
    return services.sweep()
