"""One live call, whatever carries it: the single place where a call's pipeline begins and ends.

A transport (the Plivo stream consumer, the browser call consumer) owns its socket and its protocol. It makes
or claims the Call record, then hands the runtime a `Leg` (its side of the call: audio formats, an outbox,
hang-up and transfer on its network) and forwards what the peer sends:

    runtime = CallRuntime(leg, call, bot, channel="phone call (inbound)")
    await runtime.start()                   # bot settings, vendors in the leg's formats, the session, greeting
    runtime.feed_audio(audio)               # caller audio, in leg.input_format
    runtime.on_checkpoint_played(name); runtime.on_audio_cleared(); runtime.on_dtmf(digit)
    await runtime.end("The caller hung up.")   # stops the pipeline, finalizes the record (idempotent)

The pipeline talks back through the runtime, which passes audio to the leg and to the audio taps (where a
call recorder listens: caller audio in, bot audio sent, playback cleared), and runs the bot's hang-up and
transfer requests. With a `LiveFeed` the runtime also reports what happens as it happens (caller words, bot
words, passages, tool calls, finished turns), for a page that shows the call live.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol, Sequence

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.utils import timezone

from voicebots.calls import live as live_control
from voicebots.calls import services as calls
from voicebots.calls.models import Call
from voicebots.calls.templating import personalized
from voicebots.chats.runtime import BotRuntime, load_bot_runtime
from voicebots.conversation.storage import history_to_json
from voicebots.providers.silero_vad import SileroActivity, shared_detector
from voicebots.recordings.live import NO_RECORDING, start_recording
from voicebots.voice.announcement import Announcement
from voicebots.core import clock
from voicebots.voice.audio import AudioFormat
from voicebots.voice.control import CallControl
from voicebots.voice.options import DEFAULT_FILLER
from voicebots.voice.ports import CallHandler
from voicebots.voice.session import CallSession, SessionOptions

from . import vendors
from .database import in_call_database_thread
from .live import LiveFeed, WatchedObserver, WatchedRetriever, WatchedSpeechToText, WatchedTools, WatchedVoice
from .records import AudioCache, CallRecorder, recorded_audio

logger = logging.getLogger(__name__)

TIME_LIMIT_GOODBYE_S = 10  # the polite goodbye starts this long before the call's time limit
NOT_CONFIGURED_TEXT = "Sorry, this line is not set up to take calls yet."


class Leg(Protocol):
    """A transport's side of a call, as the runtime uses it."""

    input_format: AudioFormat  # the caller's audio, as the transport feeds it
    output_format: AudioFormat  # the bot's audio, as the transport plays it
    dropped_frames: int  # messages the peer did not take in time (recorded on the call)

    async def send_audio(self, frame: bytes) -> None: ...

    async def checkpoint(self, name: str) -> None: ...

    async def clear(self) -> None: ...

    async def send_dtmf(self, digits: str) -> None: ...

    async def hang_up(self) -> None:
        """End the call on the transport's network and close the socket (after the runtime has ended it)."""
        ...

    async def transfer(self, destination: str, summary: str = "") -> bool:
        """Hand the caller over to `destination`; False when that is refused or impossible. A `summary` (live
        control's warm transfer) is said to whoever answers before the caller is joined."""
        ...


class AudioTap(Protocol):
    """Listens to a call's audio as it flows (a call recorder). Called on the event loop: keep it quick."""

    def caller_audio(self, audio: bytes) -> None:
        """Audio from the caller, in the leg's input format."""
        ...

    def bot_audio(self, frame: bytes) -> None:
        """A frame of the bot's audio sent to the caller, in the leg's output format."""
        ...

    def cleared(self) -> None:
        """The bot's audio not yet played was dropped (barge-in)."""
        ...


class _PipelineTransport:
    """The session's Transport: the leg, with the taps listening and hang-up/transfer run by the runtime."""

    def __init__(self, runtime: CallRuntime) -> None:
        self._runtime = runtime
        self._leg = runtime.leg
        self._taps = runtime.taps
        self.input_format = self._leg.input_format
        self.output_format = self._leg.output_format

    async def send_audio(self, frame: bytes) -> None:
        for tap in self._taps:
            tap.bot_audio(frame)
        await self._leg.send_audio(frame)

    async def checkpoint(self, name: str) -> None:
        await self._leg.checkpoint(name)

    async def clear(self) -> None:
        for tap in self._taps:
            tap.cleared()
        await self._leg.clear()

    async def send_dtmf(self, digits: str) -> None:
        await self._leg.send_dtmf(digits)

    async def transfer(self, destination: str, summary: str = "") -> bool:
        return await self._leg.transfer(destination, summary)

    async def hang_up(self) -> None:
        # In a task of its own: the pipeline calls this from its own tasks, which ending the call cancels.
        self._runtime.spawn(self._runtime.hang_up("The bot ended the call."))


