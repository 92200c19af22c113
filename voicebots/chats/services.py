"""A chat turn: load the bot and session, run the engine, store the turn."""
from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import transaction

from voicebots.bots.models import Voicebot
from voicebots.conversation import BaseEventSink, EventSink, LLMError, TurnResult, history_from_json, history_to_json

from .events import passage_dict, tool_call_dict
from .models import ChatSession, ChatTurn
from .runtime import load_bot_runtime


class SessionNotFound(Exception):
    pass


def _open_session(account, bot: Voicebot, session_id, channel: str) -> ChatSession:
    if session_id is None:
        return ChatSession.objects.create(account=account, voicebot=bot, channel=channel)
    session = ChatSession.objects.filter(pk=session_id, account=account, voicebot=bot).first()
    if session is None:
        raise SessionNotFound(f"Session {session_id} not found for this bot.")
    return session


def _prepare(account, bot_id, session_id, channel):
    bot = Voicebot.objects.select_related("account").get(pk=bot_id, account=account)
    session = _open_session(account, bot, session_id, channel)
    return session, load_bot_runtime(bot, session_id=str(session.id))


@transaction.atomic
def _record(session: ChatSession, user_text: str, result: TurnResult | None, error: str = "") -> ChatTurn:
    session = ChatSession.objects.select_for_update().get(pk=session.pk)
    index = session.turns.count()
    turn = ChatTurn(session=session, index=index, user_text=user_text, error=error)
    if result is not None:
        turn.assistant_text = result.text
        turn.stop_reason = result.stop_reason
        turn.tool_calls = [tool_call_dict(record.call, record.result) for record in result.tool_calls]
        turn.passages = [passage_dict(p) for p in result.passages]
        turn.timings = {k: (round(v, 2) if v is not None else None) for k, v in result.timings.items()}
        turn.usage = result.usage
        session.history = history_to_json(result.history)
    turn.save()
    session.save(update_fields=["history", "updated_at"])
    return turn


async def chat_turn(account, bot_id, message: str, *, session_id=None, channel: str = ChatSession.Channel.API,
                    sink: EventSink | None = None) -> tuple[ChatSession, TurnResult]:
    """Run one turn. Raises Voicebot.DoesNotExist, SessionNotFound, ProviderUnavailable or LLMError."""
    session, runtime = await sync_to_async(_prepare)(account, bot_id, session_id, channel)
    engine = runtime.engine()
    try:
        result = await engine.run_turn(runtime.config, history_from_json(session.history), message,
                                       sink or BaseEventSink())
    except LLMError as error:
        await sync_to_async(_record)(session, message, None, error.message)
        raise
    await sync_to_async(_record)(session, message, result)
    return session, result
