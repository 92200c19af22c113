"""Plivo's bidirectional audio-stream protocol, in one place: both sides of it, as typed events and messages.

Plivo sends `start`, `media` (base64 audio, ~20 ms each), `playedStream` (a checkpoint was played; some
accounts say `played`), `clearedAudio`, `dtmf` and `stop`; the server sends `playAudio`, `checkpoint`,
`clearAudio` and `sendDTMF`. Every frame is a JSON text frame.

The stream consumer parses Plivo's frames (`parse`) and builds its own messages; `simulate_call`, the
benchmarks' callers and the tests play Plivo's part with the same codec (`start`, `media`, ... and
`parse_from_server`), so both ends of every test speak one definition of the protocol.
"""
from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any, Union

from voicebots.voice.audio import MULAW_8K, AudioFormat

# Plivo's content types, and the sample rates each may have (L16: 8 or 16 kHz; mu-law: 8 kHz only).
CONTENT_TYPES = {"mulaw": "audio/x-mulaw", "linear16": "audio/x-l16"}
RATES = {"mulaw": (8000,), "linear16": (8000, 16000)}


class MalformedFrame(ValueError):
    """A frame that is not the protocol; `str()` says why, in a few words."""


# --- Plivo -> server ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamStarted:
    call_id: str
    stream_id: str
    account_id: str
    audio_format: AudioFormat | None  # None: a format we do not take (see `content_type`)
    content_type: str  # as Plivo named it, e.g. "audio/x-mulaw"
    extra_headers: str = ""


@dataclass(frozen=True, slots=True)
class MediaReceived:
    audio: bytes
    track: str = "inbound"

    @property
    def from_caller(self) -> bool:
        return self.track == "inbound"


@dataclass(frozen=True, slots=True)
class CheckpointPlayed:
    name: str


@dataclass(frozen=True, slots=True)
class AudioCleared:
    pass


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    digit: str


@dataclass(frozen=True, slots=True)
class StreamStopped:
    reason: str = ""


PlivoEvent = Union[StreamStarted, MediaReceived, CheckpointPlayed, AudioCleared, DtmfReceived, StreamStopped]


# --- server -> Plivo ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayAudio:
    audio: bytes
    content_type: str
    sample_rate: int


@dataclass(frozen=True, slots=True)
class CheckpointRequested:
    name: str
    stream_id: str


@dataclass(frozen=True, slots=True)
class ClearRequested:
    stream_id: str


@dataclass(frozen=True, slots=True)
class DtmfRequested:
    digits: str


ServerMessage = Union[PlayAudio, CheckpointRequested, ClearRequested, DtmfRequested]


def audio_format_of(content_type: str, sample_rate: Any) -> AudioFormat | None:
    """Our AudioFormat of Plivo's `mediaFormat` (or a `contentType`'s `;rate=`), None when unsupported."""
    kind, _, rate_text = str(content_type).partition(";rate=")
    encoding = next((name for name, plivo in CONTENT_TYPES.items() if plivo == kind.strip().lower()), None)
    try:
        rate = int(sample_rate if sample_rate not in (None, "") else (rate_text or 8000))
    except (TypeError, ValueError):
        return None
    if encoding is None or rate not in RATES[encoding]:
        return None
    return AudioFormat(encoding, rate)


def _object(text: str | bytes | None) -> dict:
    try:
        frame = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):  # junk, or nested deeper than Python recurses
        frame = None
    if not isinstance(frame, dict):
        raise MalformedFrame("not a JSON object")
    return frame


def _decode_audio(payload: Any) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise MalformedFrame("media without a valid payload") from None


