"""A browser call: the voice playground's socket, a second transport of the call runtime.

The page captures the microphone (16 kHz 16-bit PCM), sends it here over the app's own origin, and plays the
bot's voice as it streams back (protocol: voice_protocol.py). Only a signed-in member of the bot's account (or a
superuser) may call; an account has at most BROWSER_CALLS_PER_ACCOUNT calls at once, each at most
BROWSER_CALL_MAX_SECONDS, and a socket that sends no audio for BROWSER_CALL_IDLE_SECONDS is closed.
"""
from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings

from voicebots.callruntime.database import in_call_database_thread
from voicebots.callruntime.outbox import Outbox
from voicebots.callruntime.runtime import CallRuntime
from voicebots.callruntime.sockets import CallSocketConsumer
from voicebots.calls.browser import TooManyBrowserCalls, open_browser_call
from voicebots.calls.services import record_event
from voicebots.core import clock

from . import voice_protocol as protocol
from .access import bot_for_user
from .voice_protocol import Audio, BrowserCallCodec, Cleared, HangUp, Played, ProtocolError, Start

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5
TIME_LIMIT_GRACE_S = 15  # past the limit the bot's goodbye should have ended the call; then the socket closes
END_SEND_TIMEOUT_S = 1.0
CHANNEL = "voice call from a web browser (the bot's playground)"


class BrowserLeg:
    """The runtime's Leg over the browser socket: audio as binary messages, the rest as JSON, through the
    outbox; the page is the whole network, so hanging up closes the socket and a transfer ends the call."""

    input_format = output_format = protocol.AUDIO_FORMAT

    def __init__(self, consumer: BrowserCallConsumer) -> None:
        self.consumer = consumer
        self.outbox = Outbox(consumer.send_message, bytes, label=str(consumer.call_id))

    @property
    def dropped_frames(self) -> int:
        return self.outbox.dropped

    def emit(self, event: dict) -> None:  # the runtime's LiveFeed
        self.outbox.put_message(BrowserCallCodec.event(event))

    async def send_audio(self, frame: bytes) -> None:
        self.outbox.put_audio(frame)

    async def checkpoint(self, name: str) -> None:
        self.outbox.put_message(BrowserCallCodec.checkpoint(name))

    async def clear(self) -> None:
        self.outbox.drop_audio_and_send(BrowserCallCodec.clear())

    async def send_dtmf(self, digits: str) -> None:
        logger.info("Keys %r not sent: a browser call has no keypad at the other end", digits)

    async def transfer(self, destination: str, summary: str = "") -> bool:
        """No phone network here: the page is told where the call would go (and what the person answering would
        be told), and the call ends."""
        self.emit({"type": "transfer", "to": destination, **({"summary": summary} if summary else {})})
        runtime = self.consumer.runtime
        await in_call_database_thread(record_event)(runtime.call, "transferred", destination=destination,
                                                    simulated=True)
        runtime.spawn(runtime.hang_up(f"The bot transferred the call to {destination} "
                                      "(in the playground the call ends there)."))
        return True

    async def hang_up(self) -> None:
        await self.consumer.finish(protocol.NORMAL, "The bot ended the call.")


class BrowserCallConsumer(CallSocketConsumer):
    call_id: str | None = None

    async def connect(self):
        self.runtime: CallRuntime | None = None
        self.leg: BrowserLeg | None = None
        self.finished = False
        self.tasks: list[asyncio.Task] = []
        # Accepted before any check, so that a refusal can say why: a refused handshake shows the page nothing.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return await self.finish(protocol.NOT_SIGNED_IN, "Sign in to talk to a bot.")
        self.user = user
        self.bot = await sync_to_async(bot_for_user)(user, self.scope["url_route"]["kwargs"]["bot_id"])
        if self.bot is None:
            return await self.finish(protocol.NO_SUCH_BOT, "There is no such bot in your accounts.")
        self.opened_at = self.last_audio_at = clock.now()
        self.tasks.append(asyncio.create_task(self._watch()))

    async def receive(self, text_data=None, bytes_data=None):
        if self.finished:
            return
        try:
            message = BrowserCallCodec.parse(text_data, bytes_data)
            runtime = self.runtime
            if isinstance(message, Audio):
                if runtime is None:
                    raise ProtocolError(protocol.MALFORMED, "Audio before the start message.")
                self.last_audio_at = clock.now()
                runtime.feed_audio(message.data)
            elif isinstance(message, Start):
                if runtime is not None:
                    raise ProtocolError(protocol.MALFORMED, "A second start message.")
                try:
                    await self._start()
                except Exception:  # the page must hear why, and a started record must be finalized
                    logger.exception("A browser call could not start")
                    await self.finish(protocol.SERVER_ERROR, "The server could not start the call; try again.")
            elif runtime is None:
                raise ProtocolError(protocol.MALFORMED, f"A {type(message).__name__.lower()} message before start.")
            elif isinstance(message, Played):
                runtime.on_checkpoint_played(message.name)
            elif isinstance(message, Cleared):
                runtime.on_audio_cleared()
            elif isinstance(message, HangUp):
                await self.finish(protocol.NORMAL, "The caller hung up.")
        except ProtocolError as error:
            await self.finish(error.code, error.reason)

    async def disconnect(self, code):
        await self.finish(None, "The browser closed the connection.")

    async def _start(self) -> None:
        try:
            call = await in_call_database_thread(open_browser_call)(self.bot, self.user)
        except TooManyBrowserCalls as error:
            return await self.finish(protocol.TOO_MANY_CALLS, str(error))
        self.call_id = str(call.id)
        self.leg = leg = BrowserLeg(self)
        max_seconds = settings.BROWSER_CALL_MAX_SECONDS
        self.runtime = CallRuntime(leg, call, self.bot, channel=CHANNEL, max_duration_s=max_seconds, live=leg)
        self.started_at = self.last_audio_at = clock.now()
        leg.outbox.put_message(BrowserCallCodec.ready(self.call_id, max_seconds))
        self.tasks.append(asyncio.create_task(leg.outbox.pump()))
        await self.runtime.start()

    async def _watch(self) -> None:
        """Closes a socket that sends no audio (or no start) for too long, and a call past its time limit."""
        idle_s, limit_s = settings.BROWSER_CALL_IDLE_SECONDS, settings.BROWSER_CALL_MAX_SECONDS + TIME_LIMIT_GRACE_S
        while not self.finished:
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = clock.now()
            if now - self.last_audio_at > idle_s:
                what = "audio from the microphone" if self.runtime is not None else "start message"
                return await self.finish(protocol.NO_AUDIO, f"No {what} for {idle_s} s.")
            if self.runtime is not None and now - self.started_at > limit_s:
                return await self.finish(protocol.TIME_LIMIT, "The call reached its time limit.")

    async def finish(self, code: int | None, reason: str) -> None:
        """End the call once: the record first, then the page is told why and the socket closes with `code`
        (None: the browser already closed it)."""
        if self.finished:
            return
        self.finished = True
        if self.runtime is not None:
            await self.runtime.end(reason if code in (None, protocol.NORMAL) else f"Closed ({code}): {reason}")
        others = [task for task in self.tasks if task is not asyncio.current_task()]  # the watcher may be finishing
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if code is None:
            return
        if code != protocol.NORMAL:
            logger.info("Closing browser call %s (%s): %s", self.call_id, code, reason)
        try:
            async with asyncio.timeout(END_SEND_TIMEOUT_S):
                await self.send(text_data=BrowserCallCodec.end(code, reason))
        except TimeoutError:
            pass
        await self.close(code=code, reason=reason)
