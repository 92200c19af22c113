"""The vendors of one call, from its bot's settings through the vendor registry, in the transport's formats."""
from __future__ import annotations

from voicebots.vendors import registry
from voicebots.vendors.registry import LLM, STT, TTS, ProviderUnavailable, UnknownProvider
from voicebots.voice.audio import AudioFormat


def problems(bot) -> list[str]:
    """Why a live call with this bot cannot run on this server (missing keys, unknown providers); empty if
    it can."""
    found: list[str] = []
    for kind, name in ((LLM, bot.llm_provider), (STT, bot.stt_provider), (TTS, bot.tts_provider)):
        try:
            found.extend(f"{setting} missing" for setting in registry.missing_settings(kind, name))
        except ProviderUnavailable as error:
            found.append(error.message.rstrip("."))
    return list(dict.fromkeys(found))  # Deepgram's key is needed once, whatever it does


def missing_keys(bot) -> list[str]:
    """What a live call with this bot lacks on this server: the settings of its vendors that are not set, and
    any vendor the server does not know."""
    found: list[str] = []
    for kind, name in ((LLM, bot.llm_provider), (STT, bot.stt_provider), (TTS, bot.tts_provider)):
        try:
            found.extend(registry.missing_settings(kind, name))
        except UnknownProvider:
            found.append(f"the {registry.KIND_TITLES[kind]} provider \"{name}\"")
    return sorted(set(found))


def speech_to_text(bot, audio_format: AudioFormat):
    """Transcription of the caller's audio, as the transport delivers it."""
    return registry.speech_to_text(bot.stt_provider, bot.stt_language, audio_format)


def voice(bot, audio_format: AudioFormat):
    """The bot's voice, speaking in `audio_format` (what the transport plays)."""
    return registry.text_to_speech(bot.tts_provider, bot.tts_voice, bot.stt_language, audio_format)


def fallback_voice(bot, audio_format: AudioFormat):
    """Another vendor's voice for when the bot's fails, if this server has one: a failed voice never means
    silence."""
    return registry.fallback_text_to_speech(bot.tts_provider, bot.stt_language, audio_format)
