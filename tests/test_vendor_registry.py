"""The vendor registry: which providers exist, what they need, what they accept, what they build; and the
start-up check of the server's own vendor settings."""
from __future__ import annotations

import importlib.util

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from voicebots.providers.anthropic_llm import AnthropicLLM
from voicebots.providers.cartesia_tts import CartesiaTTS
from voicebots.providers.deepgram_tts import DeepgramAuraTTS
from voicebots.providers.openai_llm import OpenAICompatibleLLM
from voicebots.vendors import registry
from voicebots.vendors.checks import configuration_problems
from voicebots.vendors.choices import InvalidOption
from voicebots.vendors.registry import EMBEDDINGS, LLM, STT, TTS
from voicebots.voice.audio import MULAW_8K

LOCAL_SERVER = "http://127.0.0.1:11434/v1"


@pytest.fixture
def all_keys(settings):
    settings.ANTHROPIC_API_KEY = settings.DEEPGRAM_API_KEY = settings.CARTESIA_API_KEY = "key"
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = LOCAL_SERVER
    settings.EMBEDDING_PROVIDER = "minilm"
    return settings


def codes(settings_problems) -> list[str]:
    return [problem.code for problem in settings_problems]


def test_every_kind_has_its_providers_and_names_resolve_through_aliases():
    assert registry.names(LLM) == ("anthropic", "openai")
    assert registry.names(STT) == ("deepgram",)
    assert registry.names(TTS) == ("cartesia", "deepgram")
    assert registry.names(EMBEDDINGS) == ("minilm", "openai")
    assert registry.get(LLM, "openapi").name == registry.get(LLM, " OpenAI ").name == "openai"
    assert registry.get(EMBEDDINGS, "local").name == "minilm"
    with pytest.raises(registry.UnknownProvider) as caught:
        registry.get(TTS, "elevenlabs")
    assert caught.value.message == '"elevenlabs" is not a supported text-to-speech provider; supported: cartesia, deepgram.'


def test_validation_cleans_up_choices_and_names_what_is_accepted(settings):
    settings.OPENAI_MODEL = "qwen2.5:7b"
    assert registry.validate(LLM, "anthropic", "claude 3.5 Sonnet") == ("anthropic", "claude-sonnet-5-5")
    assert registry.validate(LLM, "openapi", " mistralai/Mistral-7B-Instruct-v0.3 ") == (
        "openai", "mistralai/Mistral-7B-Instruct-v0.3")
    assert registry.validate(LLM, "openai") == ("openai", "qwen2.5:7b")
    assert registry.validate(TTS, "deepgram", "Aura-2-Luna-en") == ("deepgram", "aura-2-luna-en")
    assert registry.validate(STT, "deepgram") == ("deepgram", "en")
    for kind, name, option, fragment in [(LLM, "anthropic", "gpt-4o", "claude-haiku-5-5"),
                                         (LLM, "openai", "two words", "model id"),
                                         (TTS, "cartesia", None, "required"),
                                         (TTS, "cartesia", "a voice?", "Cartesia voice"),
                                         (STT, "deepgram", "klingon", "supported")]:
        with pytest.raises(InvalidOption) as caught:
            registry.validate(kind, name, option)
        assert fragment in caught.value.message


def test_an_openai_compatible_server_needs_a_key_only_on_openai_itself(settings):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = LOCAL_SERVER
    assert registry.missing_settings(LLM, "openai") == []
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    assert registry.missing_settings(LLM, "openai") == ["OPENAI_API_KEY"]
    with pytest.raises(registry.MissingProviderKey) as caught:
        registry.language_model("openai")
    assert caught.value.message == "OPENAI_API_KEY is not configured on this server, so the bot cannot answer."


async def test_language_models_are_built_once_per_loop_and_settings(all_keys):
    first = registry.language_model("openai")
    assert isinstance(first, OpenAICompatibleLLM) and registry.language_model("openapi") is first
    assert isinstance(registry.language_model("anthropic"), AnthropicLLM)
    all_keys.OPENAI_BASE_URL = "http://127.0.0.1:8080/v1"
    assert registry.language_model("openai") is not first


