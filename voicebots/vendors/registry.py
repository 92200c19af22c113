"""Every vendor the platform can use, in one table: language models, speech-to-text, text-to-speech and
embeddings. Each entry knows its name (and aliases), the settings it needs, what it accepts as a bot's
model, voice or language, and how to build its adapter (from `voicebots.providers`).

Adding a vendor is one entry in PROVIDERS (and its adapter). Everything else asks this module:
- the API validates a bot's choices with `validate` (an unknown provider is an UnknownProvider naming the
  supported ones; a bad model, voice or language an InvalidOption);
- chats and calls build adapters with `language_model`, `speech_to_text`, `text_to_speech`,
  `fallback_text_to_speech` and `embedder`, which raise MissingProviderKey naming the missing setting;
- `checks` reviews the server's own vendor settings at start-up.
Nothing is ever substituted silently: a bot whose provider is unknown gets an error, not another vendor.
"""
from __future__ import annotations

import asyncio
import importlib
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from django.conf import settings

from . import choices
from .choices import InvalidOption

LLM, STT, TTS, EMBEDDINGS = "llm", "stt", "tts", "embeddings"
KIND_TITLES = {LLM: "LLM", STT: "speech-to-text", TTS: "text-to-speech", EMBEDDINGS: "embedding"}
UNAVAILABLE_MEANS = {LLM: "the bot cannot answer", STT: "calls cannot be heard", TTS: "the bot cannot speak",
                     EMBEDDINGS: "documents cannot be embedded"}
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEYLESS_PLACEHOLDER = "none"  # what a local server without authentication is sent as its key


