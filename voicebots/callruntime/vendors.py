"""The speech vendors of a call, built from a bot's settings and the server's keys, in the transport's formats."""
from __future__ import annotations

import asyncio
import weakref

import httpx
from django.conf import settings

from voicebots.core.tls import CLIENT_CONTEXT
from voicebots.providers.cartesia_tts import CartesiaTTS
from voicebots.providers.deepgram_stt import DeepgramSTT
from voicebots.providers.deepgram_tts import DeepgramAuraTTS
from voicebots.voice.audio import AudioFormat

# Used when the bot's own voice fails and the other vendor takes over.
FALLBACK_AURA_VOICE = "asteria"
FALLBACK_CARTESIA_VOICE = "f786b574-daa5-4673-aa0c-cbe3e8534c02"


# One HTTP client per event loop, shared by every call's vendor clients: each call building its own would
# stall every other call at its start.
_http_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_http_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    if loop not in _http_clients:
        _http_clients[loop] = httpx.AsyncClient(verify=CLIENT_CONTEXT, timeout=httpx.Timeout(10.0, connect=3.0),
                                                limits=httpx.Limits(max_keepalive_connections=100))
    return _http_clients[loop]


def _websocket_base(http_url: str) -> str:
    return "wss" + http_url[5:] if http_url.startswith("https") else "ws" + http_url[4:]


def missing_keys(bot) -> list[str]:
    """Keys a live call with this bot needs that are not configured."""
    needed = ["ANTHROPIC_API_KEY", "DEEPGRAM_API_KEY"]
    needed.append("CARTESIA_API_KEY" if bot.tts_provider == "cartesia" else "DEEPGRAM_API_KEY")
    return sorted({name for name in needed if not getattr(settings, name)})


def speech_to_text(bot, audio_format: AudioFormat) -> DeepgramSTT:
    """Transcription of the caller's audio, as the transport delivers it."""
    return DeepgramSTT(settings.DEEPGRAM_API_KEY, language=bot.stt_language,
                       websocket_url=_websocket_base(settings.DEEPGRAM_BASE_URL),
                       endpointing_ms=settings.STT_ENDPOINTING_MS, audio_format=audio_format)


def _cartesia(voice: str, language: str, audio_format: AudioFormat) -> CartesiaTTS:
    return CartesiaTTS(settings.CARTESIA_API_KEY, voice, language=language, base_url=settings.CARTESIA_BASE_URL,
                       websocket_base_url=_websocket_base(settings.CARTESIA_BASE_URL), http_client=shared_http_client(),
                       audio_format=audio_format)


def _aura(voice: str, audio_format: AudioFormat) -> DeepgramAuraTTS:
    return DeepgramAuraTTS(settings.DEEPGRAM_API_KEY, voice, base_url=settings.DEEPGRAM_BASE_URL,
                           http_client=shared_http_client(), audio_format=audio_format)


def voice(bot, audio_format: AudioFormat):
    """The bot's voice, speaking in `audio_format` (what the transport plays)."""
    if bot.tts_provider == "deepgram":
        return _aura(bot.tts_voice, audio_format)
    return _cartesia(bot.tts_voice, bot.stt_language, audio_format)


def fallback_voice(bot, audio_format: AudioFormat):
    """The other vendor's voice, when its key is configured: a failed voice never means silence."""
    if bot.tts_provider == "deepgram" and settings.CARTESIA_API_KEY:
        return _cartesia(FALLBACK_CARTESIA_VOICE, bot.stt_language, audio_format)
    if bot.tts_provider == "cartesia" and settings.DEEPGRAM_API_KEY:
        return _aura(FALLBACK_AURA_VOICE, audio_format)
    return None
