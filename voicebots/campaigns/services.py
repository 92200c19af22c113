"""A campaign's life (schedule, pause, resume, cancel), its contacts' import, and its progress."""
from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from voicebots.calls import templating

from . import contacts_csv
from .models import Campaign, Contact
from .tasks import dispatch_campaign

EDITABLE = (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED, Campaign.Status.PAUSED)
DELETABLE = (Campaign.Status.DRAFT, Campaign.Status.PAUSED, Campaign.Status.COMPLETED, Campaign.Status.CANCELLED)
TAKES_CONTACTS = EDITABLE + (Campaign.Status.RUNNING,)


class TransitionError(Exception):
    """The campaign cannot do that in its current state; the message says why and what to do."""


def required_variables(campaign: Campaign) -> list[str]:
    """The {{names}} every contact must give a value for."""
    texts = templating.bot_texts(campaign.voicebot) if campaign.voicebot else ()
    return templating.placeholders(*texts, campaign.voicemail_message)


def _dispatch_soon(campaign: Campaign) -> None:
    campaign_id = str(campaign.id)
    transaction.on_commit(lambda: dispatch_campaign.delay(campaign_id))


def _locked(campaign: Campaign) -> Campaign:
    return Campaign.objects.select_for_update(of=("self",)).select_related("voicebot").get(pk=campaign.pk)


@transaction.atomic
def schedule(campaign: Campaign, now: datetime) -> Campaign:
    campaign = _locked(campaign)
    if campaign.status != Campaign.Status.DRAFT:
        raise TransitionError(f"Only a draft campaign can be scheduled; this one is {campaign.status}.")
    problems = readiness_problems(campaign, now)
    if problems:
        raise TransitionError("The campaign cannot be scheduled: " + " ".join(problems))
    campaign.status, campaign.status_reason = Campaign.Status.SCHEDULED, ""
    campaign.save(update_fields=["status", "status_reason", "updated_at"])
    _dispatch_soon(campaign)
    return campaign


def readiness_problems(campaign: Campaign, now: datetime) -> list[str]:
    problems = []
    if campaign.voicebot is None:
        problems.append("It has no voicebot.")
    if not campaign.caller_ids:
        problems.append("It has no caller_ids to call from.")
    if campaign.ends_at <= now:
        problems.append("Its ends_at is in the past.")
    contacts = campaign.contacts.all()
    if not contacts.exists():
        problems.append("It has no contacts: upload a CSV first.")
    elif campaign.voicebot is not None:
        for name in required_variables(campaign):
            lacking = contacts.exclude(variables__has_key=name).count()
            if lacking:
                problems.append(f"{lacking} contact(s) have no value for {{{{{name}}}}}.")
    return problems


@transaction.atomic
def pause(campaign: Campaign, now: datetime) -> Campaign:
    """Stop dialing; calls under way finish normally."""
    campaign = _locked(campaign)
    if campaign.status not in (Campaign.Status.SCHEDULED, Campaign.Status.RUNNING):
        raise TransitionError(f"Only a scheduled or running campaign can be paused; this one is {campaign.status}.")
    campaign.status, campaign.status_reason = Campaign.Status.PAUSED, "Paused by request."
    campaign.save(update_fields=["status", "status_reason", "updated_at"])
    return campaign


@transaction.atomic
def resume(campaign: Campaign, now: datetime) -> Campaign:
    campaign = _locked(campaign)
    if campaign.status != Campaign.Status.PAUSED:
        raise TransitionError(f"Only a paused campaign can be resumed; this one is {campaign.status}.")
    if campaign.voicebot is None:
        raise TransitionError("The campaign has no voicebot: set voicebot_id, then resume.")
    campaign.status = Campaign.Status.RUNNING if campaign.started_at else Campaign.Status.SCHEDULED
    campaign.status_reason = ""
    campaign.save(update_fields=["status", "status_reason", "updated_at"])
    _dispatch_soon(campaign)
    return campaign


@transaction.atomic
def cancel(campaign: Campaign, now: datetime) -> Campaign:
    """Stop for good: contacts not reached yet are skipped; calls under way finish normally."""
    campaign = _locked(campaign)
    if campaign.status in (Campaign.Status.COMPLETED, Campaign.Status.CANCELLED):
        raise TransitionError(f"The campaign is already {campaign.status}.")
    campaign.contacts.filter(state=Contact.State.PENDING).update(
        state=Contact.State.SKIPPED, last_error="The campaign was cancelled.", updated_at=now)
    campaign.status, campaign.status_reason, campaign.finished_at = Campaign.Status.CANCELLED, "", now
    campaign.save(update_fields=["status", "status_reason", "finished_at", "updated_at"])
    return campaign


def import_contacts(campaign: Campaign, data: bytes, *, skip_invalid: bool,
                    now: datetime) -> contacts_csv.ParsedContacts:
    """Parse and store contacts; with invalid rows nothing is stored unless `skip_invalid`.

    Raises CsvFileError for an unreadable file and TransitionError for a campaign that takes no contacts.
    """
    if campaign.status not in TAKES_CONTACTS:
        raise TransitionError(f"A {campaign.status} campaign takes no more contacts.")
    existing = set(campaign.contacts.values_list("phone_number", flat=True))
    parsed = contacts_csv.parse(data, required=required_variables(campaign), existing_numbers=existing)
    if parsed.errors and not skip_invalid:
        return parsed
    contacts = [Contact(campaign=campaign, phone_number=row.phone_number, timezone=row.timezone,
                        variables=row.variables, line_number=row.line, next_attempt_at=now)
                for row in parsed.rows]
    try:
        with transaction.atomic():
            Contact.objects.bulk_create(contacts, batch_size=2000)
    except IntegrityError:
        raise TransitionError("Another upload added some of these numbers at the same time; upload again.")
    if campaign.status == Campaign.Status.RUNNING:
        _dispatch_soon(campaign)
    return parsed


def progress(campaign: Campaign) -> dict:
    """How far the campaign is, by contact: dialed at least once, answered by a person, and where it ended."""
    states = Contact.State
    counts = campaign.contacts.aggregate(
        total=Count("id"), dialed=Count("id", filter=Q(attempts__gt=0)),
        answered=Count("id", filter=Q(answered_at__isnull=False)),
        completed=Count("id", filter=Q(state=states.COMPLETED)),
        voicemail=Count("id", filter=Q(state=states.VOICEMAIL)),
        failed=Count("id", filter=Q(state=states.FAILED)), skipped=Count("id", filter=Q(state=states.SKIPPED)),
        remaining=Count("id", filter=Q(state__in=Contact.REMAINING)),
        in_call=Count("id", filter=Q(state__in=(states.DIALING, states.CALLING))),
    )
    counts["calls_placed"] = campaign.attempts.filter(dial_started_at__isnull=False).count()
    return counts
