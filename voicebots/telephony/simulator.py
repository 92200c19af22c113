"""A caller that speaks Plivo's audio-stream protocol to a running server, as Plivo does.

It sends `start`, then a 20 ms `media` frame every 20 ms (silence, or the caller's recording), plays the
bot's `playAudio` in real time on its own playback clock, answers `checkpoint` with `playedStream` once
playback reaches it and `clearAudio` with `clearedAudio`, sends DTMF, and records what the bot said.

The caller itself (`CallerSimulator`: when to talk, the loudspeaker, the latencies it measures) does not depend
on the protocol; `PlivoCallSimulator` speaks Plivo's, `voicebots.web.voice_simulator` a browser's.
Users test bots with it (`manage.py simulate_call`); benchmarks drive load with it. No Django here.
"""
from __future__ import annotations

import asyncio
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import websockets

from voicebots.voice.audio import MULAW_8K, SAMPLE_RATE, AudioFormat, mulaw_to_pcm16, resample

from .codec import CheckpointRequested, ClearRequested, MalformedFrame, PlayAudio, PlivoStreamCodec

FRAME_S = 0.02
SPEECH_RMS = 300.0  # frames louder than this count as caller speech
SPEECH_END_GAP_S = 0.3  # this much quiet after speech ends an utterance
GREETING_DONE_AFTER_S = 0.5  # quiet after the greeting before the caller talks (segments may come apart)


def load_wav_as_mulaw(path: str | Path) -> bytes:
    """A WAV file (PCM 8/16-bit, any rate, mono or stereo) as 8 kHz mu-law."""
    return load_wav(path, MULAW_8K)


def load_wav(path: str | Path, audio_format: AudioFormat) -> bytes:
    """A WAV file (PCM 8/16-bit, any rate, mono or stereo) in `audio_format`."""
    with wave.open(str(path), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    elif width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128) * 256
    else:
        raise ValueError(f"{path}: {width * 8}-bit samples are not supported; use 16-bit PCM.")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return audio_format.from_pcm16(resample(samples, rate, audio_format.sample_rate))


