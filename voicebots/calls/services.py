"""Call records: created when Plivo calls us, finalized from its callbacks and from the stream."""
from __future__ import annotations

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone

from voicebots.analysis import services as analysis
from voicebots.webhooks import events as webhook_events

from .models import Call, CallEvent

# Sent (with `call`) when Plivo's hangup callback has made an outbound call's status final.
call_finished = Signal()

LIVE = (Call.Status.QUEUED, Call.Status.RINGING, Call.Status.IN_PROGRESS)
_PROGRESS = {Call.Status.QUEUED: 0, Call.Status.RINGING: 1, Call.Status.IN_PROGRESS: 2}
_OUTBOUND_END_REASONS = {
    Call.Status.BUSY: "The line was busy.", Call.Status.NO_ANSWER: "Nobody answered.",
    Call.Status.CANCELED: "The call was cancelled before it was answered.",
    Call.Status.VOICEMAIL: "An answering machine picked up.",
}

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


@transaction.atomic(savepoint=False)
def finalize(call: Call, *, status: str | None = None, reason: str = "", hangup_cause: str = "",
             duration_seconds: int | None = None) -> Call:
    """Mark a call ended; later, better-informed callbacks may still add the cause and duration."""
    call = Call.objects.select_for_update().get(pk=call.pk)
    now = timezone.now()
    ends_now = not call.has_ended
    if ends_now:
        call.status = status or Call.Status.COMPLETED
        call.ended_at = now
    elif status and status != call.status and status != Call.Status.COMPLETED:
        call.status = status  # e.g. a hangup callback saying "busy" after the stream closed
    # A reason may quote a vendor's error at length: it is cut to fit rather than fail the call's end.
    call.end_reason = call.end_reason or reason[:Call._meta.get_field("end_reason").max_length]
    call.hangup_cause = hangup_cause or call.hangup_cause
    if duration_seconds is not None:
        call.duration_seconds = duration_seconds
    elif call.duration_seconds is None and call.answered_at:
        call.duration_seconds = int((call.ended_at - call.answered_at).total_seconds())
    call.save()
    if ends_now:  # post-call work, once this commits: the call.ended webhook first, then the analysis
        analysis.mark_pending(call)
        webhook_events.call_ended(call)
        analysis.queue_after_commit(call)
    return call


# --- Outbound calls ------------------------------------------------------------------------------

def new_outbound(account, bot, *, from_number: str, to_number: str, variables: dict) -> Call:
    return Call.objects.create(account=account, voicebot=bot, direction=Call.Direction.OUTBOUND,
                               status=Call.Status.QUEUED, from_number=from_number, to_number=to_number,
                               variables=variables)


def record_dial(call: Call, **options) -> None:
    """Remember how the call was placed; its callbacks read it back (see dial_options)."""
    record_event(call, "dial", **options)


def dial_options(call: Call) -> dict:
    event = call.events.filter(kind="dial").order_by("-id").first()
    return event.detail if event else {}


def mark_placed(call: Call, request_uuid: str) -> None:
    # An update of one column: callbacks may already have moved the status on.
    Call.objects.filter(pk=call.pk).update(request_uuid=request_uuid, updated_at=timezone.now())
    call.request_uuid = request_uuid


def is_other_leg(call: Call, params) -> bool:
    """A callback about a different Plivo call than the one this record follows (a duplicate placement)."""
    call_uuid = params.get("CallUUID", "")
    return bool(call.call_uuid and call_uuid and call_uuid != call.call_uuid)


def progressed(call: Call, params) -> Call:
    """A ring or answer callback: the status moves forward only, and never out of an end state.

    One conditional UPDATE, so racing callbacks cannot move it back; `call` is brought up to date.
    """
    status = plivo_status(params.get("CallStatus", ""))
    call_uuid = params.get("CallUUID", "")
    earlier = [known for known, rank in _PROGRESS.items() if rank < _PROGRESS.get(status, -1)]
    now = timezone.now()
    changes = {"status": status, "updated_at": now}
    if call_uuid:
        changes["call_uuid"] = call_uuid
    if status == Call.Status.IN_PROGRESS:
        changes["answered_at"] = Coalesce(F("answered_at"), Value(now))
    same_leg = (Q(call_uuid="") | Q(call_uuid=call_uuid)) if call_uuid else Q()
    moved = earlier and Call.objects.filter(same_leg, pk=call.pk, status__in=earlier).update(**changes)
    if moved:
        call.status, call.call_uuid = status, call_uuid or call.call_uuid
        if status == Call.Status.IN_PROGRESS:
            call.answered_at = call.answered_at or now
    else:
        call.refresh_from_db(fields=["status", "call_uuid", "answered_at", "ended_at"])
    return call


def machine_detected(call: Call, params) -> bool:
    """Record the machine-detection result; returns whether a machine answered."""
    machine = str(params.get("Machine", "")).lower() == "true"
    record_event(call, "machine_detection", machine=machine, if_machine=params.get("IfMachine", ""))
    return machine


def answered_by_machine(call: Call) -> bool:
    return call.events.filter(kind="machine_detection", detail__machine=True).exists()


@transaction.atomic
def hung_up(call: Call, params) -> Call:
    """Plivo's hangup callback for an outbound call: the final status, cause and duration."""
    status = plivo_status(params.get("CallStatus", ""))
    if str(params.get("Machine", "")).lower() == "true" or answered_by_machine(call):
        status = Call.Status.VOICEMAIL
    cause = params.get("HangupCauseName") or params.get("HangupCause", "")
    duration = params.get("Duration", "")
    reason = _OUTBOUND_END_REASONS.get(status) or (f"Call ended ({cause})." if cause else "Call ended.")
    call = finalize(call, status=status, reason=reason, hangup_cause=cause,
                    duration_seconds=int(duration) if duration.isdigit() else None)
    call_finished.send(sender=Call, call=call)
    return call
