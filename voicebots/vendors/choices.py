"""What each vendor accepts as a bot's model, voice or language, and how a name is cleaned up.

Each `canonical_*` returns the value to store, or raises InvalidOption with a sentence naming what is
accepted. The registry attaches them to its providers; nothing else should call them directly.
"""
from __future__ import annotations

import re


class InvalidOption(ValueError):
    """A model, voice or language the provider does not accept; `message` says what it accepts."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def one_of(values) -> str:
    return ", ".join(values)


# --- Anthropic ---------------------------------------------------------------------------------------

# Current Anthropic model ids (as the SDK knows them at the pinned version).
ANTHROPIC_MODELS = (
    "claude-haiku-5-5",
    "claude-sonnet-5-5",
    "claude-opus-5-5",
    "claude-fable-5-2",
    "claude-mythos-5-2",
    "claude-sonnet-5",
    "claude-opus-5",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
)
DEFAULT_ANTHROPIC_MODEL = "claude-haiku-5-5"

# The legacy names of the original Voicebot API, mapped to the nearest current model of the
# same tier (case-insensitive).
LEGACY_MODEL_ALIASES = {
    "claude 3.5 haiku": "claude-haiku-5-5",
    "claude 3.5 sonnet": "claude-sonnet-5-5",
    "claude 3.5 opus": "claude-opus-5-5",
}


def canonical_anthropic_model(name: str) -> str:
    cleaned = name.strip()
    if cleaned in ANTHROPIC_MODELS:
        return cleaned
    if cleaned.lower() in LEGACY_MODEL_ALIASES:
        return LEGACY_MODEL_ALIASES[cleaned.lower()]
    raise InvalidOption(f"Unknown model '{name}'; use one of {one_of(ANTHROPIC_MODELS)} "
                        f"(legacy names such as 'claude 3.5 haiku' are accepted too).")


# --- OpenAI-compatible servers -------------------------------------------------------------------------

# Any id a server may name its model with: OpenAI's ("gpt-4.1-mini"), a Hugging Face path
# ("meta-llama/Llama-3.1-8B-Instruct"), an Ollama tag ("llama3.2:3b"), a file name ("qwen2.5-7b.Q4_K_M.gguf").
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}")


def canonical_model_id(name: str) -> str:
    cleaned = name.strip()
    if not MODEL_ID.fullmatch(cleaned):
        raise InvalidOption(f"'{name}' is not a model id: use 1 to 100 letters, digits and . _ : / @ + - "
                            f"(starting with a letter or digit), as the server names its model.")
    return cleaned


# --- Deepgram ----------------------------------------------------------------------------------------

DEEPGRAM_AURA_VOICES = (
    "angus", "helios", "stella", "hera", "orpheus", "luna",
    "orion", "athena", "asteria", "arcas", "perseus", "zeus",
)
FALLBACK_AURA_VOICE = "asteria"

# ISO-639-1 codes Deepgram transcribes.
DEEPGRAM_LANGUAGES = tuple(
    "af ar hy az be bs bg ca zh hr cs da nl en et fi fr gl de el he hi hu is id it ja kn kk ko lv lt "
    "mk ms mr mi ne no fa pl pt ro ru sr sk sl es sw sv tl ta th tr uk ur vi cy".split()
)
DEFAULT_LANGUAGE = "en"


def canonical_aura_voice(name: str) -> str:
    """An Aura voice name ("luna", or a full model name such as "aura-2-luna-en"); the short name is stored
    for a bare voice, the full model name as given otherwise."""
    lowered = name.strip().lower()
    if lowered in DEEPGRAM_AURA_VOICES:
        return lowered
    parts = lowered.split("-")
    if len(parts) >= 3 and parts[0] == "aura":
        candidate = parts[2] if parts[1].isdigit() else parts[1]
        if candidate in DEEPGRAM_AURA_VOICES:
            return lowered
    raise InvalidOption(f"Unknown Deepgram Aura voice; use one of {one_of(DEEPGRAM_AURA_VOICES)}.")


def canonical_deepgram_language(code: str) -> str:
    if code in DEEPGRAM_LANGUAGES:
        return code
    raise InvalidOption(f"\"{code}\" is not a supported language; supported: {one_of(DEEPGRAM_LANGUAGES)}.")


# --- Cartesia ----------------------------------------------------------------------------------------

DEFAULT_CARTESIA_VOICE = "f786b574-daa5-4673-aa0c-cbe3e8534c02"  # "Katie"; also the fallback voice
CARTESIA_VOICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


def canonical_cartesia_voice(voice: str) -> str:
    cleaned = voice.strip()
    if not CARTESIA_VOICE_ID.fullmatch(cleaned):
        raise InvalidOption("A Cartesia voice is its id, such as f786b574-daa5-4673-aa0c-cbe3e8534c02.")
    return cleaned
