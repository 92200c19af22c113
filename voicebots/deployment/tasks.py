"""Celery tasks of the deployment: the reaper of calls whose web process died (beat runs it)."""
from celery import shared_task


@shared_task(name="deployment.reap_orphaned_calls")
def reap_orphaned_calls() -> int:
    from .reaper import reap_orphaned_calls as reap

    return reap()
