from celery import shared_task

from . import stats


@shared_task(name="console.refresh_stats")
def refresh_stats() -> int:
    """Bring the overview's hourly call statistics up to date (Celery beat, every minute)."""
    return stats.refresh()