def function_fillers(bot) -> dict[str, str]:
    """The filler lines of the bot's functions that have their own (database access: call it off the loop)."""
    return {function.name: function.filler_message for function in bot.functions.all() if function.filler_message}


def session_options(bot, *, max_duration_s: float | None = None, fillers: dict[str, str] | None = None,
                    ) -> SessionOptions:
    """The call settings of `bot` as the pipeline's options; `max_duration_s` may shorten the bot's own limit;
    `fillers` are its `function_fillers` (read when None)."""
    limit = bot.max_call_duration if max_duration_s is None else min(bot.max_call_duration, max_duration_s)
    return SessionOptions(
        welcome_message=bot.welcome_message,
        interruptions_enabled=bot.interruptions_enabled,
        min_interruption_words=bot.interruption_min_words,
        backchannel_words=tuple(bot.backchannel_words),
        barge_in_min_speech_s=bot.interruption_min_speech_ms / 1000,
        barge_in_words_wait_s=bot.interruption_words_wait_ms / 1000,
        dead_air_s=bot.dead_air_ms / 1000,
        llm_stall_s=settings.LLM_STALL_S or None,
        filler_text=bot.filler_message or DEFAULT_FILLER,
        function_fillers=function_fillers(bot) if fillers is None else fillers,
        caller_silence_s=float(bot.call_timeout),
        # The network may cut the call at the limit (Plivo does on outbound calls): say goodbye before that.
        max_call_duration_s=max(limit - TIME_LIMIT_GOODBYE_S, TIME_LIMIT_GOODBYE_S),
    )


