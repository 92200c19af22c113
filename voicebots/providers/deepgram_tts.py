"""The call pipeline's TextToSpeech on Deepgram Aura, via deepgram-sdk's streaming REST endpoint `/v1/speak`.

Each segment is one streamed request (raw audio in the transport's format: mu-law at 8000 Hz for the phone,
linear16 at 16000 Hz for a browser; no container), so segment ends are exact and a barge-in just closes the
request. Aura's WebSocket would save the per-request round trip, but it marks
segment ends only through Flush, which Deepgram limits to 20 per minute: too few for a checkpoint per segment.
HTTP keep-alive reuses one connection across segments.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

import httpx
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment

from voicebots.voice.audio import MULAW_8K, AudioFormat
from voicebots.voice.ports import SegmentDone, SpeechAudio, SpeechEvent, TextToSpeechError

logger = logging.getLogger(__name__)

PRODUCTION = DeepgramClientEnvironment.PRODUCTION

# English Aura voices: Aura-2 where it exists, the first Aura for the rest.
AURA_2_VOICES = frozenset({"arcas", "asteria", "athena", "hera", "luna", "orion", "orpheus", "zeus"})
AURA_1_VOICES = frozenset({"angus", "arcas", "asteria", "athena", "helios", "hera", "luna", "orion", "orpheus",
                           "perseus", "stella", "zeus"})


def deepgram_environment(base_url: str | None = None) -> DeepgramClientEnvironment:
    """Deepgram's hosts, or another REST host (a self-hosted Deepgram, a test fake): the SDK reads no env var."""
    return DeepgramClientEnvironment(base=base_url or PRODUCTION.base, production=PRODUCTION.production,
                                     agent=PRODUCTION.agent, agent_rest=PRODUCTION.agent_rest)


def aura_model(voice: str) -> str:
    """The model name of an Aura voice: `asteria` -> `aura-2-asteria-en`, `angus` -> `aura-angus-en`;
    a full model name is kept as is."""
    name = voice.strip().lower()
    if name.startswith("aura-"):
        return name
    if name in AURA_2_VOICES:
        return f"aura-2-{name}-en"
    if name in AURA_1_VOICES:
        return f"aura-{name}-en"
    raise ValueError(f"Unknown Aura voice {voice!r}")


class DeepgramAuraTTS:
    def __init__(self, api_key: str, voice: str = "asteria", *, base_url: str | None = None,
                 timeout_s: float = 10.0, connect_timeout_s: float = 3.0,
                 http_client: httpx.AsyncClient | None = None, audio_format: AudioFormat = MULAW_8K) -> None:
        self.voice_id = voice
        self._format = audio_format
        self._model = aura_model(voice)
        self._owns_http = http_client is None  # a shared client is not ours to close
        self._http = http_client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        self._client = AsyncDeepgramClient(api_key=api_key, environment=deepgram_environment(base_url),
                                           httpx_client=self._http, max_retries=0)

    async def connect(self) -> None:
        pass  # plain HTTP: the connection opens with the first request and is kept alive

    def start_turn(self) -> AuraSpeechTurn:
        return AuraSpeechTurn(self)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """The audio of `text`, streamed as it is generated."""
        try:
            async for chunk in self._client.speak.v1.audio.generate(
                    text=text, model=self._model, encoding=self._format.encoding,
                    sample_rate=self._format.sample_rate, container="none"):
                if chunk:
                    yield chunk
        except ApiError as error:
            raise TextToSpeechError(f"Deepgram Aura refused the request (HTTP {error.status_code}): "
                                    f"{error.body}") from error
        except httpx.HTTPError as error:
            raise TextToSpeechError(f"Deepgram Aura could not be reached: {error!r}") from error


class AuraSpeechTurn:
    """Segments are spoken one request at a time, in order."""

    def __init__(self, owner: DeepgramAuraTTS) -> None:
        self._owner = owner
        self._segments: asyncio.Queue[str | None] = asyncio.Queue()
        self._cancelled = False

    async def push(self, segment: str) -> None:
        self._segments.put_nowait(segment)

    async def finish(self) -> None:
        self._segments.put_nowait(None)

    async def events(self) -> AsyncIterator[SpeechEvent]:
        index = 0
        while not self._cancelled and (segment := await self._segments.get()) is not None:
            if segment.strip():
                async for chunk in self._owner.synthesize(segment.strip()):
                    if self._cancelled:
                        return
                    yield SpeechAudio(chunk)
            yield SegmentDone(index)
            index += 1

    async def cancel(self) -> None:
        self._cancelled = True
        self._segments.put_nowait(None)  # wakes a reader waiting for text
