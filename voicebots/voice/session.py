"""CallSession: one phone call, run as one asyncio task group; it coordinates the parts that each do one job.

    caller audio --feed_audio--> voice detector --verdicts--> CallerSpeech (not the bot's echo) --> BargeIn: hold
                 '-> SpeechListener --STT events--> TurnTaker --end of turn--> a reply task (Replier):
        ConversationEngine.run_turn --text deltas--> Segmenter --segments--> SpokenReply (TTS, fallback voice)
        --audio and word times--> Playout --20 ms frames + a checkpoint per segment--> Transport
    checkpoint acks --on_checkpoint_played--> Playout: what the caller heard

Barge-in reacts to the caller's voice (`barge_in.py`): the bot's audio stops at once, then the caller's words
decide between an interruption (the reply is cancelled, history keeps what was heard, word for word) and a
resume from the first word they did not hear. `dead_air.py` keeps a caller from waiting in silence while the bot
owes a reply; `reply.py` asks the model again when it stalls or says nothing; `call_limits.py` re-prompts a
silent caller and ends a call at its time limit.

The transport (the Plivo stream consumer) creates the session, calls `start()`, feeds it audio and acks, and
calls `stop()` when the call ends. With a `CallControl` the model can end or transfer the call (its last words play
first). Vendor failures are survived: a lost STT stream is reopened (and if it cannot be, the caller is told and
the call ends), a model error is answered with an apology, a failed voice is replaced by the fallback voice, and
with no voice left a recorded line is played.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

from voicebots.conversation.config import BotConfig
from voicebots.conversation.engine import ConversationEngine
from voicebots.conversation.history import opening_history
from voicebots.conversation.ports import Message
from voicebots.core import clock

from .activity import VoiceActivity
from .barge_in import BargeIn, InterruptionRules, Pause
from .bot_turn import BotTurn
from .call_limits import CallLimits
from .caller_speech import CallerSpeech
from .control import CallControl, ControlAction
from .dead_air import DeadAirWatch
from .heard import history_after_greeting, history_after_reply
from .listening import SpeechListener
from .operator import history_with_bot_line
from .options import DEFAULT_APOLOGY, SessionOptions
from .playout import Playout
from .ports import (
    AudioCache,
    BaseCallObserver,
    CallObserver,
    IncidentKind,
    SpeechToText,
    SpeechToTextEvent,
    TextToSpeech,
    TextToSpeechError,
    Transcript,
    Transport,
    TurnKind,
    TurnRecord,
    VoiceActivityDetector,
)
from .recorded import recorded_line
from .reply import Replier
from .segmenter import Segmenter, SegmenterOptions
from .speech import SpokenReply
from .timeline import Timeline
from .turns import CallerPaused, CallerSpeaking, CallerTurnEnded, TurnTaker

__all__ = ["CallSession", "SessionOptions", "DEFAULT_APOLOGY"]

logger = logging.getLogger(__name__)

VAD_RECHECK_S = 0.3  # interim words wait this long for the voice detector to hear the speech behind them
OUTSIDE_LINE_CHECK_S = 0.05  # how often a line said from outside checks for the next turn boundary


class CallSession:
    def __init__(self, *, config: BotConfig, engine: ConversationEngine, transport: Transport, stt: SpeechToText,
                 tts: TextToSpeech, fallback_tts: TextToSpeech | None = None, audio_cache: AudioCache | None = None,
                 observer: CallObserver | None = None, options: SessionOptions | None = None,
                 control: CallControl | None = None, activity: VoiceActivityDetector | None = None) -> None:
        # `control` must also be the engine's tool runner: it answers the call-control tools it offers here.
        self._control = control
        self._config = control.offer_to(config) if control is not None else config
        self._transport = transport
        self._stt = stt
        self._voices = [tts] + ([fallback_tts] if fallback_tts is not None else [])
        self._voice_id = tts.voice_id  # cached audio is keyed on the bot's own voice
        self._cache = audio_cache
        self._observer: CallObserver = observer or BaseCallObserver()
        self._options = options = options or SessionOptions()
        self.history: list[Message] = []
        self._playout = Playout(transport, playback_lag_s=options.playback_lag_s)
        self._caller_format = transport.input_format
        self._activity: VoiceActivityDetector = activity or VoiceActivity(options.speech_rms, self._caller_format)
        self._caller_speech = CallerSpeech(min_speech_s=options.barge_in_min_speech_s,
                                           echo_margin_db=options.barge_in_echo_margin_db,
                                           floor_rms=options.barge_in_floor_rms)
        self._turn_taker = TurnTaker(options.unfinished_turn_hold_s)
        self._hold: asyncio.Task[None] | None = None  # ends a held caller turn unless more words come
        self._listener = SpeechListener(
            stt, self._activity, on_event=self._on_stt_event, on_incident=self._incident,
            on_lost=self._turn_taker.forget_interim, words_pending=lambda: self._turn_taker.has_unfinalized_words,
            reconnect_delays_s=options.stt_reconnect_delays_s, backlog_s=options.stt_backlog_s,
            message_frames=options.stt_message_frames, speech_rms=options.speech_rms,
            finalize_after_silence_s=options.finalize_after_silence_s, audio_format=self._caller_format)
        rules = InterruptionRules(enabled=options.interruptions_enabled, min_words=options.min_interruption_words,
                                  backchannel_words=options.backchannel_words)
        self._barge_in = BargeIn(
            self._playout, rules, quiet_s=options.barge_in_quiet_s, words_wait_s=options.barge_in_words_wait_s,
            words=lambda: self._turn_taker.text, quiet_for=self._activity.silent_for,
            finalize=self._listener.finalize_now, spawn=self._spawn, on_resumed=self._on_resumed)
        self._replier = Replier(engine, self._config, stall_s=options.llm_stall_s, segmenter=options.segmenter,
                                incident=self._incident,
                                action_pending=lambda: control is not None and control.action_pending)
        self._dead_air = DeadAirWatch(
            self._playout, dead_air_s=options.dead_air_s or 0.0, function_filler=options.filler_text,
            function_fillers=options.function_fillers, still_working_text=options.still_working_text,
            model_wait_text=options.model_wait_text, current_turn=lambda: self._current,
            held=self._barge_in.is_holding, closing=lambda: self._closing, incident=self._incident)
        self._limits = CallLimits(
            caller_silence_s=options.caller_silence_s, max_call_duration_s=options.max_call_duration_s,
            reprompt_text=options.reprompt_text, silence_goodbye_text=options.silence_goodbye_text,
            time_limit_goodbye_text=options.time_limit_goodbye_text, busy=self._anyone_busy,
            closing=lambda: self._closing, say=lambda text: self._spawn(self._say(text)),
            say_goodbye=lambda text: self._spawn(self._say_goodbye(text)), incident=self._incident)
        self._turns = 0
        self._current: BotTurn | None = None
        self._group: asyncio.TaskGroup | None = None
        self._main: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stopped = False
        self._closing = False  # the bot is saying its last words: the caller can no longer interrupt them
        self._vad_recheck: asyncio.Task[None] | None = None
        # Turn records being written: outside the call's task group, so that a hang-up (which cancels the group)
        # cannot cut a write short; stop() waits for them before the call's record is finalized.
        self._record_writes: set[asyncio.Task[None]] = set()

    # --- What the transport calls -------------------------------------------------------------------

    async def start(self) -> None:
        """Start the call: the greeting plays at once while the STT stream and the voice connect."""
        if self._main is None:
            self._main = asyncio.create_task(self._run(), name="call-session")
            await self._started.wait()

    def feed_audio(self, audio: bytes) -> None:
        if self._stopped:
            return
        now = clock.now()
        self._activity.update(audio, now)
        self._listener.feed(audio)
        onset = self._caller_speech.update(self._activity.take_verdicts(), self._playout.level)
        if onset is not None:
            self._voice_heard(onset)

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
        await asyncio.gather(*self._record_writes)

    # --- Live control: what an operator asks of the call from outside -------------------------------

    def say(self, text: str, *, interrupt: bool = False) -> bool:
        """Speak `text` to the caller: once the bot's current turn has been heard and the caller is not
        speaking, or at once (cutting the bot off) with `interrupt`. The line joins the history as the bot's,
        as far as the caller heard it. False when the call can no longer speak (closing or stopped)."""
        text = text.strip()
        if not text or self._closing or self._stopped:
            return False
        return self._spawn(self._say_from_outside(text, interrupt)) is not None

    def end(self, goodbye: str = "") -> bool:
        """End the call: say `goodbye` first (cutting the bot off; the caller can no longer interrupt), then
        hang up. False when the call has already stopped."""
        if self._stopped:
            return False
        self._closing = True
        goodbye = goodbye.strip()
        return self._spawn(self._say_goodbye(goodbye) if goodbye else self._transport.hang_up()) is not None

    def transfer(self, to: str, summary: str = "") -> bool:
        """Hand the caller to `to` (E.164 or sip: URI) after the transfer line; with a `summary`, the transport
        has it said to the person who answers before the caller is joined (a warm transfer). A refused
        transfer is recorded and the caller told so. False when the call can no longer act."""
        if self._closing or self._stopped:
            return False
        self._closing = True
        return self._spawn(self._transfer_from_outside(to, summary.strip())) is not None

    async def _say_from_outside(self, text: str, interrupt: bool) -> None:
        if interrupt:
            if self._bot_busy():
                await self._interrupt()
        else:
            while self._anyone_busy():
                await asyncio.sleep(OUTSIDE_LINE_CHECK_S)
        if self._closing:
            return
        turn = self._new_turn("prompt", "", Timeline.now())
        turn.task = asyncio.current_task()
        try:
            await self._speak_text(turn, text)
            self._finish_sending(turn)
            await self._wait_heard(turn)
        finally:  # also on a barge-in: the history keeps what was heard
            if heard := self._playout.heard_text(turn.index).strip():
                self.history = history_with_bot_line(self.history, heard)

    async def _transfer_from_outside(self, to: str, summary: str) -> None:
        if self._bot_busy():
            await self._interrupt()
        turn = self._new_turn("prompt", "", Timeline.now())
        turn.task = asyncio.current_task()
        await self._speak_text(turn, self._options.transfer_text)
        self._finish_sending(turn)
        await self._transfer_once_heard(turn, to, summary)

    # --- The task group -----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._spawn(self._greet())
                # One turn of the loop for the greeting first: with its audio cached, the audio is handed over
                # (and sent next) before the vendors' connections start.
                await asyncio.sleep(0)
                self._spawn(self._keep_listening())
                self._spawn(self._listener.forward_audio())
                self._spawn(self._connect_voice())
                self._spawn(self._limits.watch_silence())
                self._spawn(self._limits.limit_duration())
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

    async def _play_fixed(self, turn: BotTurn, audio: bytes, text: str, *, segment: int) -> None:
        await self._playout.play(turn.index, audio)
        await self._playout.end_segment(turn.index, segment, text)
        turn.spoken += text

    # --- Listening ----------------------------------------------------------------------------------

    async def _keep_listening(self) -> None:
        """The STT stream for the whole call; if it is lost for good the bot can no longer hear: it says so and
        ends the call rather than leave the caller talking to nobody."""
        await self._listener.listen()
        if not self._closing:
            await self._say_goodbye(self._options.cannot_hear_text)

    async def _on_stt_event(self, event: SpeechToTextEvent) -> None:
        if isinstance(event, Transcript) and event.from_finalize and not event.text.strip() and self._current:
            self._barge_in.nothing_said(self._current.index)
        for signal in self._turn_taker.on_event(event):
            self._limits.caller_spoke(clock.now())
            if self._closing:
                continue
            if isinstance(signal, CallerSpeaking):
                self._listener.words_heard()
                self._cancel_hold()
                if (self._barge_in.rules.enabled and self._bot_busy()
                        and not self._barge_in.rules.is_backchannel(signal.text, partial=True)):
                    if self._heard_speech_lately():
                        self._voice_heard(clock.now())
                    elif self._vad_recheck is None:
                        # The words may come before the voice detector's verdict on the same audio.
                        self._vad_recheck = self._spawn(self._hold_once_voice_is_heard())
            elif isinstance(signal, CallerTurnEnded):
                await self._on_caller_turn(signal)
            elif isinstance(signal, CallerPaused):
                self._cancel_hold()
                self._hold = self._spawn(self._end_turn_after(signal.hold_s))

    async def _hold_once_voice_is_heard(self) -> None:
        try:
            deadline = clock.now() + VAD_RECHECK_S
            while clock.now() < deadline:
                await asyncio.sleep(0.02)
                if not (self._bot_busy() and self._turn_taker.has_unfinalized_words):
                    return
                if self._heard_speech_lately():
                    self._voice_heard(clock.now())
                    return
        finally:
            self._vad_recheck = None

    def _heard_speech_lately(self) -> bool:
        """The caller's own voice (the detector's speech, less the bot's echo: CallerSpeech) was heard lately, and
        during the bot's turn: their words before it (the question it answers) do not make later words theirs."""
        quiet_for = self._caller_speech.quiet_for(clock.now())
        turn = self._current
        return (quiet_for is not None and quiet_for <= self._options.barge_in_confirm_s
                and (turn is None or self._caller_spoke_during(turn)))

    def _caller_spoke_during(self, turn: BotTurn) -> bool:
        own = self._caller_speech.last_speech_at
        return own is not None and own >= turn.timeline.started

    def _is_echo(self, turn: BotTurn) -> bool:
        """A transcript while the bot is audible, where since the bot's turn began the voice detector heard speech
        but none of it was the caller's own (all of it the bot's echo): the speech-to-text wrote down the echo.
        When the detector heard nothing at all, the transcript stands: the words are all there is to go by."""
        heard = self._activity.last_speech_at
        return (self._playout.audible() and heard is not None and heard >= turn.timeline.started
                and not self._caller_spoke_during(turn))

    def _cancel_hold(self) -> None:
        if self._hold is not None and self._hold is not asyncio.current_task():
            self._hold.cancel()
        self._hold = None

    async def _end_turn_after(self, hold_s: float) -> None:
        await asyncio.sleep(hold_s)
        self._hold = None  # from here on this task answers the caller: new words must not cancel it
        if (ended := self._turn_taker.end_held_turn()) is not None:
            await self._on_caller_turn(ended)

    # --- Barge-in -----------------------------------------------------------------------------------

    def _voice_heard(self, at: float) -> None:
        """The caller's voice: hold the bot's turn if it speaks, or is about to (its reply is still running)."""
        turn = self._current
        if (turn is None or turn.interrupted or self._closing or not self._barge_in.rules.enabled
                or not (turn.running or self._playout.audible())):
            return
        self._barge_in.voice_heard(turn.index, at)

    async def _on_resumed(self, pause: Pause, after: str, stopped_s: float) -> None:
        logger.info("False interruption (%s): turn %s goes on", after, pause.turn)
        heard = len(self._playout.heard_text(pause.turn))
        await self._incident("false_interruption",
                             f"after {after}: went on from character {self._playout.audio_of(pause.turn).heard_char}"
                             f" ({heard} acknowledged as heard), {stopped_s * 1000:.0f} ms after stopping")

    # --- Turns --------------------------------------------------------------------------------------

    def _bot_busy(self) -> bool:
        """The bot is thinking or speaking: its reply is still running, or audio is still being played."""
        turn = self._current
        if turn is None or turn.interrupted:
            return False
        return turn.running or self._playout.is_playing(turn.index)

    def _anyone_busy(self) -> bool:
        return self._bot_busy() or self._activity.speaking or self._turn_taker.has_unfinalized_words

    async def _on_caller_turn(self, ended: CallerTurnEnded, speech_ended: float | None = None) -> None:
        now = clock.now()
        # Read before anything is awaited: speech heard meanwhile comes after the words this turn answers.
        speech_ended = speech_ended or self._activity.last_speech_at or now
        turn = self._current
        if turn is not None and self._barge_in.take_utterance(turn.index, ended.text):
            logger.info("Going on after an acknowledgement: %r", ended.text)
            return
        if self._bot_busy():
            if self._barge_in.rules.is_backchannel(ended.text):
                logger.info("Ignoring a backchannel while the bot speaks: %r", ended.text)
                return
            if self._is_echo(turn):
                await self._incident("echo_ignored", f"a transcript of the bot's own voice: {ended.text!r}")
                return
            if not self._barge_in.rules.enabled:
                self._spawn(self._answer_when_heard(ended, speech_ended))
                return
            await self._interrupt()
        timeline = Timeline(started=now)
        timeline.mark("speech_ended", speech_ended)
        timeline.mark("transcript_final", now)
        turn = self._new_turn("reply", ended.text, timeline)
        turn.task = self._spawn(self._reply(turn))
        if self._options.dead_air_s is not None:
            self._spawn(self._dead_air.watch(turn))

    async def _answer_when_heard(self, ended: CallerTurnEnded, speech_ended: float) -> None:
        """Interruptions are off: the caller's words wait until the bot's current turn has been heard (and the
        reply is timed from the end of those words, not of any said while waiting)."""
        turn = self._current
        if turn is not None:
            if turn.task is not None and turn.task is not asyncio.current_task():
                await asyncio.gather(turn.task, return_exceptions=True)
            await self._wait_heard(turn)
        await self._on_caller_turn(ended, speech_ended)

    def _new_turn(self, kind: TurnKind, caller_text: str, timeline: Timeline) -> BotTurn:
        if self._current is not None:
            self._barge_in.release(self._current.index)  # a hold belongs to the turn it stopped
        index = self._turns
        self._turns += 1
        turn = BotTurn(index, kind, caller_text, list(self.history), timeline)
        self._current = turn
        return turn

    def _spoken_reply(self, turn: BotTurn, *, keep_audio: bool = False) -> SpokenReply:
        speech = SpokenReply(self._voices, self._playout, turn.index, turn.timeline,
                             response_timeout_s=self._options.tts_timeout_s, keep_audio=keep_audio,
                             on_voice_failed=self._on_voice_failed)
        turn.speech = speech
        return speech

    async def _speak_text(self, turn: BotTurn, text: str, *, keep_audio: bool = False) -> SpokenReply:
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

    async def _reply(self, turn: BotTurn) -> None:
        if self._control is not None:
            self._control.take_action()  # a request of an interrupted turn is void
        action: ControlAction | None = None
        result_heard = True  # the model's reply reached the caller (a recorded line may have replaced it)
        speech = self._spoken_reply(turn)
        speaking = asyncio.create_task(speech.run())
        try:
            outcome = await self._replier.run(turn, speech)
            if self._control is not None and turn.error is None:
                action = self._control.take_action()
            if action is not None:
                self._closing = True
                if not speech.segments:  # the model acted without a word: the caller still hears why
                    speech.say(self._control_line(action))
            elif outcome == "silent":
                await self._incident("empty_reply", "the model said nothing again; said the fallback line")
                speech.say(self._options.empty_reply_text)
            apology = await self._cached_audio(self._options.apology_text) if turn.error else None
            if turn.error and apology is None:
                speech.say(self._options.apology_text)
            speech.finish()
            await speaking
            turn.spoken, sent = speech.text, speech.sent_text
            if apology is not None:
                await self._play_fixed(turn, apology, self._options.apology_text, segment=len(speech.segments))
                sent += self._options.apology_text
            elif not speech.complete and speech.segments:  # no voice could say it: a recorded line instead
                sent += await self._play_recorded_line(turn, segment=len(speech.segments))
                result_heard = False
        finally:
            if not speaking.done():
                speaking.cancel()
                await asyncio.gather(speaking, return_exceptions=True)
        # Until the caller interrupts, everything sent counts as heard (a failed voice may have sent less).
        result = turn.result if result_heard else None
        self.history = history_after_reply(turn.prior_history, turn.caller_text, turn.spoken, sent, result,
                                           turn.tool_calls, turn.before_tools)
        self._finish_sending(turn)
        if action is not None:
            await self._carry_out(turn, action)

    async def _play_recorded_line(self, turn: BotTurn, *, segment: int) -> str:
        text, audio = recorded_line("trouble", self._transport.output_format)
        await self._incident("fallback_line", f"no voice could speak: played the recording {text!r}")
        await self._play_fixed(turn, audio, text, segment=segment)
        return text

    def _control_line(self, action: ControlAction) -> str:
        return self._options.goodbye_text if action.kind == "end_call" else self._options.transfer_text

    async def _carry_out(self, turn: BotTurn, action: ControlAction) -> None:
        """End or transfer the call once the bot's last words have been heard."""
        if action.kind == "end_call":
            await self._wait_heard(turn)
            await self._transport.hang_up()
        else:
            await self._transfer_once_heard(turn, action.destination)

    async def _transfer_once_heard(self, turn: BotTurn, to: str, summary: str = "") -> None:
        """Transfer once `turn` (the transfer line) has been heard; a refused transfer is recorded and the caller
        is told, and the call goes on."""
        await self._wait_heard(turn)
        moved = await (self._transport.transfer(to, summary=summary) if summary else self._transport.transfer(to))
        if not moved:
            await self._incident("transfer_failed", to)
            self._closing = False
            self._spawn(self._say(self._options.transfer_failed_text))

    async def _wait_heard(self, turn: BotTurn) -> None:
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

    def _finish_sending(self, turn: BotTurn) -> None:
        turn.sending_done = True
        self._record_if_heard(turn)

    async def _interrupt(self) -> None:
        """The caller takes the turn: stop the bot's turn, clear the caller's playback, keep only what was heard
        (to the word: the first word the caller did not hear, and all after it, is dropped)."""
        turn = self._current
        if turn is None:
            return
        turn.interrupted = True
        self._barge_in.release(turn.index)
        if turn.task is not None and not turn.task.done():
            turn.task.cancel()  # closes the model stream and the voice's turn
        cut = await self._playout.stop(turn.index)
        self._playout.cut_off(turn.index, await self._playout.resume_point(turn.index, cut, wait_s=0.0))
        if turn.task is not None and turn.task is not asyncio.current_task():
            await asyncio.gather(turn.task, return_exceptions=True)
        heard = self._playout.heard_text(turn.index)
        if turn.speech is not None and not turn.spoken:
            turn.spoken = turn.speech.text
        if turn.kind == "greeting":
            self.history = history_after_greeting(heard)
        elif turn.kind == "reply":
            self.history = history_after_reply(turn.prior_history, turn.caller_text, turn.spoken, heard, turn.result,
                                               turn.tool_calls, turn.before_tools)
        await self._write_record(turn)

    # --- Records ------------------------------------------------------------------------------------

    def _record_if_heard(self, turn: BotTurn) -> None:
        if turn.sending_done and not turn.recorded and not self._playout.is_playing(turn.index):
            writing = asyncio.create_task(self._guarded(self._write_record(turn)))
            self._record_writes.add(writing)
            writing.add_done_callback(self._record_writes.discard)

    async def _write_record(self, turn: BotTurn) -> None:
        if turn.recorded:
            return
        turn.recorded = True
        # The playout knows when the turn's audio went out, whichever way it went (a held turn's on its resume).
        sent = self._playout.audio_of(turn.index)
        if sent.first_sent_at is not None:
            turn.timeline.mark("first_audio_sent", sent.first_sent_at)
            turn.timeline.last_audio_sent = sent.last_sent_at
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
