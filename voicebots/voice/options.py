"""How a call behaves: the options of a `CallSession`, with the lines the bot says on its own.

Times are seconds. The transport's builder fills them from the bot's settings (see
`telephony.consumer.session_options`); tests pass them directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .activity import DEFAULT_SPEECH_RMS
from .barge_in import DEFAULT_BACKCHANNEL_WORDS
from .segmenter import SegmenterOptions
from .turns import DEFAULT_HOLD_S

DEFAULT_APOLOGY = "Sorry, I'm having trouble answering right now. Could you say that again?"
DEFAULT_GOODBYE = "Thank you for calling. Goodbye!"
DEFAULT_TRANSFER_LINE = "Please hold while I transfer your call."
DEFAULT_TRANSFER_FAILED = "Sorry, I could not transfer your call. How else can I help?"
DEFAULT_REPROMPT = "Are you still there?"
DEFAULT_SILENCE_GOODBYE = "I haven't heard from you, so I'll end the call now. Goodbye!"
DEFAULT_TIME_LIMIT_GOODBYE = "I'm sorry, we have reached the time limit for this call. Goodbye!"


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
