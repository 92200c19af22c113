"""The real-time call pipeline (no Django, no Plivo): caller audio in, the bot's voice out.

A transport (a Plivo stream, a browser socket; see `voicebots.callruntime`) has a `CallSession` built with the
vendor adapters from `voicebots.providers`, calls `start()`, then for the life of the call: `feed_audio(audio)`
(in the transport's `input_format`),
`on_checkpoint_played(name)`, `on_audio_cleared()`, `on_dtmf(digit)`, and finally `stop()`. The session talks
back through the `Transport` port: `send_audio(frame)`, `checkpoint(name)`, `clear()`, `hang_up()`,
`transfer(destination)`, `send_dtmf(digits)`.
When no conversation can run, `Announcement` plays fixed audio and hangs up instead.
"""
from .announcement import Announcement
from .ports import (
    AudioCache,
    BaseCallObserver,
    CallHandler,
    CallObserver,
    SegmentDone,
    SpeechAudio,
    SpeechStarted,
    SpeechToText,
    SpeechToTextError,
    SpeechTurn,
    TextToSpeech,
    TextToSpeechError,
    Transcript,
    Transport,
    TurnRecord,
    UtteranceEnd,
)
from .session import CallSession, SessionOptions

__all__ = [
    "Announcement", "AudioCache", "BaseCallObserver", "CallHandler", "CallObserver", "CallSession", "SegmentDone",
    "SessionOptions", "SpeechAudio", "SpeechStarted", "SpeechToText", "SpeechToTextError", "SpeechTurn",
    "TextToSpeech", "TextToSpeechError", "Transcript", "Transport", "TurnRecord", "UtteranceEnd",
]
