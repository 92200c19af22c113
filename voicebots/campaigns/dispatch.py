"""Which contacts of a campaign to call now, without exceeding its concurrency or calling anyone twice.

- Two dispatchers at once: each claims inside a short transaction that locks the campaign row, so live
  calls are counted and contacts claimed by one dispatcher after the other (the second does not wait:
  it skips the locked campaign and leaves the work to the first). Contacts are also locked with SKIP
  LOCKED, and an attempt's number is unique per contact, so no contact is claimed twice.
- Live calls are counted, not guessed: the campaign's calls that are queued, ringing or in progress.
  A claimed contact's call record exists (queued) from the moment it is claimed.
- Nothing stays stuck: the sweep (`sweep=True`, from the periodic task) takes back claims whose dialer
  died, and settles calls that ended, or went silent, without Plivo's hangup callback reaching us.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q

from voicebots.calls import services as calls
from voicebots.calls.models import Call
from voicebots.webhooks import events as webhook_events

from . import windows
from .models import Attempt, Campaign, Contact
from .outcomes import apply_outcome

LEASE = timedelta(minutes=2)  # a claim whose call Plivo has not confirmed by then is taken back
ENDED_CALL_GRACE = timedelta(minutes=1)  # how long an ended call waits for its hangup callback
LOST_CALL_MARGIN = timedelta(minutes=10)  # beyond ring timeout + the bot's longest call


def campaigns_to_dispatch(now: datetime) -> list:
    """Campaigns that dial now, and the paused or cancelled ones whose claims and calls may need the sweep."""
    due = (Q(status__in=(Campaign.Status.RUNNING, Campaign.Status.PAUSED))
           | Q(status=Campaign.Status.SCHEDULED, starts_at__lte=now)
           | Q(status=Campaign.Status.CANCELLED,
               contacts__state__in=(Contact.State.DIALING, Contact.State.CALLING)))
    return list(Campaign.objects.filter(due).values_list("id", flat=True).distinct())


def live_calls(campaign: Campaign) -> int:
    """The campaign's calls that are queued, ringing or in progress.

    Only a contact being dialed or in a call has one, so the count starts from those contacts (an index
    lookup of at most the concurrency limit, however many contacts the campaign has).
    """
    in_call = (Contact.State.DIALING, Contact.State.CALLING)
    return Call.objects.filter(campaign_attempt__contact__campaign=campaign,
                               campaign_attempt__contact__state__in=in_call, status__in=calls.LIVE).count()


def dispatch(campaign_id, now: datetime, *, sweep: bool = False, on_lock=None) -> list[int] | None:
    """Claim the contacts to call now; returns the ids of their attempts, each to be dialed.

    None when another dispatcher holds the campaign: this one does not wait for it (see tasks.py for how
    its request is served). `on_lock` runs once this one holds the campaign.
    """
    if sweep:
        reclaim(campaign_id, now)
    with transaction.atomic():
        campaign = (Campaign.objects.select_for_update(of=("self",), skip_locked=True).select_related("voicebot")
                    .filter(pk=campaign_id).first())
        if campaign is None:
            return None if Campaign.objects.filter(pk=campaign_id).exists() else []
        if on_lock is not None:
            on_lock()
        if not _may_dial(campaign, now):
            return []
        free = campaign.max_concurrent_calls - live_calls(campaign)
        if free <= 0:
            return []
        _defer_closed_windows(campaign, now)
        contacts = list(
            campaign.contacts.select_for_update(skip_locked=True)
            .filter(state=Contact.State.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "line_number")[:free]
        )
        return [attempt.id for attempt in _claim(campaign, contacts, now)]


def _may_dial(campaign: Campaign, now: datetime) -> bool:
    """Move the campaign along its life (start, end, completion) and say whether it dials now."""
    if campaign.status == Campaign.Status.SCHEDULED and now >= campaign.starts_at:
        _set_status(campaign, Campaign.Status.RUNNING, now, started_at=campaign.started_at or now)
    if campaign.status != Campaign.Status.RUNNING:
        return False
    if campaign.voicebot is None:
        _set_status(campaign, Campaign.Status.PAUSED, now,
                    reason="Its voicebot was deleted: choose another voicebot, then resume.")
        return False
    contacts = campaign.contacts
    if now >= campaign.ends_at:
        contacts.filter(state=Contact.State.PENDING).update(
            state=Contact.State.SKIPPED, last_error="The campaign ended before this contact was reached.",
            updated_at=now)
    if not contacts.filter(state__in=Contact.REMAINING).exists():
        _set_status(campaign, Campaign.Status.COMPLETED, now, finished_at=now)
        webhook_events.campaign_completed(campaign)
        return False
    return now < campaign.ends_at


def _set_status(campaign: Campaign, status: str, now: datetime, reason: str = "", **fields) -> None:
    campaign.status, campaign.status_reason = status, reason
    for name, value in fields.items():
        setattr(campaign, name, value)
    campaign.save(update_fields=["status", "status_reason", "updated_at", *fields])


def _defer_closed_windows(campaign: Campaign, now: datetime) -> None:
    """Due contacts whose calling window is closed wait for its next opening (one update per time zone)."""
    hours = windows.parse(campaign.calling_windows)
    if not windows.has_any(hours):
        return  # no windows: any time between start and end
    due = campaign.contacts.filter(state=Contact.State.PENDING, next_attempt_at__lte=now)
    for tz in due.order_by().values_list("timezone", flat=True).distinct():
        name = tz or campaign.timezone
        if not windows.is_open(hours, name, now):
            opening = windows.next_opening(hours, name, now) or campaign.ends_at
            due.filter(timezone=tz).update(next_attempt_at=opening, updated_at=now)


def _claim(campaign: Campaign, contacts: list[Contact], now: datetime) -> list[Attempt]:
    """Mark the contacts dialing and create their queued calls and attempts."""
    new_calls, attempts = [], []
    for contact in contacts:
        contact.state, contact.claimed_at, contact.updated_at = Contact.State.DIALING, now, now
        contact.attempts += 1
        caller_id = campaign.caller_ids[(contact.line_number + contact.attempts) % len(campaign.caller_ids)]
        call = Call(account_id=campaign.account_id, voicebot=campaign.voicebot, direction=Call.Direction.OUTBOUND,
                    status=Call.Status.QUEUED, from_number=caller_id, to_number=contact.phone_number,
                    variables=contact.variables)
        new_calls.append(call)
        attempts.append(Attempt(campaign=campaign, contact=contact, call=call, number=contact.attempts))
    Call.objects.bulk_create(new_calls)
    Contact.objects.bulk_update(contacts, ["state", "claimed_at", "attempts", "updated_at"])
    return Attempt.objects.bulk_create(attempts)


def release(contact: Contact, attempt: Attempt, now: datetime) -> None:
    """Undo a claim that never reached Plivo: no call was made, so it is not an attempt."""
    attempt.call.delete()  # and the attempt with it
    contact.state, contact.claimed_at, contact.updated_at = Contact.State.PENDING, None, now
    contact.attempts = attempt.number - 1
    contact.save(update_fields=["state", "claimed_at", "attempts", "updated_at"])


# --- The sweep ---------------------------------------------------------------------------------------

def reclaim(campaign_id, now: datetime) -> None:
    _reclaim_stale_claims(campaign_id, now)
    _settle_unreported_calls(campaign_id, now)


@transaction.atomic
def _reclaim_stale_claims(campaign_id, now: datetime) -> None:
    stale = (Contact.objects.select_for_update(skip_locked=True)
             .filter(campaign_id=campaign_id, state=Contact.State.DIALING, claimed_at__lt=now - LEASE))
    for contact in stale:
        attempt = (Attempt.objects.select_related("call", "campaign")
                   .get(contact=contact, number=contact.attempts))
        call = attempt.call
        if call.request_uuid or call.call_uuid or call.status != Call.Status.QUEUED:  # Plivo has it
            if call.has_ended:
                apply_outcome(contact, attempt.campaign, call, now)
            else:
                contact.state, contact.updated_at = Contact.State.CALLING, now
            contact.save()
        elif attempt.dial_started_at is None:  # the dial task never ran
            release(contact, attempt, now)
        else:  # the dialer died while asking Plivo, and no callback came: Plivo did not take it
            call = calls.finalize(call, status=Call.Status.FAILED,
                                  reason="The dialer stopped before Plivo confirmed the call.")
            apply_outcome(contact, attempt.campaign, call, now)
            contact.save()


def _settle_unreported_calls(campaign_id, now: datetime) -> None:
    campaign = Campaign.objects.select_related("voicebot").filter(pk=campaign_id).first()
    if campaign is None:
        return
    longest = campaign.ring_timeout + (campaign.voicebot.max_call_duration if campaign.voicebot else 4 * 3600)
    lost_before = now - timedelta(seconds=longest) - LOST_CALL_MARGIN
    current = (Attempt.objects.filter(campaign=campaign, contact__state=Contact.State.CALLING,
                                      number=F("contact__attempts"))
               .filter(Q(call__status__in=Call.ENDED, call__ended_at__lt=now - ENDED_CALL_GRACE)
                       | Q(call__status__in=calls.LIVE, call__created_at__lt=lost_before))
               .values_list("contact_id", "call_id"))
    for contact_id, call_id in current:
        with transaction.atomic():
            contact = Contact.objects.select_for_update(skip_locked=True).filter(
                pk=contact_id, state=Contact.State.CALLING).first()
            if contact is None:
                continue
            call = Call.objects.get(pk=call_id)
            if not call.has_ended:
                call = calls.finalize(call, status=Call.Status.FAILED,
                                      reason="No word from Plivo about this call for too long.")
            apply_outcome(contact, campaign, call, now)
            contact.save()
