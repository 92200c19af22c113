"""The voice playground's WebSocket protocol, both sides of it: a browser call at /ws/voice/<bot_id>/.

Browser -> server
    {"type": "start", "format": {"encoding": "linear16", "sample_rate": 16000}}   first, once: what it sends
    binary messages: the microphone, 16-bit little-endian PCM, mono, 16 kHz (any whole number of samples, at
        most MAX_AUDIO_BYTES a message; 20 ms = 640 bytes is typical)
    {"type": "played", "name": "..."}   playback has reached a checkpoint (everything before it was heard)
    {"type": "cleared"}                 playback was flushed after a "clear"
    {"type": "hangup"}
Server -> browser
    {"type": "ready", "call_id": "...", "format": {...}, "max_seconds": 600}   the call has started
    binary messages: the bot's voice, in the same format
    {"type": "checkpoint", "name": "..."}   answer with "played" once playback reaches this point
    {"type": "clear"}                       barge-in: stop playback at once, drop what is queued, answer "cleared"
    live events: "caller" (words, "final"), "bot" (text going to the voice), "passages", "tool_started",
        "tool_finished", "turn" (a finished turn as heard, with "timings"), "incident", "transfer"
    {"type": "end", "code": 1000, "reason": "..."}   then the socket closes with that code

Close codes (each comes with an "end" message saying why, since browsers show no close reason of a refused
or server-closed socket reliably): 1000 the call ended, 4400 malformed message, 4401 not signed in, 4404 no such
bot in your accounts, 4408 no audio for too long, 4410 the call's time limit, 4413 message too large,
4415 unsupported audio format, 4429 too many browser calls at once for the account, 1011 the server failed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Union

from voicebots.voice.audio import PCM16_16K, AudioFormat

AUDIO_FORMAT = PCM16_16K
MAX_AUDIO_BYTES = 16000  # 500 ms at 16 kHz: far more than any capture sends at once
MAX_TEXT_CHARS = 4096

NORMAL = 1000
MALFORMED = 4400
NOT_SIGNED_IN = 4401
NO_SUCH_BOT = 4404
NO_AUDIO = 4408
TIME_LIMIT = 4410
TOO_LARGE = 4413
UNSUPPORTED_FORMAT = 4415
TOO_MANY_CALLS = 4429
SERVER_ERROR = 1011


class ProtocolError(Exception):
    """A message the protocol does not allow: the call closes with `code`, saying `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Start:
    audio_format: AudioFormat


@dataclass(frozen=True, slots=True)
class Audio:
    data: bytes


@dataclass(frozen=True, slots=True)
class Played:
    name: str


@dataclass(frozen=True, slots=True)
class Cleared:
    pass


@dataclass(frozen=True, slots=True)
class HangUp:
    pass


BrowserMessage = Union[Start, Audio, Played, Cleared, HangUp]


def format_dict(audio_format: AudioFormat) -> dict[str, Any]:
    return {"encoding": audio_format.encoding, "sample_rate": audio_format.sample_rate, "channels": 1}


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


class BrowserCallCodec:
    # --- Server side: parse the browser's messages, build ours --------------------------------------------

    @staticmethod
    def parse(text: str | None = None, data: bytes | None = None) -> BrowserMessage:
        """The message of one WebSocket frame from the browser; raises ProtocolError."""
        if data is not None:
            if len(data) > MAX_AUDIO_BYTES:
                raise ProtocolError(TOO_LARGE, f"An audio message of {len(data)} bytes is over the limit of "
                                               f"{MAX_AUDIO_BYTES} bytes; send 20 ms frames (640 bytes).")
            if not data or len(data) % AUDIO_FORMAT.sample_bytes:
                raise ProtocolError(MALFORMED, f"An audio message of {len(data)} bytes is not whole 16-bit samples.")
            return Audio(data)
        if text is None:
            raise ProtocolError(MALFORMED, "An empty message.")
        if len(text) > MAX_TEXT_CHARS:
            raise ProtocolError(TOO_LARGE, f"A text message of {len(text)} characters is over the limit of "
                                           f"{MAX_TEXT_CHARS}.")
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise ProtocolError(MALFORMED, "A text message that is not a JSON object.")
        kind = message.get("type")
        if kind == "start":
            return Start(_audio_format(message.get("format")))
        if kind == "played" and isinstance(message.get("name"), str):
            return Played(message["name"])
        if kind == "cleared":
            return Cleared()
        if kind == "hangup":
            return HangUp()
        raise ProtocolError(MALFORMED, f"Unknown or incomplete message {str(kind)[:40]!r}.")

    @staticmethod
    def ready(call_id: str, max_seconds: int) -> str:
        return _json({"type": "ready", "call_id": call_id, "format": format_dict(AUDIO_FORMAT),
                      "max_seconds": max_seconds})

    @staticmethod
    def checkpoint(name: str) -> str:
        return _json({"type": "checkpoint", "name": name})

    @staticmethod
    def clear() -> str:
        return _json({"type": "clear"})

    @staticmethod
    def event(payload: dict[str, Any]) -> str:
        return _json(payload)

    @staticmethod
    def end(code: int, reason: str) -> str:
        return _json({"type": "end", "code": code, "reason": reason})

    # --- The browser's side (tests and benchmarks; static/web/voice.js is the page's) -------------------

    @staticmethod
    def start(audio_format: AudioFormat = AUDIO_FORMAT) -> str:
        return _json({"type": "start", "format": format_dict(audio_format)})

    @staticmethod
    def played(name: str) -> str:
        return _json({"type": "played", "name": name})

    @staticmethod
    def cleared() -> str:
        return _json({"type": "cleared"})

    @staticmethod
    def hangup() -> str:
        return _json({"type": "hangup"})

    @staticmethod
    def parse_from_server(message: str | bytes) -> dict[str, Any] | bytes:
        """An event of the server (a dict with "type"), or the bot's audio (bytes)."""
        return message if isinstance(message, bytes) else json.loads(message)


def _audio_format(value: Any) -> AudioFormat:
    """The format the browser says it sends; only ours is taken."""
    if not isinstance(value, dict):
        raise ProtocolError(MALFORMED, 'The start message needs a "format": {"encoding", "sample_rate"}.')
    encoding, rate, channels = value.get("encoding"), value.get("sample_rate"), value.get("channels", 1)
    if (encoding, rate, channels) != (AUDIO_FORMAT.encoding, AUDIO_FORMAT.sample_rate, 1):
        raise ProtocolError(UNSUPPORTED_FORMAT, f"This server takes {AUDIO_FORMAT.encoding} audio at "
                                                f"{AUDIO_FORMAT.sample_rate} Hz, mono; the page sent "
                                                f"{str(encoding)[:20]} at {str(rate)[:10]} Hz with {str(channels)[:4]}"
                                                " channel(s).")
    return AUDIO_FORMAT
