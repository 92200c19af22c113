"""The HTTP requests Plivo makes: answer (inbound_call), hangup and stream status callbacks of a bot's
inbound calls, and the per-call answer, ring, hangup, machine-detection and voicemail URLs of outbound calls.

Every one is authenticated with Plivo's V3 signature made with the account's Plivo auth token, and
each signed request is accepted once: a replay (the same nonce again) is refused.
"""
from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from voicebots.api.errors import error_response
from voicebots.bots.models import Voicebot
from voicebots.calls import services as calls
from voicebots.calls.models import Call
from voicebots.deployment import capacity
from voicebots.providers.plivo_api import (PlivoApiError, hangup_xml, signature_is_valid, speak_and_hangup_xml,
                                           stream_answer_xml, voicemail_xml)

from . import nonces, rest
from .tokens import stream_token

logger = logging.getLogger(__name__)

AT_CAPACITY = "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye."
# A person we called is not asked to call us again.
AT_CAPACITY_OUTBOUND = "Sorry, we can't continue this call right now. Goodbye."


def _bot(auth_id: str, bot_id: str) -> Voicebot | None:
    try:
        pk = uuid.UUID(str(bot_id))
    except ValueError:
        return None
    return Voicebot.objects.select_related("account").filter(pk=pk, account__auth_id=auth_id).first()


def plivo_request_is_authentic(request, account) -> bool:
    if not settings.PLIVO_VERIFY_SIGNATURES:
        return True
    url = settings.PUBLIC_BASE_URL + request.get_full_path()  # the URL Plivo called, not the proxy's
    return signature_is_valid(
        url=url, params=dict(request.POST.lists()), method=request.method, auth_token=account.plivo_auth_token,
        nonce=request.headers.get("X-Plivo-Signature-V3-Nonce"), signature=request.headers.get("X-Plivo-Signature-V3"),
    )


def is_first_delivery(request, account) -> bool:
    """False for a replay of a signed request already received (no check when signatures are not checked)."""
    if not settings.PLIVO_VERIFY_SIGNATURES:
        return True
    return nonces.first_use(account.pk, request.headers.get("X-Plivo-Signature-V3-Nonce", ""))


def signed_by_plivo(resolve, label: str):
    """A view decorator: resolve the object the URL names (None: 404); refuse unsigned requests and replays."""
    def decorate(view):
        @csrf_exempt
        @require_POST
        def wrapper(request, auth_id, **kwargs):
            (key,) = kwargs.values()
            target = resolve(auth_id, key)
            if target is None:
                return error_response(404, f"{label} {key} not found.")
            if not plivo_request_is_authentic(request, target.account):
                logger.warning("Refused a %s request with a bad Plivo signature for %s %s", view.__name__, label, key)
                return error_response(403, "The X-Plivo-Signature-V3 signature is missing or wrong.")
            if not is_first_delivery(request, target.account):
                logger.warning("Refused a replayed %s request for %s %s", view.__name__, label, key)
                return error_response(403, "This signed request was already received (its nonce was used): "
                                           "replays are refused.")
            return view(request, target)
        return wrapper
    return decorate


plivo_webhook = signed_by_plivo(_bot, "Voicebot")


def bot_path(bot) -> str:
    return f"/v1/Account/{bot.account.auth_id}/Voicebot/{bot.id}"


def websocket_base() -> str:
    base = settings.PUBLIC_BASE_URL
    return ("wss" + base[5:]) if base.startswith("https") else ("ws" + base[4:])


def xml_response(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="application/xml")


def stream_to_bot(bot, call) -> HttpResponse:
    """Answer XML connecting the call's audio to the bot, with a token that lets only this call's stream in."""
    socket_url = f"{websocket_base()}{bot_path(bot)}/connect?token={stream_token(call.id)}"
    status_url = f"{settings.PUBLIC_BASE_URL}{bot_path(bot)}/stream_status"
    return xml_response(stream_answer_xml(socket_url, status_url))


def connect_or_refuse(bot, call) -> HttpResponse:
    """Connect the call to the bot if the deployment has room for it; if not, the caller is told so politely
    (not a dead line) and the record says why (deployment/capacity.py)."""
    if call.has_ended:  # Plivo asking again about a call already refused or over
        return xml_response(hangup_xml())
    admission = capacity.admit(str(call.id))
    if admission.admitted:
        return stream_to_bot(bot, call)
    calls.record_event(call, "refused_at_capacity", capacity=admission.capacity, load=admission.load)
    calls.finalize(call, status=Call.Status.FAILED, reason=admission.reason)
    line = AT_CAPACITY_OUTBOUND if call.direction == Call.Direction.OUTBOUND else AT_CAPACITY
    return xml_response(speak_and_hangup_xml(line))


