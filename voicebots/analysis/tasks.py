"""Celery tasks: one call's analysis (retried with backoff while the model fails), and the sweep (beat)."""
from celery import shared_task


@shared_task(bind=True, name="analysis.analyze_call", acks_late=True, reject_on_worker_lost=True, max_retries=None)
def analyze_call(self, call_id: str) -> None:
    from . import services

    wait_s = services.run(call_id, attempt=self.request.retries)
    if wait_s is not None:
        raise self.retry(countdown=wait_s)


@shared_task(name="analysis.sweep")
def sweep() -> int:
    from . import services

    return services.sweep()