class ProviderUnavailable(Exception):
    """A provider cannot be used on this server; `message` is one sentence saying why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownProvider(ProviderUnavailable, ValueError):
    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f"\"{name}\" is not a supported {KIND_TITLES[kind]} provider; "
                         f"supported: {choices.one_of(names(kind))}.")


class MissingProviderKey(ProviderUnavailable):
    def __init__(self, setting: str, kind: str = LLM) -> None:
        self.setting = setting
        super().__init__(f"{setting} is not configured on this server, so {UNAVAILABLE_MEANS[kind]}.")


@dataclass(frozen=True)
class Provider:
    """One vendor of one kind.

    `option` cleans up a bot's model (LLM), language (STT) or voice (TTS), raising InvalidOption;
    `default_option` is used when a bot names none (None: the bot must name one). `fallback_option` is the
    voice a TTS provider speaks with when it stands in for another vendor's. `key_setting` names the
    setting holding its key ("" when it needs none); `key_required` says whether it is needed with the
    current settings (a local OpenAI-compatible server takes none). `adapter` is the module its builder
    imports, which a web process loads before it serves when the provider is usable (`load_adapters`).
    """

    kind: str
    name: str
    title: str
    build: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    key_setting: str = ""
    base_url_setting: str = ""
    option: Callable[[str], str] | None = None
    default_option: Callable[[], str] | None = None
    fallback_option: str = ""
    key_required: Callable[[], bool] = lambda: True
    adapter: str = ""

    def key(self) -> str:
        return getattr(settings, self.key_setting, "") if self.key_setting else ""

    def missing_settings(self) -> list[str]:
        return [self.key_setting] if self.key_setting and self.key_required() and not self.key() else []


# --- Builders ----------------------------------------------------------------------------------------------
# Adapters are imported by their builders, so that validating a bot (or running a command) loads no SDK; a web
# process imports those of the usable providers before it serves (`load_adapters`, from config/asgi.py), so
# that no chat's or call's first second is spent importing one, and no start-up second on a vendor that has no
# key here (Anthropic's SDK alone takes ~1.5 s of CPU to import).

_per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> {cache key: client}


def _loop_cached(key: tuple, build: Callable[[], Any]) -> Any:
    """One client per event loop and settings: its connection pool belongs to the loop that opened it, and
    each call building its own would stall the others at its start."""
    cache = _per_loop.setdefault(asyncio.get_running_loop(), {})
    if key not in cache:
        cache[key] = build()
    return cache[key]


def _websocket_base(http_url: str) -> str:
    return "wss" + http_url[5:] if http_url.startswith("https") else "ws" + http_url[4:]


def shared_http_client():
    import httpx

    from voicebots.core.tls import CLIENT_CONTEXT

    return _loop_cached(("httpx",), lambda: httpx.AsyncClient(
        verify=CLIENT_CONTEXT, timeout=httpx.Timeout(10.0, connect=3.0),
        limits=httpx.Limits(max_keepalive_connections=100)))


def _anthropic_llm(**options):
    from voicebots.providers.anthropic_llm import AnthropicLLM

    key, base_url = settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL
    if options:
        return AnthropicLLM(api_key=key, base_url=base_url, **options)
    return _loop_cached(("anthropic", key, base_url), lambda: AnthropicLLM(api_key=key, base_url=base_url))


def _openai_key_required() -> bool:
    """OpenAI itself needs a key; a self-hosted server (Ollama, llama.cpp, vLLM) usually takes none."""
    return urlsplit(settings.OPENAI_BASE_URL).hostname == urlsplit(OPENAI_DEFAULT_BASE_URL).hostname


def _openai_llm(**options):
    from voicebots.providers.openai_llm import OpenAICompatibleLLM

    key, base_url = settings.OPENAI_API_KEY or KEYLESS_PLACEHOLDER, settings.OPENAI_BASE_URL
    if options:
        return OpenAICompatibleLLM(api_key=key, base_url=base_url, **options)
    return _loop_cached(("openai", key, base_url), lambda: OpenAICompatibleLLM(api_key=key, base_url=base_url))


def _deepgram_stt(language: str, audio_format):
    from voicebots.providers.deepgram_stt import DeepgramSTT

    return DeepgramSTT(settings.DEEPGRAM_API_KEY, language=language,
                       websocket_url=_websocket_base(settings.DEEPGRAM_BASE_URL),
                       endpointing_ms=settings.STT_ENDPOINTING_MS, audio_format=audio_format)


def _cartesia_tts(voice: str, language: str, audio_format):
    from voicebots.providers.cartesia_tts import CartesiaTTS

    return CartesiaTTS(settings.CARTESIA_API_KEY, voice, language=language, base_url=settings.CARTESIA_BASE_URL,
                       websocket_base_url=_websocket_base(settings.CARTESIA_BASE_URL),
                       http_client=shared_http_client(), audio_format=audio_format)


def _aura_tts(voice: str, language: str, audio_format):
    from voicebots.providers.deepgram_tts import DeepgramAuraTTS

    return DeepgramAuraTTS(settings.DEEPGRAM_API_KEY, voice, base_url=settings.DEEPGRAM_BASE_URL,
                           http_client=shared_http_client(), audio_format=audio_format)


def _minilm_embedder():
    from voicebots.knowledge.embeddings import MiniLMEmbedder

    return MiniLMEmbedder(threads=settings.EMBEDDING_THREADS)


def _embedding_base_url() -> str:
    return settings.EMBEDDING_BASE_URL or settings.OPENAI_BASE_URL


def _embedding_key() -> str:
    return settings.EMBEDDING_API_KEY or settings.OPENAI_API_KEY


def _openai_embeddings_key_required() -> bool:
    """Needed for OpenAI itself, unless OPENAI_API_KEY already holds it."""
    official = urlsplit(_embedding_base_url()).hostname == urlsplit(OPENAI_DEFAULT_BASE_URL).hostname
    return official and not _embedding_key()


def _openai_embedder():
    from voicebots.knowledge.embeddings import wordpiece_token_counter
    from voicebots.knowledge.models import EMBEDDING_DIMENSION
    from voicebots.providers.openai_embeddings import OpenAIEmbedder

    return OpenAIEmbedder(
        api_key=_embedding_key() or KEYLESS_PLACEHOLDER, base_url=_embedding_base_url(),
        model=settings.EMBEDDING_MODEL, dimension=EMBEDDING_DIMENSION,
        send_dimensions=settings.EMBEDDING_SEND_DIMENSIONS, batch_size=settings.EMBEDDING_BATCH_SIZE,
        concurrency=settings.EMBEDDING_CONCURRENCY, timeout_s=settings.EMBEDDING_TIMEOUT_S,
        max_retries=settings.EMBEDDING_MAX_RETRIES,
        # Chunks are cut by the same token count whatever embeds them, so a change of provider keeps them.
        count_tokens=wordpiece_token_counter(),
    )


# --- The table -----------------------------------------------------------------------------------------

PROVIDERS: dict[str, tuple[Provider, ...]] = {
    LLM: (
        Provider(LLM, "anthropic", "Anthropic", _anthropic_llm, key_setting="ANTHROPIC_API_KEY",
                 base_url_setting="ANTHROPIC_BASE_URL", option=choices.canonical_anthropic_model,
                 default_option=lambda: choices.DEFAULT_ANTHROPIC_MODEL, adapter="voicebots.providers.anthropic_llm"),
        # `openapi` is how the original API spelled it.
        Provider(LLM, "openai", "OpenAI-compatible", _openai_llm, aliases=("openapi",), key_setting="OPENAI_API_KEY",
                 base_url_setting="OPENAI_BASE_URL", option=choices.canonical_model_id,
                 default_option=lambda: settings.OPENAI_MODEL, key_required=_openai_key_required,
                 adapter="voicebots.providers.openai_llm"),
    ),
    STT: (
        Provider(STT, "deepgram", "Deepgram", _deepgram_stt, key_setting="DEEPGRAM_API_KEY",
                 base_url_setting="DEEPGRAM_BASE_URL", option=choices.canonical_deepgram_language,
                 default_option=lambda: choices.DEFAULT_LANGUAGE, adapter="voicebots.providers.deepgram_stt"),
    ),
    TTS: (
        Provider(TTS, "cartesia", "Cartesia", _cartesia_tts, key_setting="CARTESIA_API_KEY",
                 base_url_setting="CARTESIA_BASE_URL", option=choices.canonical_cartesia_voice,
                 fallback_option=choices.DEFAULT_CARTESIA_VOICE, adapter="voicebots.providers.cartesia_tts"),
        Provider(TTS, "deepgram", "Deepgram Aura", _aura_tts, key_setting="DEEPGRAM_API_KEY",
                 base_url_setting="DEEPGRAM_BASE_URL", option=choices.canonical_aura_voice,
                 fallback_option=choices.FALLBACK_AURA_VOICE, adapter="voicebots.providers.deepgram_tts"),
    ),
    EMBEDDINGS: (
        Provider(EMBEDDINGS, "minilm", "local MiniLM", _minilm_embedder, aliases=("local",)),
        Provider(EMBEDDINGS, "openai", "OpenAI-compatible", _openai_embedder, key_setting="EMBEDDING_API_KEY",
                 base_url_setting="EMBEDDING_BASE_URL", key_required=_openai_embeddings_key_required),
    ),
}
DEFAULTS = {LLM: "anthropic", STT: "deepgram", TTS: "cartesia", EMBEDDINGS: "minilm"}


def usable_adapters() -> list[str]:
    """The adapter modules of the providers this server can use now (their key set, where they need one)."""
    return [provider.adapter for providers in PROVIDERS.values() for provider in providers
            if provider.adapter and not provider.missing_settings()]


def load_adapters() -> None:
    """Import the usable adapters now, so that no first call waits for its vendor SDK's import."""
    for module in usable_adapters():
        importlib.import_module(module)


