"""What a voice bot can be configured with: LLMs, voices, languages. Defaults live here too."""
from __future__ import annotations

from voicebots.voice import barge_in

LLM_PROVIDERS = ("anthropic",)
DEFAULT_LLM_MODEL = "claude-haiku-5-5"

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

# The legacy names of the original Voicebot API, mapped to the nearest current model of the
# same tier (case-insensitive).
LEGACY_MODEL_ALIASES = {
    "claude 3.5 haiku": "claude-haiku-5-5",
    "claude 3.5 sonnet": "claude-sonnet-5-5",
    "claude 3.5 opus": "claude-opus-5-5",
}

TTS_PROVIDERS = ("cartesia", "deepgram")
DEEPGRAM_AURA_VOICES = (
    "angus", "helios", "stella", "hera", "orpheus", "luna",
    "orion", "athena", "asteria", "arcas", "perseus", "zeus",
)
DEFAULT_TTS = {"provider": "cartesia", "voice": "f786b574-daa5-4673-aa0c-cbe3e8534c02"}  # Cartesia "Katie"

STT_PROVIDERS = ("deepgram",)
# ISO-639-1 codes Deepgram transcribes.
STT_LANGUAGES = tuple(
    "af ar hy az be bs bg ca zh hr cs da nl en et fi fr gl de el he hi hu is id it ja kn kk ko lv lt "
    "mk ms mr mi ne no fa pl pt ro ru sr sk sl es sw sv tl ta th tr uk ur vi cy".split()
)
DEFAULT_STT = {"provider": "deepgram", "language": "en"}

DEFAULT_CALL_TIMEOUT = 30
DEFAULT_MAX_CALL_DURATION = 1800
DEFAULT_BACKCHANNEL_WORDS = barge_in.DEFAULT_BACKCHANNEL_WORDS  # acknowledgements that never interrupt the bot


def canonical_model(name: str) -> str | None:
    """The model id to use for `name`, or None when it is not a known model or alias."""
    cleaned = name.strip()
    if cleaned in ANTHROPIC_MODELS:
        return cleaned
    return LEGACY_MODEL_ALIASES.get(cleaned.lower())


def canonical_aura_voice(name: str) -> str | None:
    """Aura voice name ("luna", or a full model name such as "aura-2-luna-en") normalised to its short name."""
    lowered = name.strip().lower()
    if lowered in DEEPGRAM_AURA_VOICES:
        return lowered
    parts = lowered.split("-")
    if len(parts) >= 3 and parts[0] == "aura":
        candidate = parts[2] if parts[1].isdigit() else parts[1]
        if candidate in DEEPGRAM_AURA_VOICES:
            return lowered
    return None


def one_of(values) -> str:
    return ", ".join(values)
