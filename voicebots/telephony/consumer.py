"""Plivo's bidirectional audio stream: Plivo frames in, the call pipeline, Plivo frames out.

Route: /v1/Account/{auth_id}/Voicebot/{bot_id}/connect?token=... The token is either the short-lived
per-call token of our answer XML (inbound calls) or the bot's stream secret (the customer's own XML). A
wrong token is refused before the handshake completes; nothing else runs until Plivo's `start` frame.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections import deque
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from voicebots.calls import live
from voicebots.calls import services as calls
from voicebots.calls.models import Call
from voicebots.calls.templating import personalized
from voicebots.chats.runtime import BotRuntime, load_bot_runtime
from voicebots.providers.silero_vad import SileroActivity, shared_detector
from voicebots.voice.announcement import Announcement
from voicebots.voice.control import CallControl
from voicebots.voice.session import CallSession, SessionOptions

from . import vendors
from .access import StreamAccess, authorize_stream, claim_stream
from .database import in_call_database_thread
from .recording import AudioCache, CallRecorder, recorded_audio
from .rest import hang_up_call, transfer_call

logger = logging.getLogger(__name__)

SEND_QUEUE_FRAMES = 1500  # 30 s of audio: a peer that stops reading loses audio, never the call
SEND_TIMEOUT_S = 2.0
FRAMES_PER_MESSAGE = 5  # 100 ms of audio per playAudio at most
TIME_LIMIT_GOODBYE_S = 10  # the polite goodbye starts this long before the call's time limit


class PlivoTransport:
    """The pipeline's Transport over the Plivo socket, with a bounded outbox so a slow peer cannot block it.

    Frames come from the pipeline 20 ms at a time, but the speech usually exists faster than it plays:
    frames already waiting in the outbox go out together, up to 100 ms per `playAudio` (Plivo's advice is
    20-100 ms), which cuts the messages of a reply fivefold without delaying any of them.
    """

    def __init__(self, consumer: "PlivoStreamConsumer") -> None:
        self.consumer = consumer
        self.stream_id = ""
        self.outbox: deque[bytes | str] = deque()  # audio frames, and other messages already as JSON
        self.ready = asyncio.Event()
        self.dropped = 0

    def _put(self, item: bytes | str) -> None:
        if len(self.outbox) >= SEND_QUEUE_FRAMES:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("Plivo is not reading the stream of call %s; dropping audio", self.consumer.call_id)
            return
        self.outbox.append(item)
        self.ready.set()

    async def send_audio(self, frame: bytes) -> None:
        self._put(frame)

    async def checkpoint(self, name: str) -> None:
        self._put(json.dumps({"event": "checkpoint", "streamId": self.stream_id, "name": name}))

    async def clear(self) -> None:
        self.outbox.clear()  # what we have not sent yet need not be cleared by Plivo
        self._put(json.dumps({"event": "clearAudio", "streamId": self.stream_id}))

    async def send_dtmf(self, digits: str) -> None:
        self._put(json.dumps({"event": "sendDTMF", "dtmf": digits}))

    async def transfer(self, destination: str, summary: str = "") -> bool:
        return await self.consumer.transfer(destination, summary)

    async def hang_up(self) -> None:
        # In a task of its own: the pipeline calls this from its own tasks, which hanging up cancels.
        asyncio.create_task(self.consumer.hang_up("The bot ended the call."))

    def _next_message(self) -> str:
        item = self.outbox.popleft()
        if isinstance(item, str):
            return item
        audio = [item]
        while self.outbox and isinstance(self.outbox[0], bytes) and len(audio) < FRAMES_PER_MESSAGE:
            audio.append(self.outbox.popleft())
        return json.dumps({"event": "playAudio", "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000,
                                                           "payload": base64.b64encode(b"".join(audio)).decode()}})

    async def pump(self) -> None:
        """Send the outbox in order; give up on a message the peer does not take within SEND_TIMEOUT_S."""
        while True:
            if not self.outbox:
                self.ready.clear()
                await self.ready.wait()
                continue
            message = self._next_message()
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.consumer.send(text_data=message)
            except TimeoutError:
                self.dropped += 1


class PlivoStreamConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = None  # talks only to its own socket: no Redis connection held per call (see __call__)
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
        self.transport = PlivoTransport(self)
        self.handler = None
        self.live = None
        self.ended = False
        self.malformed = 0
        self.pump = asyncio.create_task(self.transport.pump())
        await self.accept()

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
        # for each 20 ms audio frame. This consumer reaches the database only through database_sync_to_async,
        # which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            frame = json.loads(text_data) if text_data is not None else None
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            return self._skip("not a JSON object")
        event = frame.get("event")
        if event == "start":
            await self._on_start(frame)
        elif self.handler is None:
            self._skip(f"{event!r} before start")
        elif event == "media":
            self._on_media(frame)
        elif event in ("playedStream", "played"):
            self.handler.on_checkpoint_played(str(frame.get("name", "")))
        elif event == "clearedAudio":
            self.handler.on_audio_cleared()
        elif event == "dtmf":
            digit = (frame.get("dtmf") or {}).get("digit")
            if isinstance(digit, str) and digit:
                self.handler.on_dtmf(digit)
            else:
                self._skip("dtmf without a digit")
        elif event == "stop":
            await self._end("The call's audio stream stopped.")
        else:
            self._skip(f"unknown event {event!r}")

    async def disconnect(self, code):
        if getattr(self, "access", None) is not None:
            await self._end("The call's audio stream closed.")

    def _skip(self, why: str) -> None:
        self.malformed += 1
        if self.malformed <= 5:  # one bad peer must not flood the log
            logger.warning("Skipped a Plivo frame on call %s: %s", self.call_id, why)

    def _on_media(self, frame: dict) -> None:
        media = frame.get("media")
        try:
            audio = base64.b64decode(media["payload"], validate=True)
        except (TypeError, KeyError, binascii.Error):
            return self._skip("media without a valid payload")
        if (media.get("track") or "inbound") == "inbound" and audio:
            self.handler.feed_audio(audio)

    async def _on_start(self, frame: dict) -> None:
        if self.handler is not None:
            return self._skip("a second start")
        start = frame.get("start") if isinstance(frame.get("start"), dict) else {}
        call_uuid, stream_id = str(start.get("callId", "")), str(start.get("streamId", ""))
        encoding = (start.get("mediaFormat") or {}).get("encoding", "audio/x-mulaw")
        if not call_uuid or not stream_id:
            self._skip("start without callId or streamId")
            return await self.close(code=4400)
        call = await in_call_database_thread(claim_stream)(self.access, call_uuid, stream_id)
        if call is None:
            logger.warning("Refused a stream for ended or foreign call %s", call_uuid)
            return await self.close(code=4409)
        self.call_id, self.call = str(call.id), call
        # An outbound call's variables fill the {{placeholders}} of the prompt and welcome message.
        self.bot = personalized(self.access.bot, call.variables)
        self.transport.stream_id = stream_id
        if "mulaw" not in str(encoding):
            await self._record("unsupported_audio", encoding=str(encoding))
        runtime = await in_call_database_thread(self._load_runtime)(call)
        detector = await asyncio.to_thread(shared_detector)  # loads the model once, not on the event loop
        self.handler = self._build_handler(runtime, detector)
        await self.handler.start()
        # From here on the call is counted, and takes commands from any web process (calls/live.py).
        self.live = await live.attach(self.call_id, self.handler, self.hang_up)

    def _load_runtime(self, call: Call):
        """The bot's conversation settings, or None when a key the call needs is missing (recorded on the call)."""
        bot = self.bot
        missing = vendors.missing_keys(bot)
        if missing:
            call.end_reason = f"Not configured: {', '.join(missing)} missing; the caller heard an apology."
            call.save(update_fields=["end_reason", "updated_at"])
            return None
        call_info = {"call_uuid": call.call_uuid, "from": call.from_number, "to": call.to_number,
                     "direction": call.direction}
        return load_bot_runtime(
            bot, session_id=str(call.id), call_info=call_info,
            context={"Caller's number": call.from_number or "unknown", "Number called": call.to_number or "unknown",
                     "Channel": f"phone call ({call.direction}); keep answers short and speakable"},
        )

    def _build_handler(self, runtime, detector):
        if runtime is None:
            return Announcement(self.transport, recorded_audio("not_configured"),
                                "Sorry, this line is not set up to take calls yet.")
        bot = self.bot
        # The call-control tools are answered before the bot's functions: the engine runs them through it.
        # Keys are offered on outbound calls, which may reach an automated phone menu.
        send_dtmf = self.transport.send_dtmf if self.call.direction == "outbound" else None
        control = CallControl(runtime.engine_parts.get("tool_runner"), transfer_destination=bot.transfer_destination,
                              send_dtmf=send_dtmf)
        engine = BotRuntime(runtime.config, {**runtime.engine_parts, "tool_runner": control}).engine()
        return CallSession(
            config=runtime.config, engine=engine, transport=self.transport,
            stt=vendors.speech_to_text(bot), tts=vendors.voice(bot), fallback_tts=vendors.fallback_voice(bot),
            audio_cache=AudioCache(), observer=CallRecorder(self.call), control=control,
            activity=SileroActivity(detector=detector), options=session_options(bot),
        )

    async def transfer(self, destination: str, summary: str = "") -> bool:
        """Hand the caller over through Plivo (warm with a `summary`); the stream then stops and the call record
        is finalized."""
        call = getattr(self, "call", None)
        return call is not None and await in_call_database_thread(transfer_call)(call, destination, summary)

    async def _record(self, kind: str, **detail) -> None:
        await in_call_database_thread(calls.record_event)(self.call, kind, **detail)

    async def hang_up(self, reason: str) -> None:
        """End the call from our side: through Plivo's API when we can, and by closing the stream."""
        call = getattr(self, "call", None)
        if call is not None:
            await in_call_database_thread(hang_up_call)(call)
        await self._end(reason)
        await self.close()

    async def _end(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        if self.live is not None:
            await self.live.leave()
        handler, self.handler = self.handler, None
        if handler is not None:
            await handler.stop()
        self.pump.cancel()
        call = getattr(self, "call", None)
        if call is not None:
            history = getattr(handler, "history", None)
            await in_call_database_thread(_finish)(call, reason, history, self.transport.dropped)


def session_options(bot) -> SessionOptions:
    """The call settings of `bot` as the pipeline's options."""
    return SessionOptions(
        welcome_message=bot.welcome_message,
        interruptions_enabled=bot.interruptions_enabled,
        min_interruption_words=bot.interruption_min_words,
        backchannel_words=tuple(bot.backchannel_words),
        caller_silence_s=float(bot.call_timeout),
        # Plivo itself cuts outbound calls at max_call_duration: leave time to say goodbye before that.
        max_call_duration_s=max(bot.max_call_duration - TIME_LIMIT_GOODBYE_S, TIME_LIMIT_GOODBYE_S),
    )


def _finish(call: Call, reason: str, history, dropped_frames: int) -> None:
    if history is not None:
        Call.objects.filter(pk=call.pk).update(history=history, updated_at=timezone.now())
    if dropped_frames:
        calls.record_event(call, "audio_dropped", frames=dropped_frames)
    calls.finalize(call, reason=reason)
