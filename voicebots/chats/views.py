"""POST /v1/Account/{auth_id}/Voicebot/{id}/chat: JSON, or server-sent events when asked for."""
from __future__ import annotations

import asyncio
import json
import uuid

from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

from voicebots.api.errors import error_body
from voicebots.api.rendering import ApiJSONRenderer
from voicebots.api.serializers import StrictSerializer
from voicebots.bots.views import VoicebotViewSet
from voicebots.conversation import LLMError

from .models import ChatSession
from .events import EmittingSink, passage_dict, tool_call_dict
from .runtime import ProviderUnavailable, language_model
from .services import SessionNotFound, chat_turn


class ServerSentEventsRenderer(BaseRenderer):
    """Lets clients ask for `text/event-stream`; errors before the stream starts become one `error` event."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return sse("error", data) if isinstance(data, dict) else b""


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class ChatRequestSerializer(StrictSerializer):
    message = serializers.CharField(max_length=8000, trim_whitespace=True)
    session_id = serializers.UUIDField(required=False, allow_null=True)


class ChatResponseSerializer(serializers.Serializer):
    response = serializers.CharField()
    session_id = serializers.UUIDField()
    stop_reason = serializers.CharField()
    tool_calls = serializers.ListField(child=serializers.DictField())
    passages = serializers.ListField(child=serializers.DictField())
    timings = serializers.DictField()


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class BadGateway(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY


def turn_summary(session, result) -> dict:
    return {
        "response": result.text, "session_id": str(session.id), "stop_reason": result.stop_reason,
        "tool_calls": [tool_call_dict(r.call, r.result) for r in result.tool_calls],
        "passages": [passage_dict(p) for p in result.passages],
        "timings": {k: (round(v, 2) if v is not None else None) for k, v in result.timings.items()},
    }


class VoicebotChatViewSet(VoicebotViewSet):
    renderer_classes = [ApiJSONRenderer, ServerSentEventsRenderer]
    rate_classes = {"chat": "chat"}  # see api/rate_limits.py
    error_statuses = {"chat": (502, 503)}  # see api/openapi_hooks.py

    @extend_schema(request=ChatRequestSerializer, responses=ChatResponseSerializer,
                   description="Send a message to the bot. Continue a conversation with `session_id`. "
                               "With `Accept: text/event-stream` the reply streams as server-sent events.")
    def chat(self, request, *args, **kwargs):
        bot = self.get_object()
        body = ChatRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message, session_id = body.validated_data["message"], body.validated_data.get("session_id")
        if not message:
            raise exceptions.ValidationError({"message": ["This field may not be blank."]})
        if request.accepted_renderer.format == "sse":
            return self._stream(request.account, bot, message, session_id)
        try:
            session, result = async_to_sync(chat_turn)(request.account, bot.id, message, session_id=session_id)
        except ProviderUnavailable as error:
            raise ServiceUnavailable(error.message)
        except SessionNotFound as error:
            raise exceptions.NotFound(str(error))
        except LLMError as error:
            raise BadGateway(f"The language model did not answer: {error.message}")
        return Response(turn_summary(session, result))

    def _stream(self, account, bot, message: str, session_id: uuid.UUID | None) -> StreamingHttpResponse:
        bot_id = bot.id
        try:
            async_to_sync(_check_llm_configured)(bot.llm_provider)
        except ProviderUnavailable as error:
            raise ServiceUnavailable(error.message)
        if session_id and not ChatSession.objects.filter(pk=session_id, account=account, voicebot_id=bot_id).exists():
            raise exceptions.NotFound(f"Session {session_id} not found for this bot.")
        response = StreamingHttpResponse(_event_stream(account, bot_id, message, session_id),
                                         content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # let nginx pass events through as they come
        return response


async def _check_llm_configured(provider: str) -> None:
    language_model(provider)


async def _event_stream(account, bot_id, message, session_id):
    events: asyncio.Queue = asyncio.Queue()

    async def run():
        try:
            session, result = await chat_turn(account, bot_id, message, session_id=session_id,
                                              sink=EmittingSink(events.put))
            await events.put({"type": "done", **turn_summary(session, result)})
        except SessionNotFound as error:
            await events.put({"type": "error", **error_body(str(error))})
        except (ProviderUnavailable, LLMError) as error:
            await events.put({"type": "error", **error_body(error.message)})
        finally:
            await events.put(None)

    task = asyncio.create_task(run())
    try:
        while (event := await events.get()) is not None:
            yield sse(event.pop("type"), event)
    finally:
        task.cancel()  # the client went away: stop the model too
