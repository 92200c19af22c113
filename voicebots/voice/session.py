"""CallSession: one phone call, run as one asyncio task group.

    caller audio --feed_audio--> STT --events--> TurnTaker --end of turn--> reply task:
        ConversationEngine.run_turn --text deltas--> Segmenter --segments--> SpokenReply (TTS, fallback voice)
        --audio--> Playout --20 ms frames + a checkpoint per segment--> Transport
    checkpoint acks --on_checkpoint_played--> Playout: what the caller heard
    caller words while the bot is busy --> barge-in: cancel the reply, Transport.clear(), history keeps the heard part

The transport (the Plivo stream consumer) creates the session, calls `start()`, feeds it audio and acks, and
calls `stop()` when the call ends. With a `CallControl` the model can end or transfer the call (its last words play
first); a caller silent for `caller_silence_s` is asked once whether they are still there, then told goodbye; a call
reaching `max_call_duration_s` is ended politely. Vendor failures are survived: a lost STT stream is reopened, a
model error is answered with an apology, a failed voice is replaced by the fallback voice (or the turn stays silent).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Coroutine

from voicebots.conversation.config import BotConfig
from voicebots.conversation.engine import ConversationEngine
from voicebots.conversation.history import opening_history
from voicebots.conversation.ports import (
    BaseEventSink,
    LLMError,
    Message,
    Passage,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    TurnResult,
)

from .activity import DEFAULT_SPEECH_RMS, VoiceActivity
from .barge_in import DEFAULT_BACKCHANNEL_WORDS, InterruptionRules
from .control import CallControl, ControlAction
from .heard import history_after_greeting, history_after_reply
from .playout import Playout
from .ports import (
    AudioCache,
    BaseCallObserver,
    CallObserver,
    IncidentKind,
    SpeechToText,
    SpeechToTextError,
    SpeechToTextEvent,
    TextToSpeech,
    TextToSpeechError,
    Transport,
    TurnKind,
    TurnRecord,
    VoiceActivityDetector,
)
from .segmenter import Segmenter, SegmenterOptions
from .speech import SpokenReply
from .timeline import Timeline
from .turns import DEFAULT_HOLD_S, CallerPaused, CallerSpeaking, CallerTurnEnded, TurnTaker

logger = logging.getLogger(__name__)

DEFAULT_APOLOGY = "Sorry, I'm having trouble answering right now. Could you say that again?"
DEFAULT_GOODBYE = "Thank you for calling. Goodbye!"
DEFAULT_TRANSFER_LINE = "Please hold while I transfer your call."
DEFAULT_TRANSFER_FAILED = "Sorry, I could not transfer your call. How else can I help?"
DEFAULT_REPROMPT = "Are you still there?"
DEFAULT_SILENCE_GOODBYE = "I haven't heard from you, so I'll end the call now. Goodbye!"
DEFAULT_TIME_LIMIT_GOODBYE = "I'm sorry, we have reached the time limit for this call. Goodbye!"
SILENCE_CHECK_S = 0.1
FRAMES_PER_SECOND = 50
VAD_RECHECK_S = 0.3  # interim words wait this long for the voice detector to hear the speech behind them
FALSE_INTERRUPTION_WINDOW_S = 10.0  # an acknowledgement this long after a barge-in no longer resumes the reply
STT_MESSAGE_MAX_FRAMES = 5  # backlogged caller audio goes to the STT in messages of up to 100 ms


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """How a call behaves. Times are seconds.

    `min_interruption_words`: caller words (interim or final, not counting `backchannel_words`) that interrupt
    the bot while it is thinking or speaking; a shorter utterance while it speaks is taken as a backchannel and
    ignored. `interruptions_enabled` False: the caller cannot interrupt; what they said is answered once the bot's
    turn has been heard. Words of an interim transcript interrupt only if the voice activity detector heard speech
    in the last `barge_in_confirm_s` (a transcript of noise or echo does not); a final transcript always counts.
    `finalize_after_silence_s`: ask the STT for a final transcript once the line has been quiet this long while
    words are still unfinalized (None: never).
    `stt_reconnect_delays_s`: waits before each attempt to reopen a lost STT stream; after the last, give up.
    `stt_backlog_s`: caller audio kept while the STT stream is being reopened, sent once it is back.
    `stt_message_frames`: 20 ms frames of quiet caller audio per message to the STT (Deepgram takes 20-100 ms):
    two halve the messages while the caller listens; a frame with speech-level energy goes at once. Frames that
    queued up meanwhile go along, up to 100 ms.
    `false_interruption_s`: after a barge-in, if the caller then says nothing (the words of the interim
    transcript were revised away) or only an acknowledgement, the bot says the rest of its interrupted reply once
    the line has been quiet this long (None: never resume).
    `unfinished_turn_hold_s`: extra wait for more words when the caller stops on something unfinished (a number,
    an e-mail address, a spelled sequence; see `turns.sounds_unfinished`); 0 answers at the vendor's endpoint.
    `caller_silence_s`: caller silence after the bot finished speaking before it re-prompts once, and then again
    before it says goodbye and hangs up (None: wait forever).
    `max_call_duration_s`: the call is ended politely (interrupting the bot if need be) this long after it started.
    `playout_wait_s`: the longest wait for the last words to be acknowledged as played before hanging up or
    transferring (a transport that never acknowledges must not keep the call open).
    """

    welcome_message: str = ""
    apology_text: str = DEFAULT_APOLOGY
    min_interruption_words: int = 1
    interruptions_enabled: bool = True
    barge_in_confirm_s: float = 1.0
    false_interruption_s: float | None = 1.5
    backchannel_words: tuple[str, ...] = DEFAULT_BACKCHANNEL_WORDS
    speech_rms: float = DEFAULT_SPEECH_RMS
    finalize_after_silence_s: float | None = 0.7
    stt_reconnect_delays_s: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
    stt_backlog_s: float = 2.0
    stt_message_frames: int = 2
    tts_timeout_s: float = 5.0
    close_timeout_s: float = 1.0
    segmenter: SegmenterOptions = field(default_factory=SegmenterOptions)
    unfinished_turn_hold_s: float = DEFAULT_HOLD_S
    goodbye_text: str = DEFAULT_GOODBYE
    transfer_text: str = DEFAULT_TRANSFER_LINE
    transfer_failed_text: str = DEFAULT_TRANSFER_FAILED
    caller_silence_s: float | None = None
    reprompt_text: str = DEFAULT_REPROMPT
    silence_goodbye_text: str = DEFAULT_SILENCE_GOODBYE
    max_call_duration_s: float | None = None
    time_limit_goodbye_text: str = DEFAULT_TIME_LIMIT_GOODBYE
    playout_wait_s: float = 15.0


@dataclass(slots=True)
class _BotTurn:
    """A bot turn from its start until its record is written."""

    index: int
    kind: TurnKind
    caller_text: str
    prior_history: list[Message]
    timeline: Timeline
    speech: SpokenReply | None = None
    task: asyncio.Task[None] | None = None
    result: TurnResult | None = None
    spoken: str = ""  # all text handed to the voice (or played from cache)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    error: str | None = None
    sending_done: bool = False
    interrupted: bool = False
    recorded: bool = False
    resumes: _Resumable | None = None  # set on a turn that says the rest of a falsely interrupted reply


@dataclass(slots=True)
class _Resumable:
    """A reply cut off by a barge-in, kept until it is clear whether the caller really took the turn."""

    turn: _BotTurn
    heard: str  # of the reply, what the caller heard before the barge-in
    rest: str  # what they did not hear
    at: float


class _ReplySink(BaseEventSink):
    """Feeds the model's text to the voice, segment by segment, and stamps the timeline."""

    def __init__(self, turn: _BotTurn, segmenter: Segmenter, speech: SpokenReply) -> None:
        self._turn = turn
        self._segmenter = segmenter
        self._speech = speech

    async def on_retrieval(self, passages: list[Passage], ms: float) -> None:
        self._turn.timeline.mark("llm_request_sent")  # the engine sends the request right after retrieval

    async def on_first_token(self, ms: float) -> None:
        self._turn.timeline.mark("first_token")

    async def on_text(self, text: str) -> None:
        for segment in self._segmenter.feed(text):
            self._speech.say(segment)

    async def on_tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        self._turn.tool_calls.append(ToolCallRecord(call, result))


