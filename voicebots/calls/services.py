"""Call records: created when Plivo calls us, finalized from its callbacks and from the stream."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .models import Call, CallEvent

# Plivo's CallStatus values on callbacks, mapped to ours.
_PLIVO_STATUS = {
    "ringing": Call.Status.RINGING, "in-progress": Call.Status.IN_PROGRESS, "completed": Call.Status.COMPLETED,
    "busy": Call.Status.BUSY, "failed": Call.Status.FAILED, "timeout": Call.Status.NO_ANSWER,
    "no-answer": Call.Status.NO_ANSWER, "cancel": Call.Status.CANCELED, "canceled": Call.Status.CANCELED,
}


def plivo_status(value: str) -> str | None:
    return _PLIVO_STATUS.get((value or "").strip().lower())


def record_event(call: Call, kind: str, **detail) -> CallEvent:
    return CallEvent.objects.create(call=call, kind=kind, detail=detail)


def answered_inbound(bot, params) -> Call:
    """The record of an inbound call Plivo asks us to answer (the same CallUUID twice gives the same record)."""
    call_uuid = params.get("CallUUID", "")
    existing = Call.objects.filter(account=bot.account, call_uuid=call_uuid).first() if call_uuid else None
    if existing is not None:
        return existing
    return Call.objects.create(
        account=bot.account, voicebot=bot, direction=params.get("Direction") or Call.Direction.INBOUND,
        status=Call.Status.IN_PROGRESS, call_uuid=call_uuid, from_number=params.get("From", ""),
        to_number=params.get("To", ""), answered_at=timezone.now(),
    )


@transaction.atomic
def finalize(call: Call, *, status: str | None = None, reason: str = "", hangup_cause: str = "",
             duration_seconds: int | None = None) -> Call:
    """Mark a call ended; later, better-informed callbacks may still add the cause and duration."""
    call = Call.objects.select_for_update().get(pk=call.pk)
    now = timezone.now()
    if not call.has_ended:
        call.status = status or Call.Status.COMPLETED
        call.ended_at = now
    elif status and status != call.status and status != Call.Status.COMPLETED:
        call.status = status  # e.g. a hangup callback saying "busy" after the stream closed
    call.end_reason = call.end_reason or reason
    call.hangup_cause = hangup_cause or call.hangup_cause
    if duration_seconds is not None:
        call.duration_seconds = duration_seconds
    elif call.duration_seconds is None and call.answered_at:
        call.duration_seconds = int((call.ended_at - call.answered_at).total_seconds())
    call.save()
    return call
