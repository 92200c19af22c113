"""The call pipeline's ports: what a phone transport, a speech-to-text vendor, a text-to-speech vendor, a greeting
cache and a call recorder must offer, and the plain values that cross them.

Audio is mono in the transport's formats (`Transport.input_format` for the caller's audio, `output_format` for the
bot's; see `audio.py`): mu-law at 8 kHz on the phone. Nothing here knows Django, Plivo or a vendor SDK.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Literal, Protocol, Union

from voicebots.conversation.ports import Passage, ToolCallRecord

from .audio import AudioFormat

# --- Phone side --------------------------------------------------------------------------------------


class Transport(Protocol):
    """The caller's leg, as seen by the pipeline (a Plivo stream, a browser socket).

    Calls must not block for long: a consumer should put a timeout on its socket writes, so a half-dead
    carrier socket cannot freeze the call. The vendors are asked for audio in the transport's formats.
    """

    input_format: AudioFormat  # the caller's audio, as fed to the handler (and sent to the STT)
    output_format: AudioFormat  # the bot's audio, as sent to the transport (and asked of the TTS)

    async def send_audio(self, frame: bytes) -> None:
        """Queue one 20 ms frame (`output_format.frame_bytes`) for playback to the caller."""
        ...

    async def checkpoint(self, name: str) -> None:
        """Mark this point of the outgoing audio; the transport reports back `on_checkpoint_played(name)`
        once everything sent before it has been played to the caller."""
        ...

    async def clear(self) -> None:
        """Drop all audio queued for playback (barge-in)."""
        ...

    async def hang_up(self) -> None:
        """End the call."""
        ...

    async def transfer(self, destination: str, summary: str = "") -> bool:
        """Hand the caller to `destination` (an E.164 number or a sip: URI); False if the network refused.
        With a `summary` (live control's warm transfer), the person who answers hears it before the caller is
        joined; the session passes it only when there is one."""
        ...

    async def send_dtmf(self, digits: str) -> None:
        """Play DTMF tones to the far end (an IVR)."""
        ...


class CallHandler(Protocol):
    """What a transport drives: one per call (`CallSession`, or `Announcement` when no conversation can run)."""

    async def start(self) -> None: ...

    def feed_audio(self, audio: bytes) -> None:
        """Caller audio as it arrives (any length; 20 ms frames are typical)."""
        ...

    def on_checkpoint_played(self, name: str) -> None: ...

    def on_audio_cleared(self) -> None: ...

    def on_dtmf(self, digit: str) -> None: ...

    async def stop(self) -> None:
        """The call is over (hang-up or socket closed): stop everything and close vendor sockets."""
        ...


@dataclass(frozen=True, slots=True)
class VoiceVerdict:
    """A voice detector's judgement of one stretch of the caller's audio: `duration_s` of audio that arrived by `at`
    (seconds on the call's clock), whether it carries speech, and its level (RMS in 16-bit sample units)."""

    at: float
    duration_s: float
    speech: bool
    level: float


class VoiceActivityDetector(Protocol):
    """Says whether the caller's audio carries speech (`activity.VoiceActivity` by energy, or a local model)."""

    speaking: bool
    last_speech_at: float | None

    def update(self, audio: bytes, now: float) -> bool: ...

    def silent_for(self, now: float) -> float | None: ...

    def take_verdicts(self) -> list[VoiceVerdict]:
        """The verdicts reached since the last call, oldest first (a model may reach them a little later, on a
        thread of its own)."""
        ...


# --- Speech to text ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The vendor's voice-activity detector heard speech start (`at_s` on the stream's audio clock)."""

    at_s: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """A transcript of the audio between `start_s` and `end_s` (stream audio clock).

    `is_final`: this stretch of audio will not be transcribed again. `speech_final`: the vendor's endpointing
    saw the speaker pause. `from_finalize`: produced because we asked for it (`finalize()`).
    """

    text: str
    is_final: bool
    speech_final: bool = False
    from_finalize: bool = False
    start_s: float = 0.0
    end_s: float = 0.0
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    """No new word for a while after the last finalized one (`last_word_end_s`, stream audio clock)."""

    last_word_end_s: float


SpeechToTextEvent = Union[SpeechStarted, Transcript, UtteranceEnd]


class SpeechToTextError(Exception):
    """The STT stream could not be opened or was lost; connecting again may work."""


class SpeechToText(Protocol):
    """A live transcription stream for one call. `connect` may be called again after a SpeechToTextError."""

    async def connect(self) -> None: ...

    async def send_audio(self, audio: bytes) -> None:
        """Raises SpeechToTextError when the stream is not open."""
        ...

    async def finalize(self) -> None:
        """Ask for a final transcript of the audio sent so far, now."""
        ...

    def events(self) -> AsyncIterator[SpeechToTextEvent]:
        """Events of the current connection; ends when it is closed by us, raises SpeechToTextError if lost."""
        ...

    async def aclose(self) -> None: ...


# --- Text to speech ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    audio: bytes


@dataclass(frozen=True, slots=True)
class SegmentDone:
    """All audio of the `index`-th pushed segment has been delivered."""

    index: int


@dataclass(frozen=True, slots=True)
class WordTimes:
    """Where words lie in the turn's audio, as the voice reports them: seconds from the start of the speech turn's
    audio, for the next words of its text, in order."""

    words: tuple[str, ...]
    starts: tuple[float, ...]
    ends: tuple[float, ...]


SpeechEvent = Union[SpeechAudio, SegmentDone, WordTimes]


class TextToSpeechError(Exception):
    """The voice failed (connection, rejected request, error from the vendor)."""


class SpeechTurn(Protocol):
    """One bot turn's speech: text segments pushed in order (they continue each other), audio out."""

    async def push(self, segment: str) -> None: ...

    async def finish(self) -> None:
        """No more segments."""
        ...

    def events(self) -> AsyncIterator[SpeechEvent]:
        """Audio and segment ends, in order; ends after the last segment once `finish` was called."""
        ...

    async def cancel(self) -> None:
        """Stop generating (barge-in); safe to call more than once."""
        ...


class TextToSpeech(Protocol):
    """A voice for one call: `connect` opens the vendor connection (idempotent; reconnects if it dropped)."""

    voice_id: str

    async def connect(self) -> None: ...

    def start_turn(self) -> SpeechTurn: ...

    async def aclose(self) -> None: ...


# --- Cached audio -----------------------------------------------------------------------------------


class AudioCache(Protocol):
    """Pre-synthesized audio for fixed sentences (the greeting, the apology), keyed by bot, voice and text."""

    async def get(self, bot_id: str, voice: str, text: str) -> bytes | None: ...

    async def put(self, bot_id: str, voice: str, text: str, audio: bytes) -> None: ...


# --- What the call produced -------------------------------------------------------------------------

TurnKind = Literal["greeting", "reply", "prompt"]  # prompt: a fixed line the bot says on its own


@dataclass(slots=True)
class TurnRecord:
    """One bot turn, final: what the caller said, what the caller heard back, and when things happened.

    `timings` holds milliseconds (see `timeline.Timeline.timings`). `error` is set when a vendor failed
    during the turn (the bot apologised or stayed silent). `origin` is the moment (`clock.now()`) the timings
    count from (see `Timeline.origin`), so a recorder can place the turn on the call's clock;
    `passages` are the knowledge excerpts the reply was written from.
    """

    index: int
    kind: TurnKind
    caller_text: str
    bot_text: str
    interrupted: bool
    timings: dict[str, float | None]
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    error: str | None = None
    origin: float | None = None
    passages: list[Passage] = field(default_factory=list)


# false_interruption: the bot stopped for the caller's voice and went on (an acknowledgement, a noise).
# echo_ignored: a transcript of the bot's own voice, leaking back from the caller's phone, did not interrupt it.
# The others after llm_error keep a call from going silent: filler (a line while a function or the model is slow),
# llm_stalled (the model's stream stopped: asked again, or given up on), empty_reply (the model said nothing: asked
# again, or a fallback line), fallback_line (no voice could speak: a recorded line played instead).
IncidentKind = Literal["stt_reconnected", "stt_lost", "tts_failed", "tts_fallback", "llm_error", "transfer_failed",
                       "caller_silent", "max_duration", "false_interruption", "filler", "llm_stalled",
                       "empty_reply", "fallback_line", "echo_ignored"]


class CallObserver(Protocol):
    """Told about each finished turn and each vendor incident, so the caller can persist them as they happen."""

    async def on_turn(self, record: TurnRecord) -> None: ...

    async def on_incident(self, kind: IncidentKind, detail: str) -> None: ...

    async def on_dtmf(self, digit: str) -> None: ...


class BaseCallObserver:
    """A CallObserver that ignores everything; override what you need."""

    async def on_turn(self, record: TurnRecord) -> None:
        pass

    async def on_incident(self, kind: IncidentKind, detail: str) -> None:
        pass

    async def on_dtmf(self, digit: str) -> None:
        pass
