"""The HTTP requests Plivo makes: answer (inbound_call), hangup and stream status callbacks.

Every one is authenticated with Plivo's V3 signature made with the account's Plivo auth token.
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
from voicebots.providers.plivo_api import signature_is_valid, stream_answer_xml

from .tokens import stream_token

logger = logging.getLogger(__name__)


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


def plivo_webhook(view):
    """Resolve the bot of the URL and refuse requests Plivo did not sign."""
    @csrf_exempt
    @require_POST
    def wrapper(request, auth_id, bot_id):
        bot = _bot(auth_id, bot_id)
        if bot is None:
            return error_response(404, f"Voicebot {bot_id} not found.")
        if not plivo_request_is_authentic(request, bot.account):
            logger.warning("Refused a %s request with a bad Plivo signature for bot %s", view.__name__, bot.id)
            return error_response(403, "The X-Plivo-Signature-V3 signature is missing or wrong.")
        return view(request, bot)
    return wrapper


def bot_path(bot) -> str:
    return f"/v1/Account/{bot.account.auth_id}/Voicebot/{bot.id}"


def websocket_base() -> str:
    base = settings.PUBLIC_BASE_URL
    return ("wss" + base[5:]) if base.startswith("https") else ("ws" + base[4:])


@plivo_webhook
def inbound_call(request, bot):
    """Plivo's answer URL: create the call record and connect the call's audio to the bot."""
    call = calls.answered_inbound(bot, request.POST)
    socket_url = f"{websocket_base()}{bot_path(bot)}/connect?token={stream_token(call.id)}"
    status_url = f"{settings.PUBLIC_BASE_URL}{bot_path(bot)}/stream_status"
    return HttpResponse(stream_answer_xml(socket_url, status_url), content_type="application/xml")


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
