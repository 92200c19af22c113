"""The chat playground's WebSocket: a signed-in member talks to one of their accounts' bots (see access.py).

Client -> server: {"type": "message", "text": "..."} and {"type": "new"} (start a new conversation).
Server -> client: the engine's events ({"type": "retrieval" | "first_token" | "text" | "tool_started" |
"tool_finished"}), then {"type": "done", ...} or {"type": "error", "error": "..."}.
"""
from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from voicebots.chats.events import EmittingSink
from voicebots.chats.models import ChatSession
from voicebots.chats.runtime import ProviderUnavailable, language_model
from voicebots.chats.services import SessionNotFound, chat_turn
from voicebots.chats.views import turn_summary
from voicebots.conversation import LLMError

from .access import bot_for_user

MAX_MESSAGE_CHARS = 8000


class PlaygroundConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = None  # talks only to its own socket: no Redis connection held per page
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.bot = await sync_to_async(bot_for_user)(user, self.scope["url_route"]["kwargs"]["bot_id"])
        if self.bot is None:
            await self.close(code=4404)
            return
        self.account = self.bot.account  # the conversation belongs to the bot's account
        self.session_id = None
        self.turn: asyncio.Task | None = None
        await self.accept()
        try:
            language_model(self.bot.llm_provider)
        except ProviderUnavailable as error:
            await self.send_json({"type": "error", "error": error.message})

    @classmethod
    async def decode_json(cls, text_data):
        try:
            return json.loads(text_data)
        except (ValueError, RecursionError):  # answered as an unknown message, never a crash
            return None

    async def disconnect(self, code):
        if getattr(self, "turn", None):
            self.turn.cancel()

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "new":
            self.session_id = None
            await self.send_json({"type": "new"})
        elif kind == "message":
            text = str(content.get("text", "")).strip()[:MAX_MESSAGE_CHARS]
            if not text:
                await self.send_json({"type": "error", "error": "Type a message first."})
            elif self.turn and not self.turn.done():
                await self.send_json({"type": "error", "error": "The bot is still answering."})
            else:
                self.turn = asyncio.create_task(self._answer(text))
        else:
            await self.send_json({"type": "error", "error": "Unknown message type."})

    async def _answer(self, text: str) -> None:
        try:
            session, result = await chat_turn(self.account, self.bot.id, text, session_id=self.session_id,
                                              channel=ChatSession.Channel.PLAYGROUND,
                                              sink=EmittingSink(self.send_json))
        except (ProviderUnavailable, LLMError) as error:
            await self.send_json({"type": "error", "error": error.message})
            return
        except SessionNotFound:
            self.session_id = None
            await self.send_json({"type": "error", "error": "That conversation is gone; start a new one."})
            return
        self.session_id = session.id
        await self.send_json({"type": "done", **turn_summary(session, result)})
