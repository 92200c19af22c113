"""A protocol-accurate fake of Deepgram's live transcription WebSocket (`/v1/listen`) on 127.0.0.1.

    async with FakeDeepgram(["Hello there.", "Book a table for two."]) as fake:
        stt = DeepgramSTT(api_key=fake.api_key, websocket_url=fake.ws_url)
        ...
        fake.streams[0].query["model"], fake.streams[0].text_messages

Speech is found in the audio actually received, in the format the query declares (`encoding` mulaw or
linear16, `sample_rate`; Deepgram's raw-audio parameters): a 20 ms frame whose energy is above `speech_rms` is
speech. Each burst of speech consumes the next scripted transcript (an empty one when the script is used up),
so two bursts give two transcripts, in order. While a burst lasts: SpeechStarted (with `vad_events`), then
interim Results revealing more words as speech goes on (with `interim_results`): the first once `first_interim_ms`
of audio has passed since the speech began (Deepgram's come some hundreds of ms into live speech; by default after
`interim_every_ms` of speech), then one per `interim_every_ms` of speech. After `endpointing` ms of
silence (from the query; Deepgram's default is 10): the final Results with `is_final` and `speech_final`,
sent `final_delay_s` later (vendor processing time), and `utterance_end_ms` after the last word an UtteranceEnd.
Time is the audio clock (bytes received / bytes per second), so a client that streams in real time sees real
delays. A query without a supported encoding and rate is refused (400), as Deepgram refuses raw audio it cannot
decode.

Text messages: KeepAlive (recorded, no reply), Finalize (a final of the current burst, `from_finalize`),
CloseStream (final, Metadata, close 1000), Configure (ConfigureSuccess); anything else gets an Error.
Faults: `drop_after_s` closes the next stream (once) with 1011 after that long; `await fake.drop()` closes every open
stream with 1011 now; `idle_timeout_s` without audio or text closes with 1011 as Deepgram does (NET-0001).
"""
from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes.loopback import WebSocketLoopbackServer

DEFAULT_API_KEY = "test-key"
FRAME_BYTES = 160  # 20 ms of mu-law at 8 kHz
FRAME_S = 0.02
ENCODINGS = {"mulaw": 1, "linear16": 2}  # bytes a sample
SAMPLE_RATES = {8000, 16000, 24000, 32000, 44100, 48000}
MODEL_INFO = {"name": "general-nova-3", "version": "2026-01-01.0", "arch": "nova-3"}
MODEL_UUID = "1dbdfb4d-85b2-4659-8a9b-9d9d7bd8d9b0"
NET_0001 = ("Deepgram did not receive audio data or a text message within the timeout window. "
            "See https://dpgr.am/net0001")


def speech(ms: int, frequency: float = 440.0) -> bytes:
    """`ms` of a loud tone as mu-law: what this fake hears as speech (G.711 encoding written out here)."""
    t = np.arange(8 * ms) / 8000
    samples = (8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), 32635) + 0x84
    exponent = np.floor(np.log2(np.maximum(magnitude >> 7, 1))).astype(np.int32)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def silence(ms: int) -> bytes:
    return b"\xff" * (8 * ms)