async def test_a_failing_voice_falls_back_only_to_a_configured_vendor(all_keys):
    assert registry.text_to_speech("deepgram", "luna", "en", MULAW_8K).voice_id == "luna"
    fallback = registry.fallback_text_to_speech("deepgram", "en", MULAW_8K)
    assert isinstance(fallback, CartesiaTTS)
    assert isinstance(registry.fallback_text_to_speech("cartesia", "en", MULAW_8K), DeepgramAuraTTS)
    all_keys.DEEPGRAM_API_KEY = ""
    assert registry.fallback_text_to_speech("cartesia", "en", MULAW_8K) is None


def test_a_web_process_loads_the_adapters_of_the_usable_providers_only(all_keys):
    assert registry.usable_adapters() == ["voicebots.providers.anthropic_llm", "voicebots.providers.openai_llm",
                                          "voicebots.providers.deepgram_stt", "voicebots.providers.cartesia_tts",
                                          "voicebots.providers.deepgram_tts"]
    all_keys.ANTHROPIC_API_KEY = all_keys.CARTESIA_API_KEY = ""
    all_keys.OPENAI_BASE_URL = "https://api.openai.com/v1"  # which needs the key that is not set
    assert registry.usable_adapters() == ["voicebots.providers.deepgram_stt", "voicebots.providers.deepgram_tts"]
    for providers in registry.PROVIDERS.values():  # each named adapter is a module that exists
        for provider in providers:
            assert not provider.adapter or importlib.util.find_spec(provider.adapter), provider.adapter


def test_a_configured_server_has_no_problems(all_keys):
    assert configuration_problems() == []
    call_command("check")  # and starts


def test_start_up_check_names_bad_settings(all_keys):
    all_keys.OPENAI_BASE_URL = "localhost:11434"
    all_keys.CARTESIA_BASE_URL = "https://api.cartesia.ai?x=1"
    all_keys.EMBEDDING_PROVIDER = "word2vec"
    all_keys.OPENAI_MODEL = "no spaces please"

    problems = configuration_problems()

    assert codes(problems) == ["E001", "E001", "E002", "E004"]
    assert problems[0].message == "CARTESIA_BASE_URL is not a valid base URL: 'https://api.cartesia.ai?x=1'."
    assert "supported: minilm, openai" in problems[2].message
    with pytest.raises(SystemCheckError, match="OPENAI_BASE_URL is not a valid base URL"):
        call_command("check")


def test_start_up_check_of_openai_embeddings(all_keys):
    all_keys.EMBEDDING_PROVIDER = "openai"
    all_keys.OPENAI_BASE_URL = "https://api.openai.com/v1"
    all_keys.EMBEDDING_BASE_URL = ""
    assert codes(configuration_problems()) == ["E003"]  # no key for the embeddings

    all_keys.OPENAI_API_KEY = "key"
    all_keys.EMBEDDING_MODEL = "text-embedding-ada-002"
    problems = configuration_problems()
    assert codes(problems) == ["E006"] and "cannot shorten them" in problems[0].message

    all_keys.EMBEDDING_MODEL = "text-embedding-3-small"
    all_keys.EMBEDDING_SEND_DIMENSIONS = False
    assert "EMBEDDING_SEND_DIMENSIONS=true" in configuration_problems()[0].message

    all_keys.EMBEDDING_SEND_DIMENSIONS = True
    all_keys.EMBEDDING_BATCH_SIZE = 0
    assert codes(configuration_problems()) == ["E007"]


def test_missing_keys_of_the_default_providers_are_warnings_not_errors(all_keys):
    all_keys.ANTHROPIC_API_KEY = all_keys.DEEPGRAM_API_KEY = ""

    problems = configuration_problems()

    assert codes(problems) == ["W001", "W001"]
    assert problems[0].message.startswith("ANTHROPIC_API_KEY is not set: bots use Anthropic (LLM)")
    call_command("check")  # warnings do not stop the server
