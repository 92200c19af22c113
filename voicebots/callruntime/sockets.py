"""The Channels consumer base of a call's socket (a Plivo stream, a browser call): audio 50 times a second."""
from __future__ import annotations

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer


class CallSocketConsumer(AsyncWebsocketConsumer):
    """An AsyncWebsocketConsumer with a receive loop fit for live audio, and no channel layer."""

    channel_layer_alias = None  # talks only to its own socket: no Redis connection held per call (see __call__)

    async def __call__(self, scope, receive, send):
        # Channels' own loop takes each message through a new task and asyncio.wait: three turns of the event
        # loop per message. On a busy server a turn takes milliseconds, which held a call below the 50 frames a
        # second Plivo sends, so its audio fell further behind for as long as it lasted. Awaiting the queue
        # directly drains whatever has arrived in one turn. (No channel layer: this consumer has no groups.)
        self.scope, self.channel_layer, self.base_send = scope, None, send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message):
        # Channels' own dispatch first closes stale database connections in a worker thread, a thread hop
        # for each 20 ms audio frame. Call sockets reach the database only through database_sync_to_async,
        # which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def send_message(self, message: str | bytes) -> None:
        """Send one message of an Outbox: text as a text frame, bytes as a binary one."""
        if isinstance(message, bytes):
            await self.send(bytes_data=message)
        else:
            await self.send(text_data=message)