def speech_pcm16(ms: int, rate: int = 16000, frequency: float = 440.0) -> bytes:
    """`ms` of the same loud tone as 16-bit little-endian PCM at `rate` (a browser's audio)."""
    t = np.arange(rate * ms // 1000) / rate
    return (8000 * np.sin(2 * np.pi * frequency * t)).astype("<i2").tobytes()


def silence_pcm16(ms: int, rate: int = 16000) -> bytes:
    return bytes(2 * (rate * ms // 1000))


def _mulaw_squares() -> np.ndarray:
    """Squared sample value of every mu-law byte (G.711 decoding written out here, independent of the code
    under test)."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = ((((codes & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return magnitude.astype(np.float64) ** 2


_SQUARES = _mulaw_squares()


def _frame_energies(data: bytes, encoding: str = "mulaw", frame_bytes: int = FRAME_BYTES) -> np.ndarray:
    """RMS of each whole 20 ms frame of `data`, in one pass (the fake hears 50 frames a second a call)."""
    if encoding == "mulaw":
        squares = _SQUARES[np.frombuffer(data, dtype=np.uint8)].reshape(-1, frame_bytes)
    else:
        squares = np.frombuffer(data, dtype="<i2").astype(np.float64).reshape(-1, frame_bytes // 2) ** 2
    return np.sqrt(squares.mean(axis=1))


@dataclass
class RecordedStream:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    text_messages: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0
    close_code: int | None = None
    opened_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def message_types(self) -> list[str]:
        return [message.get("type", "?") for message in self.text_messages]

    def sent_types(self) -> list[str]:
        return [message["type"] for message in self.sent]


@dataclass
class _Burst:
    """The words being spoken now (not yet finalized)."""

    transcript: str
    start_s: float
    end_s: float
    speech_ms: int = 0
    last_interim_ms: int = 0
    interim: str | None = None  # what interim results show, when it differs from the final transcript

    @property
    def words(self) -> list[str]:
        return (self.transcript if self.interim is None else self.interim).split()


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "false").lower() == "true"


def _milliseconds(query: dict[str, str], name: str, default: int | None) -> int | None:
    value = query.get(name)
    if value is None:
        return default
    return None if value.lower() == "false" else int(value)


class _Listener:
    """One live stream: audio in, Results out (through an outbox that keeps order and applies delays)."""

    def __init__(self, fake: FakeDeepgram, connection: ServerConnection, record: RecordedStream) -> None:
        self.fake = fake
        self.connection = connection
        self.record = record
        query = record.query
        self.request_id = str(uuid.uuid4())
        self.interim = _flag(query, "interim_results")
        self.vad_events = _flag(query, "vad_events")
        self.endpointing_ms = _milliseconds(query, "endpointing", 10)
        self.utterance_end_ms = _milliseconds(query, "utterance_end_ms", None)
        self.encoding = query.get("encoding", "mulaw")
        self.frame_bytes = int(query.get("sample_rate", 8000)) * ENCODINGS[self.encoding] // 50
        self.audio_s = 0.0
        self.partial = b""
        self.burst: _Burst | None = None
        self.silence_ms = 0
        self.last_word_end: float | None = None
        self.outbox: asyncio.Queue[tuple[float, dict[str, Any] | None]] = asyncio.Queue()  # None: close

    # Audio.

    def on_audio(self, data: bytes) -> None:
        self.record.audio_bytes += len(data)
        data = self.partial + data
        whole = len(data) - len(data) % self.frame_bytes
        self.partial = data[whole:]
        for energy in _frame_energies(data[:whole], self.encoding, self.frame_bytes).tolist() if whole else ():
            self.on_frame(energy)

    def on_frame(self, energy: float) -> None:
        started = self.audio_s
        self.audio_s += FRAME_S
        if energy >= self.fake.speech_rms:
            self.on_speech(started)
        elif self.burst is not None:
            self.silence_ms += 20
            if self.endpointing_ms is not None and self.silence_ms >= self.endpointing_ms:
                self.finalize_burst(speech_final=True)
        elif (self.last_word_end is not None and self.utterance_end_ms is not None
              and (self.audio_s - self.last_word_end) * 1000 >= self.utterance_end_ms):
            self.emit({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.last_word_end, 3)})
            self.last_word_end = None

    def on_speech(self, frame_start: float) -> None:
        if self.burst is None:
            script = self.fake.next_transcript()
            # (interim, final): interim results show words the final then revises away, as on a noisy line.
            interim, final = script if isinstance(script, tuple) else (None, script)
            self.burst = _Burst(final, frame_start, frame_start, interim=interim)
            self.last_word_end = None
            if self.vad_events:
                self.emit({"type": "SpeechStarted", "channel": [0], "timestamp": round(frame_start, 3)})
        burst = self.burst
        burst.speech_ms += 20
        burst.end_s = self.audio_s
        self.silence_ms = 0
        if self.interim and self._interim_due(burst):
            burst.last_interim_ms = burst.speech_ms
            revealed = min(len(burst.words), 1 + burst.speech_ms // self.fake.ms_per_word)
            self.emit(self.results(burst, " ".join(burst.words[:revealed]), is_final=False))

    def _interim_due(self, burst: _Burst) -> bool:
        first = self.fake.first_interim_ms
        if burst.last_interim_ms == 0 and first is not None:
            return (self.audio_s - burst.start_s) * 1000 >= first
        return burst.speech_ms - burst.last_interim_ms >= self.fake.interim_every_ms

    def finalize_burst(self, *, speech_final: bool, from_finalize: bool = False) -> None:
        burst, self.burst, self.silence_ms = self.burst, None, 0
        if burst is None:
            if from_finalize:
                self.emit(self.empty_results(from_finalize=True))
            return
        self.last_word_end = burst.end_s
        self.emit(self.results(burst, burst.transcript, is_final=True, speech_final=speech_final,
                               from_finalize=from_finalize), delay_s=self.fake.final_delay_s)

    # Messages.

    def results(self, burst: _Burst, transcript: str, *, is_final: bool, speech_final: bool = False,
                from_finalize: bool = False) -> dict[str, Any]:
        words = transcript.split()
        span = (burst.end_s - burst.start_s) / max(len(burst.words), 1)
        word_items = [{"word": word.strip(".,!?;:").lower(), "start": round(burst.start_s + i * span, 3),
                       "end": round(burst.start_s + (i + 1) * span, 3), "confidence": 0.97,
                       "punctuated_word": word} for i, word in enumerate(words)]
        return {"type": "Results", "channel_index": [0, 1], "duration": round(burst.end_s - burst.start_s, 3),
                "start": round(burst.start_s, 3), "is_final": is_final, "speech_final": speech_final,
                "from_finalize": from_finalize,
                "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.97 if words else 0.0,
                                              "words": word_items}]},
                "metadata": {"request_id": self.request_id, "model_info": MODEL_INFO, "model_uuid": MODEL_UUID}}

    def empty_results(self, *, from_finalize: bool) -> dict[str, Any]:
        empty = _Burst("", self.audio_s, self.audio_s)
        return self.results(empty, "", is_final=True, from_finalize=from_finalize)

    def metadata(self) -> dict[str, Any]:
        return {"type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
                "sha256": "0" * 64, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "duration": round(self.audio_s, 3), "channels": 1, "models": [MODEL_UUID],
                "model_info": {MODEL_UUID: MODEL_INFO}}

    def emit(self, message: dict[str, Any] | None, delay_s: float = 0.0) -> None:
        # On the loop's clock, as the client's, so that delays hold on a virtual-time loop (tests/virtual_time.py).
        self.outbox.put_nowait((asyncio.get_running_loop().time() + delay_s, message))

    async def send_outbox(self) -> None:
        """Messages in order (a delayed one holds back those after it, as a real stream would); None closes."""
        try:
            while True:
                due, message = await self.outbox.get()
                if (wait := due - asyncio.get_running_loop().time()) > 0:
                    await asyncio.sleep(wait)
                if message is None:
                    await self.connection.close(1000)
                    return
                self.record.sent.append(message)
                await self.connection.send(json.dumps(message))
        except ConnectionClosed:
            pass  # the client went away first

    # Text messages.

    def on_text(self, raw: str) -> bool:
        """Handle a client text message; False when the stream is over."""
        try:
            message = json.loads(raw)
        except ValueError:
            message = {"type": None, "raw": raw}
        self.record.text_messages.append(message)
        kind = message.get("type")
        if kind == "KeepAlive":
            return True
        if kind == "Finalize":
            self.finalize_burst(speech_final=False, from_finalize=True)
            return True
        if kind == "CloseStream":
            self.finalize_burst(speech_final=True)
            self.emit(self.metadata())
            self.emit(None)
            return False
        if kind == "Configure":
            self.emit({"type": "ConfigureSuccess", "request_id": self.request_id})
            return True
        self.emit({"type": "Error", "variant": "SchemaError", "description": "Unknown message type.",
                   "message": raw})
        return True


class FakeDeepgram(WebSocketLoopbackServer):
    def __init__(self, transcripts: list[str] | tuple[str, ...] = (), *, api_key: str = DEFAULT_API_KEY,
                 final_delay_s: float = 0.0, speech_rms: float = 500.0, interim_every_ms: int = 100,
                 first_interim_ms: int | None = None, ms_per_word: int = 150, idle_timeout_s: float = 10.0,
                 drop_after_s: float | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.final_delay_s = final_delay_s
        self.speech_rms = speech_rms
        self.interim_every_ms = interim_every_ms
        self.first_interim_ms = first_interim_ms
        self.ms_per_word = ms_per_word
        self.idle_timeout_s = idle_timeout_s
        self.drop_after_s = drop_after_s
        self.streams: list[RecordedStream] = []
        self.rejected: list[tuple[str, int]] = []
        self._script: deque[str] = deque(transcripts)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def script(self, *transcripts: str) -> None:
        self._script.extend(transcripts)

    def next_transcript(self) -> str | tuple[str, str]:
        return self._script.popleft() if self._script else ""

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path != "/v1/listen":
            self.rejected.append((request.path, 404))
            return connection.respond(404, "Not Found\n")
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            self.rejected.append((request.path, 401))
            return connection.respond(401, "Invalid credentials.\n")
        query = dict(parse_qsl(urlsplit(request.path).query))
        encoding, rate = query.get("encoding"), query.get("sample_rate", "")
        if encoding is not None and (encoding not in ENCODINGS or not rate.isdigit() or int(rate) not in SAMPLE_RATES):
            self.rejected.append((request.path, 400))
            return connection.respond(400, "Unsupported encoding or sample_rate.\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        record = RecordedStream(*self._handshake(connection))
        self.streams.append(record)
        self._open.add(connection)
        listener = _Listener(self, connection, record)
        sender = asyncio.create_task(listener.send_outbox())
        drop_after_s, self.drop_after_s = self.drop_after_s, None
        dropper = asyncio.create_task(self._drop_later(connection, drop_after_s)) if drop_after_s is not None else None
        try:
            while True:
                try:
                    message = await asyncio.wait_for(connection.recv(), self.idle_timeout_s)
                except TimeoutError:
                    await connection.close(1011, NET_0001)
                    break
                if isinstance(message, bytes):
                    listener.on_audio(message)
                elif not listener.on_text(message):
                    await asyncio.wait([sender], timeout=2)  # the last results, Metadata, then the close
                    break
        except ConnectionClosed:
            pass
        finally:
            self._open.discard(connection)
            for task in (sender, dropper):
                if task is not None:
                    task.cancel()
            await asyncio.gather(sender, *(t for t in (dropper,) if t is not None), return_exceptions=True)
            record.close_code = connection.close_code

    async def _drop_later(self, connection: ServerConnection, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await connection.close(1011, "Internal server error")
