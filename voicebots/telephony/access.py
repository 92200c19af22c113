"""Who may open a Plivo stream for a bot, and which call record the stream belongs to.

A call carries one stream: once a stream has started for a live call, any other (a replayed token, a
second answer for the same call, the bot's stream secret) is refused and recorded on the call, so nobody
can listen in on a call by attaching to it.
"""
from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from voicebots.bots.models import Voicebot
from voicebots.calls import services as calls
from voicebots.calls.models import Call
from voicebots.webhooks import events as webhook_events

from .tokens import call_id_from_token

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamAccess:
    bot: Voicebot
    call: Call | None  # None: the bot's own websocket_url; the record is made when the stream starts


def authorize_stream(auth_id: str, bot_id: str, token: str) -> StreamAccess | None:
    try:
        bot_pk = uuid.UUID(str(bot_id))
    except ValueError:
        return None
    bot = Voicebot.objects.select_related("account").filter(pk=bot_pk, account__auth_id=auth_id).first()
    if bot is None or not token:
        return None
    call_id = call_id_from_token(token, settings.STREAM_TOKEN_MAX_AGE)
    if call_id is not None:
        call = Call.objects.filter(pk=call_id, voicebot=bot).first()
        if call is None or call.has_ended or _has_stream(call, attempt="(not started)"):
            return None
        return StreamAccess(bot, call)
    if hmac.compare_digest(token.encode(), bot.stream_secret.encode()):
        return StreamAccess(bot, None)
    return None


@transaction.atomic
def claim_stream(access: StreamAccess, call_uuid: str, stream_id: str) -> Call | None:
    """The call this stream carries, marked streaming; None for a call that already ended or is another's."""
    bot = access.bot
    if access.call is not None:
        call = Call.objects.select_for_update().get(pk=access.call.pk)
        if call.call_uuid and call.call_uuid != call_uuid:
            return None
    else:
        call = Call.objects.select_for_update().filter(account=bot.account, call_uuid=call_uuid).first()
        if call is None:
            call = Call(account=bot.account, voicebot=bot, direction=Call.Direction.OUTBOUND, call_uuid=call_uuid)
    if call.has_ended or _has_stream(call, attempt=stream_id):
        return None
    if call.account_id == bot.account_id:
        call.account = bot.account  # loaded with the bot: the call's start (its recording) need not read it again
    now = timezone.now()
    call.call_uuid = call_uuid
    call.stream_id = stream_id
    call.status = Call.Status.IN_PROGRESS
    call.answered_at = call.answered_at or now
    call.stream_started_at = now
    call.save()
    webhook_events.call_started(call)
    return call


def _has_stream(call: Call, *, attempt: str) -> bool:
    """Whether a stream already carries this call; if so, the `attempt` at another is recorded as an incident."""
    if not call.stream_id:
        return False
    logger.warning("Refused a second stream for live call %s", call.pk)
    calls.record_event(call, "second_stream_refused", stream_id=call.stream_id, refused_stream_id=attempt)
    return True
