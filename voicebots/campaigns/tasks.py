"""Celery tasks: the periodic run (beat), one campaign's dispatch, and one dial; "now" comes from campaigns.clock."""
from celery import shared_task
from django.core.cache import cache

from . import clock, dialer, dispatch

DISPATCH_REQUEST_TTL_S = 300  # a lost request is picked up by the periodic run anyway


@shared_task(name="campaigns.dispatch_due")
def dispatch_due() -> int:
    """Every few seconds (beat): dispatch each campaign that is, or should now be, running."""
    campaign_ids = dispatch.campaigns_to_dispatch(clock.now())
    for campaign_id in campaign_ids:
        dispatch_campaign.delay(str(campaign_id), sweep=True)
    return len(campaign_ids)


@shared_task(name="campaigns.dispatch_campaign", acks_late=True, reject_on_worker_lost=True)
def dispatch_campaign(campaign_id: str, sweep: bool = False) -> int:
    """Fill the campaign's free call slots: claim due contacts and dial them.

    Dispatches of one campaign never wait for each other (a waiting one would hold a worker): each first
    files a request (a cache key); whichever holds the campaign clears it when it starts a pass, and
    makes another pass while a request is filed. So a slot freed during a pass is served by the next.
    `sweep` first takes back what dead workers and lost callbacks left behind (the periodic run does).
    """
    requested = f"campaigns:dispatch-requested:{campaign_id}"
    cache.set(requested, True, timeout=DISPATCH_REQUEST_TTL_S)
    claimed = 0
    while cache.get(requested):
        attempt_ids = dispatch.dispatch(campaign_id, clock.now(), sweep=sweep,
                                        on_lock=lambda: cache.delete(requested))
        if attempt_ids is None:
            break  # another dispatch holds the campaign and will find the request
        sweep = False
        if attempt_ids:
            first, *others = attempt_ids
            for attempt_id in others:
                dial_attempt.delay(attempt_id)
            dialer.dial(first, clock.now())  # here, not queued: one freed slot is the common case
        claimed += len(attempt_ids)
    return claimed


@shared_task(name="campaigns.dial", acks_late=True, reject_on_worker_lost=True)
def dial_attempt(attempt_id: int) -> None:
    dialer.dial(attempt_id, clock.now())
