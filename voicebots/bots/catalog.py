"""A voice bot's defaults. What each vendor accepts (models, voices, languages) lives in the vendor
registry (`voicebots.vendors`), which validates a bot's choices."""
from __future__ import annotations

from voicebots.vendors import choices
from voicebots.vendors.registry import LLM, STT, TTS, names
from voicebots.voice import barge_in

LLM_PROVIDERS = names(LLM)
TTS_PROVIDERS = names(TTS)
STT_PROVIDERS = names(STT)

DEFAULT_LLM_MODEL = choices.DEFAULT_ANTHROPIC_MODEL
DEFAULT_TTS = {"provider": "cartesia", "voice": choices.DEFAULT_CARTESIA_VOICE}  # Cartesia "Katie"
DEFAULT_STT = {"provider": "deepgram", "language": choices.DEFAULT_LANGUAGE}

DEFAULT_CALL_TIMEOUT = 30
DEFAULT_MAX_CALL_DURATION = 1800
DEFAULT_BACKCHANNEL_WORDS = barge_in.DEFAULT_BACKCHANNEL_WORDS  # acknowledgements that never interrupt the bot

one_of = choices.one_of