class CallSession:
    def __init__(self, *, config: BotConfig, engine: ConversationEngine, transport: Transport, stt: SpeechToText,
                 tts: TextToSpeech, fallback_tts: TextToSpeech | None = None, audio_cache: AudioCache | None = None,
                 observer: CallObserver | None = None, options: SessionOptions | None = None,
                 control: CallControl | None = None, activity: VoiceActivityDetector | None = None) -> None:
        # `control` must also be the engine's tool runner: it answers the call-control tools it offers here.
        self._control = control
        self._config = control.offer_to(config) if control is not None else config
        self._engine = engine
        self._transport = transport
        self._stt = stt
        self._voices = [tts] + ([fallback_tts] if fallback_tts is not None else [])
        self._voice_id = tts.voice_id  # cached audio is keyed on the bot's own voice
        self._cache = audio_cache
        self._observer: CallObserver = observer or BaseCallObserver()
        self._options = options or SessionOptions()
        self.history: list[Message] = []
        self._playout = Playout(transport)
        self._caller_format = transport.input_format
        self._activity: VoiceActivityDetector = activity or VoiceActivity(self._options.speech_rms,
                                                                          self._caller_format)
        self._turn_taker = TurnTaker(self._options.unfinished_turn_hold_s)
        self._barge_in = InterruptionRules(enabled=self._options.interruptions_enabled,
                                           min_words=self._options.min_interruption_words,
                                           backchannel_words=self._options.backchannel_words)
        self._hold: asyncio.Task[None] | None = None  # ends a held caller turn unless more words come
        # Caller audio not yet sent to the STT; while the stream is down the latest of it waits here.
        self._backlog: deque[bytes] = deque(maxlen=max(1, int(self._options.stt_backlog_s * FRAMES_PER_SECOND)))
        self._audio_due = asyncio.Event()  # the backlog should go to the STT now
        self._stt_open = asyncio.Event()
        self._finalize_requested = False
        self._turns = 0
        self._current: _BotTurn | None = None
        self._group: asyncio.TaskGroup | None = None
        self._main: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stopped = False
        self._closing = False  # the bot is saying its last words: the caller can no longer interrupt them
        self._last_activity = time.monotonic()  # of the caller or the bot: silence is counted from it
        self._caller_active_at = 0.0
        self._resumable: _Resumable | None = None
        self._vad_recheck: asyncio.Task[None] | None = None

    # --- What the transport calls -------------------------------------------------------------------

    async def start(self) -> None:
        """Start the call: the greeting plays at once while the STT stream and the voice connect."""
        if self._main is None:
            self._main = asyncio.create_task(self._run(), name="call-session")
            await self._started.wait()

    def feed_audio(self, audio: bytes) -> None:
        if self._stopped:
            return
        self._activity.update(audio, time.monotonic())
        self._backlog.append(audio)
        # Quiet audio waits for more to share a message; speech goes at once (barge-in, endpoints).
        if (len(self._backlog) >= self._options.stt_message_frames
                or self._caller_format.rms(audio) >= self._options.speech_rms):
            self._audio_due.set()

    def on_checkpoint_played(self, name: str) -> None:
        segment = self._playout.on_played(name)
        turn = self._current
        if segment is not None and turn is not None and segment.turn == turn.index:
            self._record_if_heard(turn)

    def on_audio_cleared(self) -> None:
        logger.debug("The transport cleared its audio")

    def on_dtmf(self, digit: str) -> None:
        self._spawn(self._observer.on_dtmf(digit))

    async def stop(self) -> None:
        """Hang-up: cancel every task of the call, close the vendor connections, and record the last turn."""
        self._stopped = True
        if self._main is None:
            return
        main, self._main = self._main, None
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
        turn = self._current
        if turn is not None and not turn.recorded:  # the call ended during this turn: it was cut short
            turn.interrupted = True
            await self._write_record(turn)

    # --- The task group -----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._spawn(self._greet())
                self._spawn(self._listen())
                self._spawn(self._forward_audio())
                self._spawn(self._connect_voice())
                if self._options.caller_silence_s is not None:
                    self._spawn(self._watch_silence())
                if self._options.max_call_duration_s is not None:
                    self._spawn(self._limit_duration())
                self._started.set()
        finally:
            self._group = None
            self._started.set()
            await self._close_vendors()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        if self._group is None:
            work.close()
            return None
        return self._group.create_task(self._guarded(work))

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None]) -> None:
        """A failing part is logged; it must not take the rest of the call down with it."""
        try:
            await work
        except Exception:
            logger.exception("A call task failed")

    async def _close_vendors(self) -> None:
        closing = [self._stt.aclose(), *(voice.aclose() for voice in self._voices)]
        try:
            async with asyncio.timeout(self._options.close_timeout_s):
                results = await asyncio.gather(*closing, return_exceptions=True)
        except TimeoutError:
            logger.warning("Vendor connections did not close within %s s", self._options.close_timeout_s)
            return
        for result in results:
            if isinstance(result, Exception):
                logger.warning("Closing a vendor connection failed: %r", result)

    async def _connect_voice(self) -> None:
        try:
            await self._voices[0].connect()  # warm: the first reply should not pay for the handshake
        except TextToSpeechError as error:
            logger.warning("The voice could not connect yet: %s", error)

    async def _incident(self, kind: IncidentKind, detail: str) -> None:
        try:
            await self._observer.on_incident(kind, detail)
        except Exception:
            logger.exception("The call observer failed")

    # --- Greeting -----------------------------------------------------------------------------------

    async def _greet(self) -> None:
        welcome = self._options.welcome_message.strip()
        if not welcome:
            return
        self.history = opening_history(welcome)
        turn = self._new_turn("greeting", "", Timeline.now())
        turn.task = asyncio.current_task()
        cached = await self._cached_audio(welcome)
        if cached is not None:
            await self._play_fixed(turn, cached, welcome, segment=0)
        else:
            speech = await self._speak_text(turn, welcome, keep_audio=True)
            if speech.complete and speech.voice_used is self._voices[0] and speech.audio:
                await self._store_audio(welcome, bytes(speech.audio))
            elif not speech.complete:
                self.history = history_after_greeting(speech.sent_text)
        self._finish_sending(turn)

    async def _cached_audio(self, text: str) -> bytes | None:
        if self._cache is None:
            return None
        try:
            return await self._cache.get(self._config.bot_id, self._voice_id, text)
        except Exception:
            logger.exception("Reading cached audio failed")
            return None

    async def _store_audio(self, text: str, audio: bytes) -> None:
        if self._cache is None:
            return
        try:
            await self._cache.put(self._config.bot_id, self._voice_id, text, audio)
        except Exception:
            logger.exception("Caching audio failed")

    async def _play_fixed(self, turn: _BotTurn, audio: bytes, text: str, *, segment: int) -> None:
        if await self._playout.play(turn.index, audio):
            turn.timeline.mark("first_audio_sent")
        await self._playout.end_segment(turn.index, segment, text)
        turn.timeline.last_audio_sent = time.monotonic()
        turn.spoken += text

    # --- Listening ----------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Keep an STT stream open for the whole call, reopening it when it is lost."""
        delays = self._options.stt_reconnect_delays_s
        failures = 0
        lost = False
        while True:
            try:
                await self._stt.connect()
                self._stt_open.set()
                if lost:
                    await self._incident("stt_reconnected", f"after {failures} attempt(s)")
                    lost = False
                async for event in self._stt.events():
                    failures = 0  # the stream works again: a later loss gets the full retry budget
                    await self._on_stt_event(event)
                raise SpeechToTextError("the stream ended")  # only stop() may end listening
            except SpeechToTextError as error:
                self._stt_open.clear()
                self._turn_taker.forget_interim()
                lost = True
                if failures >= len(delays):
                    logger.error("Speech-to-text lost for good: %s", error)
                    await self._incident("stt_lost", str(error))
                    return
                logger.warning("Speech-to-text lost (%s); reconnecting", error)
                await asyncio.sleep(delays[failures])
                failures += 1

    async def _forward_audio(self) -> None:
        """Send the backlog to the STT whenever `feed_audio` says it is due and the stream is open."""
        backlog = self._backlog
        while True:
            await self._audio_due.wait()
            await self._stt_open.wait()
            self._audio_due.clear()
            try:
                while backlog:  # frames that arrive during a send go in the next message
                    frames = min(len(backlog), STT_MESSAGE_MAX_FRAMES)
                    await self._stt.send_audio(b"".join(itertools.islice(backlog, frames)))
                    for _ in range(frames):
                        backlog.popleft()
                await self._finalize_if_quiet()
            except SpeechToTextError:
                self._stt_open.clear()  # the listener sees the loss too and reconnects

    async def _finalize_if_quiet(self) -> None:
        """On a noisy line the vendor's endpointing may never fire: ask for the final once it has gone quiet."""
        wait = self._options.finalize_after_silence_s
        if wait is None or self._finalize_requested or not self._turn_taker.has_unfinalized_words:
            return
        silent_for = self._activity.silent_for(time.monotonic())
        if silent_for is not None and silent_for >= wait:
            self._finalize_requested = True
            await self._stt.finalize()

    async def _on_stt_event(self, event: SpeechToTextEvent) -> None:
        for signal in self._turn_taker.on_event(event):
            self._last_activity = self._caller_active_at = time.monotonic()
            if self._closing:
                continue
            if isinstance(signal, CallerSpeaking):
                self._finalize_requested = False
                self._cancel_hold()
                if (self._barge_in.enabled and self._bot_busy()
                        and not self._barge_in.is_backchannel(signal.text, partial=True)):
                    if self._heard_speech_lately():
                        await self._interrupt()
                    elif self._vad_recheck is None:
                        # The words may come before the voice detector's verdict on the same audio.
                        self._vad_recheck = self._spawn(self._interrupt_once_voice_is_heard())
            elif isinstance(signal, CallerTurnEnded):
                await self._on_caller_turn(signal)
            elif isinstance(signal, CallerPaused):
                self._cancel_hold()
                self._hold = self._spawn(self._end_turn_after(signal.hold_s))

    async def _interrupt_once_voice_is_heard(self) -> None:
        try:
            deadline = time.monotonic() + VAD_RECHECK_S
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                if not (self._bot_busy() and self._turn_taker.has_unfinalized_words):
                    return
                if self._heard_speech_lately():
                    await self._interrupt()
                    return
        finally:
            self._vad_recheck = None

    def _heard_speech_lately(self) -> bool:
        silent_for = self._activity.silent_for(time.monotonic())
        return silent_for is not None and silent_for <= self._options.barge_in_confirm_s

    def _cancel_hold(self) -> None:
        if self._hold is not None and self._hold is not asyncio.current_task():
            self._hold.cancel()
        self._hold = None

    async def _end_turn_after(self, hold_s: float) -> None:
        await asyncio.sleep(hold_s)
        self._hold = None  # from here on this task answers the caller: new words must not cancel it
        if (ended := self._turn_taker.end_held_turn()) is not None:
            await self._on_caller_turn(ended)

    # --- Turns --------------------------------------------------------------------------------------

    def _bot_busy(self) -> bool:
        """The bot is thinking or speaking: its reply is still running, or audio is still being played."""
        turn = self._current
        if turn is None or turn.interrupted:
            return False
        running = turn.task is not None and not turn.task.done()
        return running or self._playout.is_playing(turn.index)

    async def _on_caller_turn(self, ended: CallerTurnEnded) -> None:
        now = time.monotonic()
        if self._bot_busy():
            if self._barge_in.is_backchannel(ended.text):
                logger.info("Ignoring a backchannel while the bot speaks: %r", ended.text)
                return
            if not self._barge_in.enabled:
                self._spawn(self._answer_when_heard(ended))
                return
            await self._interrupt()
            self._resumable = None  # the caller took the turn
        elif (resumable := self._take_resumable()) is not None and self._barge_in.is_backchannel(ended.text):
            self._resume(resumable)  # the barge-in was only an acknowledgement
            return
        timeline = Timeline(started=now)
        timeline.mark("speech_ended", self._activity.last_speech_at or now)
        timeline.mark("transcript_final", now)
        turn = self._new_turn("reply", ended.text, timeline)
        turn.task = self._spawn(self._reply(turn))

    async def _answer_when_heard(self, ended: CallerTurnEnded) -> None:
        """Interruptions are off: the caller's words wait until the bot's current turn has been heard."""
        turn = self._current
        if turn is not None:
            if turn.task is not None and turn.task is not asyncio.current_task():
                await asyncio.gather(turn.task, return_exceptions=True)
            await self._wait_heard(turn)
        await self._on_caller_turn(ended)

    def _new_turn(self, kind: TurnKind, caller_text: str, timeline: Timeline) -> _BotTurn:
        index = self._turns
        self._turns += 1
        turn = _BotTurn(index, kind, caller_text, list(self.history), timeline)
        self._current = turn
        return turn

    def _spoken_reply(self, turn: _BotTurn, *, keep_audio: bool = False) -> SpokenReply:
        speech = SpokenReply(self._voices, self._playout, turn.index, turn.timeline,
                             response_timeout_s=self._options.tts_timeout_s, keep_audio=keep_audio,
                             on_voice_failed=self._on_voice_failed)
        turn.speech = speech
        return speech

    async def _speak_text(self, turn: _BotTurn, text: str, *, keep_audio: bool = False) -> SpokenReply:
        """Say a fixed text as `turn`'s speech, segment by segment; `turn.spoken` is what went to the voice."""
        speech = self._spoken_reply(turn, keep_audio=keep_audio)
        for segment in _segments_of(text, self._options.segmenter):
            speech.say(segment)
        speech.finish()
        await speech.run()
        turn.spoken = speech.text
        return speech

    async def _on_voice_failed(self, voice: TextToSpeech, error: TextToSpeechError, has_fallback: bool) -> None:
        kind: IncidentKind = "tts_fallback" if has_fallback else "tts_failed"
        await self._incident(kind, f"{voice.voice_id}: {error}")

    async def _reply(self, turn: _BotTurn) -> None:
        if self._control is not None:
            self._control.take_action()  # a request of an interrupted turn is void
        action: ControlAction | None = None
        segmenter = Segmenter(self._options.segmenter)
        speech = self._spoken_reply(turn)
        speaking = asyncio.create_task(speech.run())
        try:
            try:
                turn.result = await self._engine.run_turn(self._config, turn.prior_history, turn.caller_text,
                                                          _ReplySink(turn, segmenter, speech))
            except LLMError as error:
                turn.error = error.message
                await self._incident("llm_error", error.message)
            except Exception:  # a bug in a tool or adapter must not leave the caller in silence
                logger.exception("The reply failed")
                turn.error = "The reply failed unexpectedly."
                await self._incident("llm_error", turn.error)
            if (rest := segmenter.flush()) is not None:
                speech.say(rest)
            if self._control is not None and turn.error is None:
                action = self._control.take_action()
            if action is not None:
                self._closing = True
                if not speech.segments:  # the model acted without a word: the caller still hears why
                    speech.say(self._control_line(action))
            apology = await self._cached_audio(self._options.apology_text) if turn.error else None
            if turn.error and apology is None:
                speech.say(self._options.apology_text)
            speech.finish()
            await speaking
            turn.spoken, sent = speech.text, speech.sent_text
            if apology is not None:
                await self._play_fixed(turn, apology, self._options.apology_text, segment=len(speech.segments))
                sent += self._options.apology_text
        finally:
            if not speaking.done():
                speaking.cancel()
                await asyncio.gather(speaking, return_exceptions=True)
        if turn.result is not None:
            turn.tool_calls = turn.result.tool_calls
        # Until the caller interrupts, everything sent counts as heard (a failed voice may have sent less).
        self.history = history_after_reply(turn.prior_history, turn.caller_text, turn.spoken, sent, turn.result)
        self._finish_sending(turn)
        if action is not None:
            await self._carry_out(turn, action)

    def _control_line(self, action: ControlAction) -> str:
        return self._options.goodbye_text if action.kind == "end_call" else self._options.transfer_text

    async def _carry_out(self, turn: _BotTurn, action: ControlAction) -> None:
        """End or transfer the call once the bot's last words have been heard."""
        await self._wait_heard(turn)
        if action.kind == "end_call":
            await self._transport.hang_up()
        elif not await self._transport.transfer(action.destination):
            await self._incident("transfer_failed", action.destination)
            self._closing = False
            self._spawn(self._say(self._options.transfer_failed_text))

    async def _wait_heard(self, turn: _BotTurn) -> None:
        try:
            async with asyncio.timeout(self._options.playout_wait_s):
                await self._playout.wait_played(turn.index)
        except TimeoutError:
            logger.warning("Turn %s was not acknowledged as played within %s s", turn.index,
                           self._options.playout_wait_s)

    # --- Lines the bot says on its own: re-prompt, goodbyes ------------------------------------------

    async def _say(self, text: str, *, then_hang_up: bool = False) -> None:
        """Speak a fixed line as a turn of its own (a barge-in cuts it unless the call is closing)."""
        turn = self._new_turn("prompt", "", Timeline.now())
        turn.task = asyncio.current_task()
        await self._speak_text(turn, text)
        self._finish_sending(turn)
        if then_hang_up:
            await self._wait_heard(turn)
            await self._transport.hang_up()

    async def _say_goodbye(self, text: str) -> None:
        self._closing = True
        if self._bot_busy():
            await self._interrupt()
        await self._say(text, then_hang_up=True)

    async def _watch_silence(self) -> None:
        """Re-prompt a silent caller once; if the silence goes on, say goodbye and hang up."""
        timeout = self._options.caller_silence_s
        assert timeout is not None
        reprompted_at: float | None = None
        while not self._closing:
            await asyncio.sleep(SILENCE_CHECK_S)
            now = time.monotonic()
            if self._bot_busy() or self._activity.speaking or self._turn_taker.has_unfinalized_words:
                self._last_activity = now  # silence counts from the end of the bot's speech and the caller's
            if reprompted_at is not None and self._caller_active_at > reprompted_at:
                reprompted_at = None  # the caller answered: a later silence gets a re-prompt again
            if now - self._last_activity < timeout:
                continue
            if reprompted_at is None:
                reprompted_at = now
                self._spawn(self._say(self._options.reprompt_text))
                self._last_activity = now
            else:
                await self._incident("caller_silent", f"no answer for {timeout:g} s after a re-prompt")
                self._spawn(self._say_goodbye(self._options.silence_goodbye_text))
                return

    async def _limit_duration(self) -> None:
        assert self._options.max_call_duration_s is not None
        await asyncio.sleep(self._options.max_call_duration_s)
        if self._closing:
            return
        await self._incident("max_duration", f"{self._options.max_call_duration_s:g} s")
        await self._say_goodbye(self._options.time_limit_goodbye_text)

    def _finish_sending(self, turn: _BotTurn) -> None:
        turn.sending_done = True
        self._record_if_heard(turn)

    async def _interrupt(self) -> None:
        """Barge-in: stop the current bot turn, clear the caller's playback, keep only what was heard."""
        turn = self._current
        if turn is None:
            return
        turn.interrupted = True
        if turn.task is not None and not turn.task.done():
            turn.task.cancel()  # closes the model stream and the voice's turn
        await self._playout.interrupt(turn.index)
        if turn.task is not None and turn.task is not asyncio.current_task():
            await asyncio.gather(turn.task, return_exceptions=True)
        heard = self._playout.heard_text(turn.index)
        if turn.speech is not None and not turn.spoken:
            turn.spoken = turn.speech.text
        if turn.kind == "greeting":
            self.history = history_after_greeting(heard)
        elif turn.kind == "reply":
            self.history = history_after_reply(turn.prior_history, turn.caller_text, turn.spoken, heard, turn.result)
            self._keep_resumable(turn, heard)
        elif turn.resumes is not None:
            self._keep_resumable(turn.resumes.turn, turn.resumes.heard + heard)
        await self._write_record(turn)

    # --- False interruptions --------------------------------------------------------------------------

    def _keep_resumable(self, reply: _BotTurn, heard: str) -> None:
        """Remember the unheard rest of an interrupted reply, in case the caller does not take the turn."""
        rest = reply.spoken[len(heard):].strip() if reply.spoken.startswith(heard) else ""
        if not rest or self._closing or self._options.false_interruption_s is None:
            self._resumable = None
            return
        self._resumable = _Resumable(reply, heard, rest, time.monotonic())
        self._spawn(self._resume_if_nothing_said(self._resumable))

    def _take_resumable(self) -> _Resumable | None:
        resumable, self._resumable = self._resumable, None
        if resumable is None or time.monotonic() - resumable.at > FALSE_INTERRUPTION_WINDOW_S:
            return None
        return resumable

    async def _resume_if_nothing_said(self, resumable: _Resumable) -> None:
        """Resume once the line has stayed quiet, with no words pending, for `false_interruption_s`."""
        quiet_needed = self._options.false_interruption_s or 0.0
        while self._resumable is resumable:
            await asyncio.sleep(0.1)
            silent_for = self._activity.silent_for(time.monotonic())
            caller_quiet = silent_for is None or silent_for >= quiet_needed
            if (self._resumable is resumable and caller_quiet and not self._turn_taker.has_unfinalized_words
                    and time.monotonic() - resumable.at >= quiet_needed):
                self._resumable = None
                self._resume(resumable)

    def _resume(self, resumable: _Resumable) -> None:
        logger.info("False interruption: saying the rest of the reply")
        self._spawn(self._incident("false_interruption", f"resumed after {len(resumable.heard)} characters heard"))
        turn = self._new_turn("prompt", "", Timeline.now())
        turn.resumes = resumable
        turn.task = self._spawn(self._say_rest(turn, resumable))

    async def _say_rest(self, turn: _BotTurn, resumable: _Resumable) -> None:
        speech = await self._speak_text(turn, resumable.rest)
        reply = resumable.turn
        # The history tells the model the reply was heard after all, as far as it has now been sent.
        self.history = history_after_reply(reply.prior_history, reply.caller_text, reply.spoken,
                                           resumable.heard + speech.sent_text, reply.result)
        self._finish_sending(turn)

    # --- Records ------------------------------------------------------------------------------------

    def _record_if_heard(self, turn: _BotTurn) -> None:
        if turn.sending_done and not turn.recorded and not self._playout.is_playing(turn.index):
            self._spawn(self._write_record(turn))

    async def _write_record(self, turn: _BotTurn) -> None:
        if turn.recorded:
            return
        turn.recorded = True
        record = TurnRecord(index=turn.index, kind=turn.kind, caller_text=turn.caller_text,
                            bot_text=self._playout.heard_text(turn.index).strip(), interrupted=turn.interrupted,
                            timings=turn.timeline.timings(), tool_calls=list(turn.tool_calls), error=turn.error,
                            origin=turn.timeline.origin,
                            passages=list(turn.result.passages) if turn.result is not None else [])
        try:
            await self._observer.on_turn(record)
        except Exception:
            logger.exception("The call observer failed")


def _segments_of(text: str, options: SegmenterOptions) -> list[str]:
    segmenter = Segmenter(options)
    segments = segmenter.feed(text)
    if (rest := segmenter.flush()) is not None:
        segments.append(rest)
    return segments
