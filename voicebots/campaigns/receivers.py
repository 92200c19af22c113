"""What the campaigns do when the rest of the product tells them something (signals, connected in apps.py).

A module of its own: it needs both the outcomes and the tasks, and the tasks need the dialer, which needs the
outcomes; with the receiver in `outcomes` the four modules imported each other in a circle.
"""
from __future__ import annotations

from django.db import transaction

from voicebots.calls.models import Call

from . import clock
from .outcomes import settle
from .tasks import dispatch_campaign


def on_call_finished(sender, call: Call, **kwargs) -> None:
    """Plivo said a call is over: settle its contact and let the campaign use the freed slot at once."""
    campaign = settle(call, clock.now())
    if campaign is not None:
        campaign_id = str(campaign.id)
        transaction.on_commit(lambda: dispatch_campaign.delay(campaign_id))