def write_mulaw_wav(path: str | Path, audio: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(mulaw_to_pcm16(audio).astype("<i2").tobytes())


def speech_ends(audio: bytes, audio_format: AudioFormat = MULAW_8K) -> list[float]:
    """Offsets (s) in `audio` where an utterance ends: the last loud frame before a long enough pause."""
    ends, last_loud, in_speech = [], None, False
    frame = audio_format.frame_bytes
    for index in range(0, len(audio) // frame):
        loud = audio_format.rms(audio[index * frame:(index + 1) * frame]) > SPEECH_RMS
        at = (index + 1) * FRAME_S
        if loud:
            last_loud, in_speech = at, True
        elif in_speech and at - last_loud >= SPEECH_END_GAP_S:
            ends.append(last_loud)
            in_speech = False
    if in_speech:
        ends.append(last_loud)
    return ends


@dataclass
class CallerTurnLatency:
    speech_end_s: float  # on the call clock (seconds since `start` was sent)
    first_audio_s: float | None  # first playAudio received after it

    @property
    def latency_ms(self) -> float | None:
        return None if self.first_audio_s is None else (self.first_audio_s - self.speech_end_s) * 1000


@dataclass
class SimulationResult:
    call_id: str
    stream_id: str
    greeting_first_audio_ms: float | None = None
    turns: list[CallerTurnLatency] = field(default_factory=list)
    bot_audio: bytes = b""
    checkpoints_acked: list[str] = field(default_factory=list)
    clears: int = 0
    events_received: dict[str, int] = field(default_factory=dict)
    late_media_frames: int = 0  # our own media frames sent more than one frame late (a loaded simulator)
    playback_underruns: int = 0  # the bot's audio ran dry in the middle of a segment: an audible gap
    closed_by_server: bool = False


class Playback:
    """The caller's loudspeaker: received audio plays in real time; checkpoints are acked when reached."""

    def __init__(self, clock, audio_format: AudioFormat = MULAW_8K) -> None:
        self.clock = clock
        self.format = audio_format
        self.rate = audio_format.bytes_per_second
        self.ends_at = 0.0  # call-clock time when everything received so far has played
        self.pending: list[tuple[float, str]] = []  # (play time, checkpoint name)
        self.recording = bytearray()
        self.record_from = 0.0
        self.segment_open = False  # audio received since the last checkpoint
        self.underruns = 0
        self.last_received = 0.0

    def add(self, audio: bytes) -> None:
        now = self.clock()
        self.last_received = now
        if self.segment_open and self.ends_at < now - FRAME_S:
            self.underruns += 1
        self.segment_open = True
        if self.ends_at < now:  # the loudspeaker was idle: silence in the recording until now
            gap_ms = int((now - max(self.ends_at, self.record_from)) * 1000)
            self.recording.extend(self.format.silence(max(gap_ms, 0)))
            self.ends_at = now
        self.recording.extend(audio)
        self.ends_at += len(audio) / self.rate

    def checkpoint(self, name: str) -> None:
        self.pending.append((max(self.ends_at, self.clock()), name))
        self.segment_open = False

    def due_checkpoints(self) -> list[str]:
        now = self.clock()
        due = [name for at, name in self.pending if at <= now]
        self.pending = [(at, name) for at, name in self.pending if at > now]
        return due

    def clear(self) -> None:
        """Stop playing: what was queued is dropped and its checkpoints never fire."""
        now = self.clock()
        if self.ends_at > now:
            unplayed = int((self.ends_at - now) * self.rate) // self.format.sample_bytes * self.format.sample_bytes
            del self.recording[len(self.recording) - unplayed:]
        self.ends_at = min(self.ends_at, now)
        self.pending.clear()
        self.segment_open = False

    @property
    def idle(self) -> bool:
        return self.ends_at <= self.clock() and not self.pending


class CallerSimulator:
    """One simulated caller on a call's socket at `socket_url`; subclasses speak the socket's protocol."""

    audio_format = MULAW_8K  # of the caller's audio and the bot's

    def __init__(self, socket_url: str, *, caller_audio: bytes = b"", dtmf: list[tuple[float, str]] = (),
                 call_id: str | None = None, start_after_greeting: bool = True, greeting_timeout_s: float = 2.0,
                 linger_s: float = 2.0, max_duration_s: float = 120.0) -> None:
        self.socket_url = socket_url
        self.caller_audio = caller_audio
        self.dtmf = sorted(dtmf)
        self.call_id = call_id or str(uuid.uuid4())
        self.stream_id = ""
        self.start_after_greeting = start_after_greeting
        self.greeting_timeout_s = greeting_timeout_s
        self.linger_s = linger_s
        self.max_duration_s = max_duration_s

    # --- The protocol (subclasses) -----------------------------------------------------------------

    def _connect(self):
        return websockets.connect(self.socket_url, max_size=2**22, open_timeout=10)

    def _codec(self):
        """The caller's side of the protocol: `media(frame, chunk=, timestamp_ms=)`, `played(name)`, `cleared()`,
        `dtmf(digit, timestamp_ms=)`, each the message to send."""
        raise NotImplementedError

    async def _begin(self, socket, codec) -> None:
        """Start the call on the open socket."""
        raise NotImplementedError

    async def _hang_up(self, socket, codec) -> None:
        raise NotImplementedError

    def _interpret(self, codec, message) -> tuple[str, bytes | str | None]:
        """("audio", bytes), ("checkpoint", name), ("clear", None) or (another kind, None) for a server message."""
        raise NotImplementedError

    # --- The caller --------------------------------------------------------------------------------

    async def run(self) -> SimulationResult:
        result = SimulationResult(self.call_id, self.stream_id)
        started = time.monotonic()
        clock = lambda: time.monotonic() - started  # noqa: E731
        playback = Playback(clock, self.audio_format)
        speech_end_offsets = speech_ends(self.caller_audio, self.audio_format)
        state = {"speak_from": None}
        codec = self._codec()

        async with self._connect() as socket:
            await self._begin(socket, codec)
            started = time.monotonic()
            result.call_id, result.stream_id = self.call_id, self.stream_id
            reader = asyncio.create_task(self._read(socket, codec, playback, result, clock))
            try:
                await self._speak(socket, codec, playback, result, clock, state, speech_end_offsets, reader)
                await self._hang_up(socket, codec)
            except websockets.ConnectionClosed:
                result.closed_by_server = True
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        result.bot_audio = bytes(playback.recording)
        result.playback_underruns = playback.underruns
        return result

    async def _speak(self, socket, codec, playback, result, clock, state, speech_end_offsets, reader) -> None:
        """Send a media frame every 20 ms: silence, then the caller's audio once the greeting has played."""
        frame_index, audio_pos, dtmf = 0, 0, list(self.dtmf)
        frame_bytes, quiet = self.audio_format.frame_bytes, self.audio_format.silence(20)
        speaking_done_at = None
        while not reader.done():
            due = frame_index * FRAME_S
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -FRAME_S:
                result.late_media_frames += 1
            now = clock()
            if state["speak_from"] is None and self._ready_to_speak(playback, result, now):
                state["speak_from"] = now
                result.turns = [CallerTurnLatency(now + end, None) for end in speech_end_offsets]
            frame = quiet
            if state["speak_from"] is not None and audio_pos < len(self.caller_audio):
                frame = self.audio_format.pad_to_frame(self.caller_audio[audio_pos:audio_pos + frame_bytes])
                audio_pos += frame_bytes
                if audio_pos >= len(self.caller_audio):
                    speaking_done_at = now
            elif state["speak_from"] is not None and speaking_done_at is None:
                speaking_done_at = now  # nothing to say
            await socket.send(codec.media(frame, chunk=frame_index, timestamp_ms=int(now * 1000)))
            while dtmf and dtmf[0][0] <= now:
                await socket.send(codec.dtmf(dtmf.pop(0)[1], timestamp_ms=int(now * 1000)))
            for name in playback.due_checkpoints():
                result.checkpoints_acked.append(name)
                await socket.send(codec.played(name))
            if speaking_done_at is not None and self._finished(playback, result, now, speaking_done_at):
                return
            if now > self.max_duration_s:
                return
            frame_index += 1

    def _ready_to_speak(self, playback, result, now) -> bool:
        """Like a person: listen to the greeting to the end (or speak if none comes), then talk."""
        if not self.start_after_greeting:
            return True
        if result.greeting_first_audio_ms is None:
            return now >= self.greeting_timeout_s
        return playback.idle and now - max(playback.last_received, playback.ends_at) >= GREETING_DONE_AFTER_S

    def _finished(self, playback, result, now, speaking_done_at) -> bool:
        """Done when every utterance got its answer played out and the line stayed quiet for `linger_s`."""
        answered = all(turn.first_audio_s is not None for turn in result.turns)
        quiet_since = max(speaking_done_at, playback.ends_at)
        return playback.idle and now - quiet_since >= (self.linger_s if answered else self.linger_s * 4)

    async def _read(self, socket, codec, playback, result, clock) -> None:
        try:
            async for message in socket:
                kind, payload = self._interpret(codec, message)
                result.events_received[kind] = result.events_received.get(kind, 0) + 1
                if kind == "audio":
                    now = clock()
                    if result.greeting_first_audio_ms is None:
                        result.greeting_first_audio_ms = now * 1000
                    for turn in result.turns:
                        if turn.first_audio_s is None and turn.speech_end_s <= now:
                            turn.first_audio_s = now
                    playback.add(payload)
                elif kind == "checkpoint":
                    playback.checkpoint(payload)
                elif kind == "clear":
                    result.clears += 1
                    playback.clear()
                    await socket.send(codec.cleared())
        except websockets.ConnectionClosed:
            result.closed_by_server = True


class PlivoCallSimulator(CallerSimulator):
    """One simulated call over `socket_url` (the URL of the answer XML's <Stream>), speaking as Plivo."""

    def __init__(self, socket_url: str, *, account_id: str = "MA00000000000000SIM0", **options) -> None:
        super().__init__(socket_url, **options)
        self.account_id = account_id
        self.stream_id = str(uuid.uuid4())

    def _codec(self) -> PlivoStreamCodec:
        return PlivoStreamCodec(self.stream_id)

    async def _begin(self, socket, codec: PlivoStreamCodec) -> None:
        await socket.send(codec.start(self.call_id, account_id=self.account_id))

    async def _hang_up(self, socket, codec: PlivoStreamCodec) -> None:
        await socket.send(codec.stop(self.call_id))

    def _interpret(self, codec, message) -> tuple[str, bytes | str | None]:
        try:
            parsed = codec.parse_from_server(message)
        except MalformedFrame:
            return "malformed", None
        if isinstance(parsed, PlayAudio):
            return "audio", parsed.audio
        if isinstance(parsed, CheckpointRequested):
            return "checkpoint", parsed.name
        if isinstance(parsed, ClearRequested):
            return "clear", None
        return type(parsed).__name__, None
