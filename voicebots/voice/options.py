"""How a call behaves: the options of a `CallSession`, with the lines the bot says on its own.

Times are seconds. The transport's builder fills them from the bot's settings (see
`telephony.consumer.session_options`); tests pass them directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import Mapping

from .activity import DEFAULT_SPEECH_RMS
from .barge_in import DEFAULT_BACKCHANNEL_WORDS, DEFAULT_QUIET_S, DEFAULT_WORDS_WAIT_S
from .caller_speech import DEFAULT_ECHO_MARGIN_DB, DEFAULT_FLOOR_RMS, DEFAULT_MIN_SPEECH_S
from .segmenter import SegmenterOptions
from .turns import DEFAULT_HOLD_S

DEFAULT_APOLOGY = "Sorry, I'm having trouble answering right now. Could you say that again?"
DEFAULT_GOODBYE = "Thank you for calling. Goodbye!"
DEFAULT_TRANSFER_LINE = "Please hold while I transfer your call."
DEFAULT_TRANSFER_FAILED = "Sorry, I could not transfer your call. How else can I help?"
DEFAULT_REPROMPT = "Are you still there?"
DEFAULT_SILENCE_GOODBYE = "I haven't heard from you, so I'll end the call now. Goodbye!"
DEFAULT_TIME_LIMIT_GOODBYE = "I'm sorry, we have reached the time limit for this call. Goodbye!"
DEFAULT_FILLER = "One moment while I check that."
DEFAULT_STILL_WORKING = "Thanks for waiting, I'm still on it."
DEFAULT_MODEL_WAIT = "Just a moment."
DEFAULT_EMPTY_REPLY = "Sorry, I don't have an answer to that. Could you put it another way?"
DEFAULT_CANNOT_HEAR = "Sorry, I can't hear you right now, so I'll end the call. Please call again later. Goodbye!"
DEFAULT_DEAD_AIR_S = 2.5
DEFAULT_PLAYBACK_LAG_S = 0.0


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """How a call behaves. Times are seconds.

    Barge-in (see `barge_in.py`): while the bot speaks or thinks, the caller's voice stops its audio at once once
    `barge_in_min_speech_s` of speech has been heard that is no quieter than `barge_in_floor_rms` and within
    `barge_in_echo_margin_db` of the bot's own recent level (so its echo does not count); then the words decide.
    `min_interruption_words` words (interim or final) that are not `backchannel_words` take the turn; only an
    acknowledgement, or no words once the caller has been quiet for `barge_in_words_wait_s`, resumes the bot
    from the first word the caller did not hear. Once the caller has been quiet for `barge_in_quiet_s`, the STT
    is asked for its final words at once. Words of an interim transcript stop the bot too if the voice detector
    heard speech in the last `barge_in_confirm_s` (a transcript of noise or echo does not). `interruptions_enabled`
    False: the caller cannot interrupt; what they said is answered once the bot's turn has been heard.

    No dead air (see `dead_air.py`, `reply.py`): while the bot owes a reply and nothing has been audible for
    `dead_air_s` (None: never), it says `function_fillers[name]` (or `filler_text`) while a function runs, then
    `still_working_text`, or `model_wait_text` while the model is slow. A model stream with no sign of life for
    `llm_stall_s` (None: never) is asked again once, then given up on (the apology). A model that says nothing is
    asked again once, then `empty_reply_text` is said. A voice that fails gets `tts_timeout_s` before the fallback
    voice (or a recorded line) takes over. A speech-to-text stream lost for good: `cannot_hear_text`, then hang up.

    `finalize_after_silence_s`: ask the STT for a final transcript once the line has been quiet this long while
    words are still unfinalized (None: never).
    `stt_reconnect_delays_s`: waits before each attempt to reopen a lost STT stream; after the last, give up.
    `stt_backlog_s`: caller audio kept while the STT stream is being reopened, sent once it is back.
    `stt_message_frames`: 20 ms frames of quiet caller audio per message to the STT (Deepgram takes 20-100 ms):
    two halve the messages while the caller listens; a frame with speech-level energy goes at once. Frames that
    queued up meanwhile go along, up to 100 ms.
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
    backchannel_words: tuple[str, ...] = DEFAULT_BACKCHANNEL_WORDS
    barge_in_min_speech_s: float = DEFAULT_MIN_SPEECH_S
    barge_in_echo_margin_db: float = DEFAULT_ECHO_MARGIN_DB
    barge_in_floor_rms: float = DEFAULT_FLOOR_RMS
    barge_in_quiet_s: float = DEFAULT_QUIET_S
    barge_in_words_wait_s: float = DEFAULT_WORDS_WAIT_S
    barge_in_confirm_s: float = 1.0
    playback_lag_s: float = DEFAULT_PLAYBACK_LAG_S
    dead_air_s: float | None = DEFAULT_DEAD_AIR_S
    filler_text: str = DEFAULT_FILLER
    function_fillers: Mapping[str, str] = field(default_factory=dict)
    still_working_text: str = DEFAULT_STILL_WORKING
    model_wait_text: str = DEFAULT_MODEL_WAIT
    llm_stall_s: float | None = DEFAULT_DEAD_AIR_S
    empty_reply_text: str = DEFAULT_EMPTY_REPLY
    cannot_hear_text: str = DEFAULT_CANNOT_HEAR
    speech_rms: float = DEFAULT_SPEECH_RMS
    finalize_after_silence_s: float | None = 0.7
    stt_reconnect_delays_s: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
    stt_backlog_s: float = 2.0
    stt_message_frames: int = 2
    tts_timeout_s: float = 2.0
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