@plivo_webhook
def inbound_call(request, bot):
    """Plivo's answer URL: create the call record and connect the call's audio to the bot."""
    return connect_or_refuse(bot, calls.answered_inbound(bot, request.POST))


def _call_of(bot, params) -> Call | None:
    call_uuid = params.get("CallUUID", "")
    return Call.objects.filter(account=bot.account, call_uuid=call_uuid).first() if call_uuid else None


@plivo_webhook
def hangup(request, bot):
    """Plivo's hangup URL: the final word on status, duration and cause."""
    call = _call_of(bot, request.POST)
    if call is not None:
        cause = request.POST.get("HangupCause", "")
        duration = request.POST.get("Duration", "")
        calls.finalize(call, status=calls.plivo_status(request.POST.get("CallStatus", "")),
                       reason=f"Call ended ({cause})." if cause else "Call ended.", hangup_cause=cause,
                       duration_seconds=int(duration) if duration.isdigit() else None)
    return HttpResponse(status=204)


@plivo_webhook
def stream_status(request, bot):
    call = _call_of(bot, request.POST)
    if call is not None:
        event = request.POST.get("Event", "unknown")
        calls.record_event(call, f"stream.{event}", **{k: v for k, v in request.POST.items() if k != "Event"})
    return HttpResponse(status=204)


# --- Outbound calls: URLs of one call, given to Plivo when it was placed ---------------------------

def _outbound_call(auth_id: str, call_id: str) -> Call | None:
    try:
        pk = uuid.UUID(str(call_id))
    except ValueError:
        return None
    return (Call.objects.select_related("account", "voicebot__account")
            .filter(pk=pk, account__auth_id=auth_id, direction=Call.Direction.OUTBOUND).first())


plivo_call_webhook = signed_by_plivo(_outbound_call, "Call")


def _answer_machine(call) -> HttpResponse:
    """A machine answered (synchronous detection): leave the message, hang up, or let the bot talk."""
    options = calls.dial_options(call)
    if options.get("voicemail_message"):
        calls.record_event(call, "voicemail_left")
        return xml_response(voicemail_xml(options["voicemail_message"]))
    if options.get("machine_detection") == "hangup":
        return xml_response(hangup_xml())
    return connect_or_refuse(call.voicebot, call)


@plivo_call_webhook
def outbound_answer(request, call):
    """The callee picked up: connect them to the bot."""
    if calls.is_other_leg(call, request.POST):
        calls.record_event(call, "duplicate_leg_hung_up", call_uuid=request.POST.get("CallUUID", ""))
        return xml_response(hangup_xml())
    call = calls.progressed(call, request.POST)
    if call.has_ended or call.voicebot is None:
        return xml_response(hangup_xml())
    if str(request.POST.get("Machine", "")).lower() == "true" and calls.machine_detected(call, request.POST):
        return _answer_machine(call)
    return connect_or_refuse(call.voicebot, call)


@plivo_call_webhook
def outbound_ring(request, call):
    calls.progressed(call, request.POST)
    return HttpResponse(status=204)


@plivo_call_webhook
def outbound_hangup(request, call):
    if calls.is_other_leg(call, request.POST):
        return HttpResponse(status=204)
    calls.hung_up(call, request.POST)
    return HttpResponse(status=204)


@plivo_call_webhook
def outbound_machine(request, call):
    """Asynchronous machine detection: a machine hears the voicemail message when one was set."""
    if calls.is_other_leg(call, request.POST):
        return HttpResponse(status=204)
    call = calls.progressed(call, request.POST)
    machine = calls.machine_detected(call, request.POST)
    message = calls.dial_options(call).get("voicemail_message")
    if machine and message and request.POST.get("IfMachine", "continue") == "continue" and not call.has_ended:
        try:
            rest.send_to_voicemail(call)
        except (rest.PlivoNotConfigured, PlivoApiError) as error:
            calls.record_event(call, "voicemail_failed", error=str(error)[:500])
    return HttpResponse(status=204)


@plivo_call_webhook
def outbound_voicemail(request, call):
    """Where a call is transferred once a machine answered: the message after the beep, then hang up."""
    message = calls.dial_options(call).get("voicemail_message")
    if not message:
        return xml_response(hangup_xml())
    calls.record_event(call, "voicemail_left")
    return xml_response(voicemail_xml(message))
