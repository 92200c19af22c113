"""What a finished call means for its contact: done, tried again later (retry policy), or given up."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from voicebots.calls.models import Call
from voicebots.webhooks import events as webhook_events

from .models import Attempt, Campaign, Contact


def apply_outcome(contact: Contact, campaign: Campaign, call: Call, now: datetime, error: str = "") -> None:
    """Set the contact's state from its call's final status (the caller saves it)."""
    status = call.status
    contact.outcome, contact.claimed_at = status, None
    contact.last_error = (error or ("" if status == Call.Status.COMPLETED else call.end_reason))[:500]
    if call.answered_at and status != Call.Status.VOICEMAIL:
        contact.answered_at = contact.answered_at or call.answered_at
    if status == Call.Status.COMPLETED:
        contact.state = Contact.State.COMPLETED
    elif status in campaign.retry_on and contact.attempts < campaign.max_attempts:
        contact.state = Contact.State.PENDING
        contact.next_attempt_at = now + timedelta(minutes=campaign.retry_delay_minutes)
    elif status == Call.Status.VOICEMAIL:
        contact.state = Contact.State.VOICEMAIL
    else:
        contact.state = Contact.State.FAILED
    contact.updated_at = now
    if contact.state not in Contact.REMAINING:
        webhook_events.contact_finished(campaign, contact, call)


def settle(call: Call, now: datetime, error: str = "") -> Campaign | None:
    """Settle the contact whose current attempt is `call` (as it now is, ended); returns its campaign, or
    None when nothing changed.

    Idempotent: a second hangup callback, or one for an older attempt, changes nothing.
    """
    with transaction.atomic(savepoint=False):
        attempt = (Attempt.objects.select_related("campaign", "contact").select_for_update(of=("contact",))
                   .filter(call=call).first())
        if attempt is None:
            return None
        contact = attempt.contact
        if contact.state not in (Contact.State.DIALING, Contact.State.CALLING) or contact.attempts != attempt.number:
            return None
        apply_outcome(contact, attempt.campaign, call, now, error)
        contact.save()
    return attempt.campaign