class PlivoStreamCodec:
    """One stream's codec. The server learns `stream_id` and `audio_format` from `start`; Plivo's side sets
    them up front and numbers its frames (`sequenceNumber`)."""

    def __init__(self, stream_id: str = "", audio_format: AudioFormat = MULAW_8K) -> None:
        self.stream_id = stream_id
        self.audio_format = audio_format
        self._sequence = 0

    # --- Server side: parse Plivo's frames, build ours -------------------------------------------------

    def parse(self, text: str | bytes | None) -> PlivoEvent:
        """The event of one frame from Plivo; raises MalformedFrame."""
        frame = _object(text)
        event = frame.get("event")
        if event == "media":
            media = frame.get("media")
            if not isinstance(media, dict):
                raise MalformedFrame("media without a media object")
            return MediaReceived(_decode_audio(media.get("payload")), str(media.get("track") or "inbound"))
        if event == "start":
            return self._started(frame)
        if event in ("playedStream", "played"):
            return CheckpointPlayed(str(frame.get("name", "")))
        if event == "clearedAudio":
            return AudioCleared()
        if event == "dtmf":
            digit = (frame.get("dtmf") or {}).get("digit") if isinstance(frame.get("dtmf"), dict) else None
            if not isinstance(digit, str) or not digit:
                raise MalformedFrame("dtmf without a digit")
            return DtmfReceived(digit)
        if event == "stop":
            stop = frame.get("stop") if isinstance(frame.get("stop"), dict) else {}
            return StreamStopped(str(stop.get("reason", "")))
        raise MalformedFrame(f"unknown event {event!r}")

    def _started(self, frame: dict) -> StreamStarted:
        start = frame.get("start") if isinstance(frame.get("start"), dict) else {}
        call_id, stream_id = str(start.get("callId", "")), str(start.get("streamId", ""))
        if not call_id or not stream_id:
            raise MalformedFrame("start without callId or streamId")
        media_format = start.get("mediaFormat") if isinstance(start.get("mediaFormat"), dict) else {}
        content_type = str(media_format.get("encoding", "audio/x-mulaw"))
        audio_format = audio_format_of(content_type, media_format.get("sampleRate", 8000))
        self.stream_id = stream_id
        self.audio_format = audio_format or MULAW_8K
        return StreamStarted(call_id, stream_id, str(start.get("accountId", "")), audio_format, content_type,
                             str(frame.get("extra_headers", "")))

    def play_audio(self, audio: bytes) -> str:
        audio_format = self.audio_format
        return json.dumps({"event": "playAudio", "media": {
            "contentType": CONTENT_TYPES[audio_format.encoding], "sampleRate": audio_format.sample_rate,
            "payload": base64.b64encode(audio).decode()}})

    def checkpoint(self, name: str) -> str:
        return json.dumps({"event": "checkpoint", "streamId": self.stream_id, "name": name})

    def clear_audio(self) -> str:
        return json.dumps({"event": "clearAudio", "streamId": self.stream_id})

    def send_dtmf(self, digits: str) -> str:
        return json.dumps({"event": "sendDTMF", "dtmf": digits})

    # --- Plivo's side: build its frames, parse the server's --------------------------------------------

    def _frame(self, event: str, **fields: Any) -> str:
        self._sequence += 1
        return json.dumps({"event": event, "sequenceNumber": self._sequence, **fields})

    def start(self, call_id: str, *, account_id: str = "MA00000000000000SIM0", extra_headers: str = "") -> str:
        audio_format = self.audio_format
        return self._frame("start", extra_headers=extra_headers, start={
            "callId": call_id, "streamId": self.stream_id, "accountId": account_id, "tracks": ["inbound"],
            "mediaFormat": {"encoding": CONTENT_TYPES[audio_format.encoding],
                            "sampleRate": audio_format.sample_rate}})

    def media(self, audio: bytes, *, chunk: int | None = None, timestamp_ms: int | None = None) -> str:
        media: dict[str, Any] = {"track": "inbound",
                                 "timestamp": str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms),
                                 "payload": base64.b64encode(audio).decode()}
        if chunk is not None:
            media["chunk"] = chunk
        return self._frame("media", streamId=self.stream_id, extra_headers="", media=media)

    def played(self, name: str) -> str:
        return self._frame("playedStream", streamId=self.stream_id, name=name)

    def cleared(self) -> str:
        return self._frame("clearedAudio", streamId=self.stream_id)

    def dtmf(self, digit: str, *, timestamp_ms: int | None = None) -> str:
        stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
        return self._frame("dtmf", streamId=self.stream_id, dtmf={"track": "inbound", "digit": digit,
                                                                   "timestamp": stamp})

    def stop(self, call_id: str, reason: str = "hangup") -> str:
        return self._frame("stop", streamId=self.stream_id,
                           stop={"callId": call_id, "streamId": self.stream_id, "reason": reason})

    @staticmethod
    def parse_from_server(text: str | bytes) -> ServerMessage:
        """A message the server sent on the stream; raises MalformedFrame."""
        frame = _object(text)
        event = frame.get("event")
        if event == "playAudio":
            media = frame.get("media") if isinstance(frame.get("media"), dict) else {}
            try:
                sample_rate = int(media.get("sampleRate") or 0)  # Plivo takes a number or a numeric string
            except (TypeError, ValueError):
                raise MalformedFrame("playAudio with a bad sampleRate") from None
            return PlayAudio(_decode_audio(media.get("payload")), str(media.get("contentType", "")), sample_rate)
        if event == "checkpoint":
            return CheckpointRequested(str(frame.get("name", "")), str(frame.get("streamId", "")))
        if event == "clearAudio":
            return ClearRequested(str(frame.get("streamId", "")))
        if event == "sendDTMF":
            return DtmfRequested(str(frame.get("dtmf", "")))
        raise MalformedFrame(f"unknown event {event!r}")