def names(kind: str) -> tuple[str, ...]:
    return tuple(provider.name for provider in PROVIDERS[kind])


def get(kind: str, name: str) -> Provider:
    """The provider called `name` (or one of its aliases, any case); UnknownProvider otherwise."""
    wanted = str(name).strip().lower()
    for provider in PROVIDERS[kind]:
        if wanted == provider.name or wanted in provider.aliases:
            return provider
    raise UnknownProvider(kind, str(name))


def validate(kind: str, name: str, option: str | None = None) -> tuple[str, str]:
    """The canonical (provider, option) for a bot's choice; `option` None takes the provider's default.
    Raises UnknownProvider, or InvalidOption (also when an option is needed and none was given)."""
    provider = get(kind, name)
    if option is None:
        if provider.default_option is None:
            raise InvalidOption("This field is required.")
        return provider.name, provider.default_option()
    if not isinstance(option, str):
        raise InvalidOption("Not a valid string.")
    return provider.name, provider.option(option) if provider.option is not None else option


def require(kind: str, name: str) -> Provider:
    """The provider, if it can be used on this server now: UnknownProvider or MissingProviderKey otherwise."""
    provider = get(kind, name)
    if missing := provider.missing_settings():
        raise MissingProviderKey(missing[0], kind)
    return provider


