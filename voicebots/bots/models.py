import re
import secrets
import uuid

from django.core.exceptions import ValidationError
from django.db import models

from voicebots.accounts.models import Account
from voicebots.core.encryption import EncryptedTextField
from voicebots.voice import options

from . import catalog


def new_stream_secret() -> str:
    return secrets.token_urlsafe(24)


TRANSFER_DESTINATION = re.compile(r"^(\+[1-9]\d{6,14}|sips?:[^@\s]+@[^@\s]+)$")


def validate_transfer_destination(value: str) -> None:
    if value and not TRANSFER_DESTINATION.match(value):
        raise ValidationError("Use an E.164 phone number such as +14155550123, "
                              "or a SIP URI such as sip:desk@example.com.")


def default_backchannel_words() -> list[str]:
    return list(catalog.DEFAULT_BACKCHANNEL_WORDS)


class Voicebot(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="voicebots")
    name = models.CharField(max_length=200)
    prompt = models.TextField(blank=True, default="")
    welcome_message = models.TextField(blank=True, default="")
    llm_provider = models.CharField(max_length=32, default="anthropic")
    llm_model = models.CharField(max_length=100, default=catalog.DEFAULT_LLM_MODEL)
    tts_provider = models.CharField(max_length=32, default=catalog.DEFAULT_TTS["provider"])
    tts_voice = models.CharField(max_length=100, default=catalog.DEFAULT_TTS["voice"])
    stt_provider = models.CharField(max_length=32, default=catalog.DEFAULT_STT["provider"])
    stt_language = models.CharField(max_length=8, default=catalog.DEFAULT_STT["language"])
    call_timeout = models.PositiveIntegerField(
        default=catalog.DEFAULT_CALL_TIMEOUT, help_text="Seconds of caller silence before the bot re-prompts."
    )
    max_call_duration = models.PositiveIntegerField(default=catalog.DEFAULT_MAX_CALL_DURATION)
    transfer_destination = models.CharField(
        max_length=255, blank=True, default="", validators=[validate_transfer_destination],
        help_text="E.164 number or sip: URI the bot may transfer callers to; blank: no transfers.",
    )
    interruptions_enabled = models.BooleanField(default=True, help_text="Callers may talk over the bot.")
    interruption_min_words = models.PositiveSmallIntegerField(
        default=1, help_text="Words (other than backchannel words) the caller must say to interrupt the bot.",
    )
    backchannel_words = models.JSONField(
        default=default_backchannel_words, blank=True,
        help_text="Acknowledgements (\"ok\", \"uh-huh\") that never interrupt the bot.",
    )
    # Barge-in and dead air (voicebots/voice/barge_in.py, dead_air.py): defaults chosen from bench.bargein.
    interruption_min_speech_ms = models.PositiveSmallIntegerField(
        default=round(options.DEFAULT_MIN_SPEECH_S * 1000),
        help_text="Caller speech (ms) that stops the bot while it talks; the caller's words then decide.",
    )
    interruption_words_wait_ms = models.PositiveSmallIntegerField(
        default=round(options.DEFAULT_WORDS_WAIT_S * 1000),
        help_text="After the caller stopped the bot and went quiet without words, how long (ms) before it goes on.",
    )
    dead_air_ms = models.PositiveIntegerField(
        default=round(options.DEFAULT_DEAD_AIR_S * 1000),
        help_text="Silence (ms) the caller may wait for a reply before the bot says a filler line.",
    )
    filler_message = models.CharField(
        max_length=200, blank=True, default=options.DEFAULT_FILLER,
        help_text="Said while a function is slow (a function may have its own).",
    )
    record_calls = models.BooleanField(default=True, help_text="Record each call as a stereo WAV.")
    analysis = models.JSONField(
        default=dict, blank=True,
        help_text='Post-call analysis: {"summary": bool, "success_criteria": text, "extraction_schema": JSON Schema}.',
    )
    # Authenticates Plivo streams that connect through the bot's websocket_url (the outbound flow).
    stream_secret = EncryptedTextField(default=new_stream_secret, editable=False)
    functions = models.ManyToManyField("functions.Function", blank=True, related_name="voicebots")
    knowledgebases = models.ManyToManyField("knowledge.Knowledgebase", blank=True, related_name="voicebots")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self):
        return self.name

    def rotate_stream_secret(self) -> None:
        self.stream_secret = new_stream_secret()
        self.save(update_fields=["stream_secret", "updated_at"])
