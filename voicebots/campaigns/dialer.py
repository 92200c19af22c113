"""Dialing one claimed contact: the call goes to Plivo, or the contact is settled with the reason it did not."""
from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from voicebots.calls import services as calls
from voicebots.calls import templating
from voicebots.calls.models import Call
from voicebots.providers.plivo_api import PlivoApiError
from voicebots.telephony import rest

from .dispatch import release
from .models import Attempt, Campaign, Contact
from .outcomes import settle

logger = logging.getLogger(__name__)


def dial(attempt_id: int, now: datetime) -> None:
    attempt = _start(attempt_id, now)
    if attempt is None:
        return
    campaign, contact, call = attempt.campaign, attempt.contact, attempt.call
    missing = templating.missing_variables(contact.variables, *templating.bot_texts(campaign.voicebot),
                                           campaign.voicemail_message)
    if missing:
        _give_up(contact, call, now, "No value for " + ", ".join("{{" + name + "}}" for name in missing) + ".")
        return
    try:
        rest.place_call(call, ring_timeout=campaign.ring_timeout,
                        machine_detection=campaign.plivo_machine_detection,
                        voicemail_message=templating.render(campaign.voicemail_message, contact.variables))
    except rest.PlivoNotConfigured as error:
        _pause_for_account(campaign, attempt, now, str(error))
    except PlivoApiError as error:
        if error.kind == PlivoApiError.AUTH:
            _pause_for_account(campaign, attempt, now, "Plivo refused the account's Plivo credentials.")
        else:  # unavailable after retries, or this number refused: the retry policy decides
            logger.warning("Campaign %s: Plivo did not place the call to %s: %s", campaign.id, call.to_number,
                           error)
            settle(Call.objects.get(pk=call.pk), now, error=f"Plivo did not place the call: {error.message}")
    else:
        # Callbacks may have moved the contact on already (a call that ended at once).
        Contact.objects.filter(pk=contact.pk, state=Contact.State.DIALING, attempts=attempt.number).update(
            state=Contact.State.CALLING, updated_at=now)


@transaction.atomic
def _start(attempt_id: int, now: datetime) -> Attempt | None:
    """The attempt to dial now, marked as started; None when it is not to be dialed (any more)."""
    attempt = (Attempt.objects.select_for_update(of=("self", "contact"))
               .select_related("campaign__voicebot", "contact", "call__account", "call__voicebot")
               .filter(pk=attempt_id).first())
    if attempt is None or attempt.dial_started_at is not None:
        return None  # released meanwhile, or this task was delivered twice: never ask Plivo twice
    contact = attempt.contact
    if contact.state != Contact.State.DIALING or contact.attempts != attempt.number:
        return None
    if attempt.campaign.status != Campaign.Status.RUNNING or attempt.campaign.voicebot is None:
        release(contact, attempt, now)  # paused or cancelled since the claim
        return None
    attempt.dial_started_at = now
    attempt.save(update_fields=["dial_started_at"])
    return attempt


def _give_up(contact: Contact, call: Call, now: datetime, reason: str) -> None:
    """The contact cannot be called as it is: no retry would help."""
    calls.finalize(call, status=Call.Status.FAILED, reason=reason)
    Contact.objects.filter(pk=contact.pk, state=Contact.State.DIALING).update(
        state=Contact.State.FAILED, outcome=Call.Status.FAILED, last_error=reason[:500], claimed_at=None,
        updated_at=now)


@transaction.atomic
def _pause_for_account(campaign: Campaign, attempt: Attempt, now: datetime, reason: str) -> None:
    """Not this contact's fault: pause the campaign until the account is fixed, and put the contact back."""
    Campaign.objects.filter(pk=campaign.id, status=Campaign.Status.RUNNING).update(
        status=Campaign.Status.PAUSED, status_reason=reason, updated_at=now)
    contact = Contact.objects.select_for_update().get(pk=attempt.contact_id)
    if contact.state == Contact.State.DIALING and contact.attempts == attempt.number:
        release(contact, attempt, now)