class CallRuntime:
    def __init__(self, leg: Leg, call: Call, bot, *, channel: str, taps: Sequence[AudioTap] = (),
                 max_duration_s: float | None = None, live: LiveFeed | None = None) -> None:
        self.leg = leg
        self.call = call
        # An outbound call's variables fill the {{placeholders}} of the prompt and welcome message.
        self.bot = personalized(bot, call.variables)
        self.channel = channel  # how the model is told it is being reached, e.g. "phone call (inbound)"
        self.taps = list(taps)
        self.max_duration_s = max_duration_s
        self.live = live
        self.handler: CallHandler | None = None
        self.fillers: dict[str, str] = {}
        self.control: live_control.LiveCall | None = None  # commands from any web process
        self.recording = NO_RECORDING
        self.audio_cache = AudioCache(leg.output_format)
        self.ended = False
        self._tasks: set[asyncio.Task] = set()

    # --- Beginning --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the call's pipeline and start it (the greeting plays at once)."""
        # The recording starts (a row and a file) while the bot's settings load, not before the greeting.
        recording = asyncio.ensure_future(
            start_recording(self.call, self.bot, self.leg.input_format, self.leg.output_format))
        # So does the greeting's cached audio, under the key the session will ask for (the voice's id is the bot's
        # voice as chosen).
        if welcome := self.bot.welcome_message.strip():
            self.audio_cache.prefetch(str(self.bot.id), self.bot.tts_voice, welcome)
        try:
            conversation = await in_call_database_thread(self._load_conversation)()
            detector = await asyncio.to_thread(shared_detector)  # loads the model once, not on the event loop
        finally:
            self.recording = await recording  # end() closes it, however start() ends
        if self.ended:  # the peer went away meanwhile
            return await self.recording.close()
        self.taps.append(self.recording)
        self.handler = self._build_handler(conversation, detector)
        await self.handler.start()
        # From here on the call is counted, and takes commands from any web process (calls/live.py).
        self.control = await live_control.attach(str(self.call.id), self.handler, self.hang_up)
        if self.ended:  # the call ended while it was being attached: it is not carried any more
            await self.control.leave()

    def _load_conversation(self) -> BotRuntime | None:
        """The bot's conversation settings, or None when a vendor the call needs cannot be used (recorded on the
        call: a missing key, or a provider this server does not know)."""
        call, bot = self.call, self.bot
        problems = vendors.problems(bot)
        if problems:
            call.end_reason = f"Not configured: {'; '.join(problems)}; the caller heard an apology."
            call.save(update_fields=["end_reason", "updated_at"])
            return None
        prefetch_related_objects([bot], "functions")  # read once, for the fillers and the tools
        self.fillers = function_fillers(bot)
        call_info = {"call_uuid": call.call_uuid, "from": call.from_number, "to": call.to_number,
                     "direction": call.direction}
        context = {"Channel": f"{self.channel}; keep answers short and speakable"}
        if call.direction != Call.Direction.WEB:
            context = {"Caller's number": call.from_number or "unknown",
                       "Number called": call.to_number or "unknown", **context}
        return load_bot_runtime(bot, session_id=str(call.id), call_info=call_info, context=context)

    def _build_handler(self, conversation: BotRuntime | None, detector) -> CallHandler:
        transport = _PipelineTransport(self)
        if conversation is None:
            return Announcement(transport, recorded_audio("not_configured", transport.output_format),
                                NOT_CONFIGURED_TEXT)
        bot, caller_format, bot_format = self.bot, transport.input_format, transport.output_format
        # The call-control tools are answered before the bot's functions: the engine runs them through it.
        # Keys are offered on outbound calls, which may reach an automated phone menu.
        send_dtmf = transport.send_dtmf if self.call.direction == Call.Direction.OUTBOUND else None
        control = CallControl(conversation.engine_parts.get("tool_runner"),
                              transfer_destination=bot.transfer_destination, send_dtmf=send_dtmf)
        parts = {**conversation.engine_parts, "tool_runner": control}
        stt, tts = vendors.speech_to_text(bot, caller_format), vendors.voice(bot, bot_format)
        fallback_tts, observer = vendors.fallback_voice(bot, bot_format), CallRecorder(self.call)
        if (feed := self.live) is not None:  # a watched call reports what passes through its ports
            parts = {**parts, "tool_runner": WatchedTools(control, feed),
                     "retriever": WatchedRetriever(parts["retriever"], feed)}
            stt, tts = WatchedSpeechToText(stt, feed), WatchedVoice(tts, feed)
            observer = WatchedObserver(observer, feed)
            fallback_tts = WatchedVoice(fallback_tts, feed) if fallback_tts is not None else None
        return CallSession(
            config=conversation.config, engine=BotRuntime(conversation.config, parts, conversation.llm_provider).engine(),
            transport=transport,
            stt=stt, tts=tts, fallback_tts=fallback_tts, audio_cache=self.audio_cache, observer=observer,
            control=control, activity=SileroActivity(detector=detector, audio_format=caller_format),
            options=session_options(bot, max_duration_s=self.max_duration_s, fillers=self.fillers),
        )

    # --- What the peer sends ----------------------------------------------------------------------------

    def feed_audio(self, audio: bytes) -> None:
        if self.handler is None:
            return
        for tap in self.taps:
            tap.caller_audio(audio)
        self.handler.feed_audio(audio)

    def on_checkpoint_played(self, name: str) -> None:
        if self.handler is not None:
            self.handler.on_checkpoint_played(name)

    def on_audio_cleared(self) -> None:
        if self.handler is not None:
            self.handler.on_audio_cleared()

    def on_dtmf(self, digit: str) -> None:
        if self.handler is not None:
            self.handler.on_dtmf(digit)

    async def record_event(self, kind: str, **detail) -> None:
        await in_call_database_thread(calls.record_event)(self.call, kind, **detail)

    # --- End ----------------------------------------------------------------------------------------------

    def spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def hang_up(self, reason: str) -> None:
        """End the call from our side: the record first, then the transport's network and socket."""
        await self.end(reason)
        await self.leg.hang_up()

    async def end(self, reason: str) -> None:
        """Stop the pipeline (every vendor socket closes) and finalize the record. Only the first call counts."""
        if self.ended:
            return
        self.ended = True
        if self.control is not None:
            await self.control.leave()
        ended_at = clock.now()  # the recording ends here, not once the vendors' sockets are closed
        handler, self.handler = self.handler, None
        if handler is not None:
            await handler.stop()
        await self.recording.close(ended_at)  # before the record is final: it says what became of the recording
        history = getattr(handler, "history", None)
        await in_call_database_thread(_finish)(self.call, reason, history, self.leg.dropped_frames)


def _finish(call: Call, reason: str, history, dropped_frames: int) -> None:
    if history is not None:
        Call.objects.filter(pk=call.pk).update(history=history_to_json(history), updated_at=timezone.now())
    if dropped_frames:
        calls.record_event(call, "audio_dropped", frames=dropped_frames)
    calls.finalize(call, reason=reason)
