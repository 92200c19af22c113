"""Plivo's bidirectional audio stream: Plivo frames in, the call runtime, Plivo frames out.

Route: /v1/Account/{auth_id}/Voicebot/{bot_id}/connect?token=... The token is either the short-lived
per-call token of our answer XML (inbound calls) or the bot's stream secret (the customer's own XML). A
wrong token is refused before the handshake completes; nothing else runs until Plivo's `start` frame.
Everything that is not Plivo's (the pipeline, vendors, the record) is the runtime's (voicebots/callruntime).
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from voicebots.callruntime.database import in_call_database_thread
from voicebots.callruntime.outbox import Outbox
from voicebots.callruntime.runtime import CallRuntime
from voicebots.callruntime.sockets import CallSocketConsumer

from .access import StreamAccess, authorize_stream, claim_stream
from .codec import (
    AudioCleared,
    CheckpointPlayed,
    DtmfReceived,
    MalformedFrame,
    MediaReceived,
    PlivoStreamCodec,
    StreamStarted,
    StreamStopped,
)
from .rest import hang_up_call, transfer_call

logger = logging.getLogger(__name__)


class PlivoLeg:
    """The runtime's Leg over a Plivo stream: messages through the outbox, hang-up and transfer through
    Plivo's REST API."""

    def __init__(self, consumer: PlivoStreamConsumer, codec: PlivoStreamCodec) -> None:
        self.consumer = consumer
        self.codec = codec
        self.input_format = self.output_format = codec.audio_format
        self.outbox = Outbox(consumer.send_message, codec.play_audio, label=str(consumer.call_id))

    @property
    def dropped_frames(self) -> int:
        return self.outbox.dropped

    async def send_audio(self, frame: bytes) -> None:
        self.outbox.put_audio(frame)

    async def checkpoint(self, name: str) -> None:
        self.outbox.put_message(self.codec.checkpoint(name))

    async def clear(self) -> None:
        self.outbox.drop_audio_and_send(self.codec.clear_audio())

    async def send_dtmf(self, digits: str) -> None:
        self.outbox.put_message(self.codec.send_dtmf(digits))

    async def transfer(self, destination: str, summary: str = "") -> bool:
        """Hand the caller over through Plivo (warm with a `summary`: see transfer.py); the stream then stops
        and the runtime finalizes the record."""
        return await in_call_database_thread(transfer_call)(self.consumer.call, destination, summary)

    async def hang_up(self) -> None:
        await in_call_database_thread(hang_up_call)(self.consumer.call)
        await self.consumer.close()


class PlivoStreamConsumer(CallSocketConsumer):
    call_id: str | None = None

    async def connect(self):
        kwargs = self.scope["url_route"]["kwargs"]
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [""])[0]
        self.access: StreamAccess | None = await in_call_database_thread(authorize_stream)(
            kwargs["auth_id"], kwargs["bot_id"], token)
        if self.access is None:
            await self.close(code=4403)  # before accept: the handshake is refused
            return
        self.call_id = str(self.access.call.id) if self.access.call else None
        self.codec = PlivoStreamCodec()
        self.runtime: CallRuntime | None = None
        self.pump: asyncio.Task | None = None
        self.malformed = 0
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        try:
            event = self.codec.parse(text_data)
        except MalformedFrame as problem:
            return self._skip(str(problem))
        runtime = self.runtime
        if isinstance(event, MediaReceived):
            if runtime is None:
                return self._skip("media before start")
            if event.from_caller and event.audio:
                runtime.feed_audio(event.audio)
        elif isinstance(event, StreamStarted):
            await self._on_start(event)
        elif runtime is None:
            self._skip(f"{type(event).__name__} before start")
        elif isinstance(event, CheckpointPlayed):
            runtime.on_checkpoint_played(event.name)
        elif isinstance(event, AudioCleared):
            runtime.on_audio_cleared()
        elif isinstance(event, DtmfReceived):
            runtime.on_dtmf(event.digit)
        elif isinstance(event, StreamStopped):
            await self._end("The call's audio stream stopped.")

    async def disconnect(self, code):
        await self._end("The call's audio stream closed.")

    def _skip(self, why: str) -> None:
        self.malformed += 1
        if self.malformed <= 5:  # one bad peer must not flood the log
            logger.warning("Skipped a Plivo frame on call %s: %s", self.call_id, why)

    async def _on_start(self, start: StreamStarted) -> None:
        if self.runtime is not None:
            return self._skip("a second start")
        call = await in_call_database_thread(claim_stream)(self.access, start.call_id, start.stream_id)
        if call is None:
            logger.warning("Refused a stream for ended or foreign call %s", start.call_id)
            return await self.close(code=4409)
        self.call_id, self.call = str(call.id), call
        leg = PlivoLeg(self, self.codec)  # in the stream's format: mu-law as our XML asks, or L16 if a customer's
        self.pump = asyncio.create_task(leg.outbox.pump())
        direction = call.direction
        self.runtime = CallRuntime(leg, call, self.access.bot, channel=f"phone call ({direction})")
        if start.audio_format is None:  # the codec falls back to mu-law, which is what Plivo is asked for
            await self.runtime.record_event("unsupported_audio", encoding=start.content_type)
        await self.runtime.start()

    async def _end(self, reason: str) -> None:
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            await runtime.end(reason)
        if getattr(self, "pump", None) is not None:
            self.pump.cancel()