def missing_settings(kind: str, name: str) -> list[str]:
    """Settings `name` needs that are not set (UnknownProvider if there is no such provider)."""
    return get(kind, name).missing_settings()


def language_model(name: str, **options):
    """The LLM adapter of provider `name`: the one shared by this event loop's conversations, or, with
    `options` (the adapter's timeouts and retries), a new one that its caller closes (`aclose`)."""
    return require(LLM, name).build(**options)


def speech_to_text(name: str, language: str, audio_format):
    """Transcription of audio in `audio_format` (a voicebots.voice.audio.AudioFormat)."""
    return require(STT, name).build(language, audio_format)


def text_to_speech(name: str, voice: str, language: str, audio_format):
    """A voice speaking in `audio_format`."""
    return require(TTS, name).build(voice, language, audio_format)


def fallback_text_to_speech(instead_of: str, language: str, audio_format):
    """Another vendor's voice for when `instead_of`'s fails, if one is configured: a failed voice never means
    silence, and never a vendor the server has no key for."""
    for provider in PROVIDERS[TTS]:
        if provider.name != instead_of and not provider.missing_settings():
            return provider.build(provider.fallback_option, language, audio_format)
    return None


_embedders: dict[tuple, Any] = {}
_embedders_lock = threading.Lock()


def embedder(name: str | None = None):
    """The process-wide embedder of `name` (default: the EMBEDDING_PROVIDER setting), built on first use."""
    provider = require(EMBEDDINGS, name or settings.EMBEDDING_PROVIDER)
    key = (provider.name, settings.EMBEDDING_MODEL, _embedding_base_url(), _embedding_key(),
           settings.EMBEDDING_SEND_DIMENSIONS, settings.EMBEDDING_BATCH_SIZE, settings.EMBEDDING_CONCURRENCY,
           settings.EMBEDDING_TIMEOUT_S, settings.EMBEDDING_MAX_RETRIES) if provider.name != "minilm" else ("minilm",)
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = provider.build()
        return _embedders[key]


def embedding_model_name() -> str:
    """The label of the chunks the configured provider embeds, without building it (UnknownProvider if none)."""
    provider = get(EMBEDDINGS, settings.EMBEDDING_PROVIDER)
    if provider.name == "minilm":
        from voicebots.knowledge.embeddings import MiniLMEmbedder

        return MiniLMEmbedder.name
    from voicebots.knowledge.models import EMBEDDING_DIMENSION
    from voicebots.providers.openai_embeddings import OpenAIEmbedder

    return OpenAIEmbedder.name_of(settings.EMBEDDING_MODEL, EMBEDDING_DIMENSION)
