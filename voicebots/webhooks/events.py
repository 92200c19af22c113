"""The events other apps report, one function each: call the one that fits inside the transaction that
made it happen. Each records a delivery per subscribed endpoint (nothing when none is) and never raises."""
from __future__ import annotations

from . import services


def call_started(call) -> None:
    """The call's audio stream started: the Call object without turns."""
    from voicebots.calls.serializers import CallSerializer

    services.emit(call.account_id, "call.started", lambda: CallSerializer(call).data)


def call_ended(call) -> None:
    """The whole Call object with its turns and events."""
    from voicebots.calls.serializers import CallDetailSerializer

    services.emit(call.account_id, "call.ended", lambda: CallDetailSerializer(call).data)


def call_analyzed(call) -> None:
    """The whole Call object, its `analysis` final (done, failed or skipped)."""
    from voicebots.calls.serializers import CallDetailSerializer

    services.emit(call.account_id, "call.analyzed", lambda: CallDetailSerializer(call).data)


def campaign_completed(campaign) -> None:
    """The Campaign object with its progress."""
    from voicebots.campaigns.serializers import CampaignSerializer

    services.emit(campaign.account_id, "campaign.completed", lambda: CampaignSerializer(campaign).data)


def contact_finished(campaign, contact, call) -> None:
    """A contact is done with (reached, voicemail, or given up on): the contact and its last call's id."""
    from voicebots.campaigns.serializers import ContactSerializer

    services.emit(campaign.account_id, "campaign.contact_finished", lambda: {
        "campaign_id": str(campaign.id), "call_id": str(call.id) if call else None,
        "contact": ContactSerializer(contact).data})
