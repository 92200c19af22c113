from __future__ import annotations

from rest_framework import serializers

from voicebots.analysis.serializers import AnalysisSettingsField
from voicebots.api.serializers import StrictModelSerializer, StrictSerializer
from voicebots.functions.models import Function
from voicebots.knowledge.models import Knowledgebase

from voicebots.vendors import registry
from voicebots.vendors.choices import InvalidOption

from . import public_urls
from .models import Voicebot, validate_transfer_destination


class _VendorChoice(StrictSerializer):
    """A provider and its option (a model, voice or language), validated by the vendor registry: an unknown
    provider is refused naming the supported ones; an option the provider does not take, naming what it takes;
    a missing option is the provider's default, if it has one."""

    kind = ""
    option = ""

    def validate(self, attrs):
        try:
            provider, option = registry.validate(self.kind, attrs["provider"], attrs.get(self.option))
        except registry.UnknownProvider as error:
            raise serializers.ValidationError({"provider": [error.message]})
        except InvalidOption as error:
            raise serializers.ValidationError({self.option: [error.message]})
        return {"provider": provider, self.option: option}


class LLMSettingsSerializer(_VendorChoice):
    kind, option = registry.LLM, "model"
    provider = serializers.CharField(max_length=32)
    model = serializers.CharField(required=False, max_length=100)


class TTSSettingsSerializer(_VendorChoice):
    kind, option = registry.TTS, "voice"
    provider = serializers.CharField(max_length=32)
    voice = serializers.CharField(max_length=100)


class STTSettingsSerializer(_VendorChoice):
    kind, option = registry.STT, "language"
    provider = serializers.CharField(max_length=32)
    language = serializers.CharField(required=False, max_length=8)


def _same_provider(kind: str, name, current: str) -> bool:
    try:
        return registry.get(kind, name).name == current
    except registry.UnknownProvider:
        return False


class BackchannelWordsField(serializers.ListField):
    """Words or short phrases, stored lower-case without duplicates."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(max_length=40), allow_empty=True, required=False,
                         max_length=50, **kwargs)

    def to_internal_value(self, data):
        words = (" ".join(word.lower().split()) for word in super().to_internal_value(data))
        return list(dict.fromkeys(word for word in words if word))


class OwnedIdsField(serializers.ListField):
    """A list of ids of the caller's own objects of one model; any other id is a 400 naming it."""

    def __init__(self, model, label: str, **kwargs):
        self.model, self.label = model, label
        super().__init__(child=serializers.UUIDField(), allow_empty=True, required=False, **kwargs)

    def to_internal_value(self, data):
        ids = list(dict.fromkeys(super().to_internal_value(data)))
        found = {
            obj.pk: obj
            for obj in self.model.objects.filter(account=self.context["account"], pk__in=ids)
        }
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise serializers.ValidationError(f"No {self.label} with id {', '.join(missing)} in this account.")
        return [found[i] for i in ids]

    def to_representation(self, manager):
        return [str(obj.pk) for obj in manager.all()]


class SettingsGroupField(serializers.Field):
    """A settings object of the API (`answer_llm`, `tts`, `stt`) kept as columns of the bot.

    Validated by its own serializer (the vendor registry's rules); on PATCH a key left out keeps its current
    value, unless the provider changes: a new provider starts from its own defaults.
    """

    def __init__(self, group_serializer, columns: dict[str, str], **kwargs):
        self.group_serializer, self.columns = group_serializer, columns
        super().__init__(source="*", required=False, **kwargs)

    def to_representation(self, bot) -> dict:
        return {key: getattr(bot, column) for key, column in self.columns.items()}

    def to_internal_value(self, data) -> dict:
        instance = self.parent.instance
        if isinstance(data, dict) and instance is not None:
            current = self.to_representation(instance)
            if _same_provider(self.group_serializer.kind, data.get("provider", current["provider"]),
                              current["provider"]):
                data = {**current, **data}
        group = self.group_serializer(data=data)
        if not group.is_valid():
            raise serializers.ValidationError(group.errors)
        return {column: group.validated_data[key] for key, column in self.columns.items()}


LIST_PROMPT_CHARS = 500  # lists show the start of each prompt; a bot's own GET gives all of it


class PromptField(serializers.CharField):
    """The bot's prompt: whole in a bot's details, its first LIST_PROMPT_CHARS characters in lists."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_blank=True, trim_whitespace=False, **kwargs)

    def get_attribute(self, bot):
        if self.context.get("summary"):
            start = getattr(bot, "prompt_start", None)  # the list's query reads only the start (VoicebotViewSet)
            return start if start is not None else bot.prompt[:LIST_PROMPT_CHARS]
        return bot.prompt


def prompt_length(bot) -> int:
    chars = getattr(bot, "prompt_chars", None)
    return chars if chars is not None else len(bot.prompt)


class VoicebotSerializer(StrictModelSerializer):
    prompt = PromptField(help_text=f"The system prompt. Lists show its first {LIST_PROMPT_CHARS} characters.")
    prompt_length = serializers.SerializerMethodField(help_text="Characters in the whole prompt.")
    prompt_truncated = serializers.SerializerMethodField(
        help_text=f"True in lists when only the first {LIST_PROMPT_CHARS} characters of the prompt are shown.")
    answer_llm = SettingsGroupField(LLMSettingsSerializer, {"provider": "llm_provider", "model": "llm_model"})
    tts = SettingsGroupField(TTSSettingsSerializer, {"provider": "tts_provider", "voice": "tts_voice"})
    stt = SettingsGroupField(STTSettingsSerializer, {"provider": "stt_provider", "language": "stt_language"})
    callTimeout = serializers.IntegerField(source="call_timeout", required=False, min_value=1, max_value=3600)
    max_call_duration = serializers.IntegerField(required=False, min_value=10, max_value=4 * 3600)
    transfer_destination = serializers.CharField(required=False, allow_blank=True, max_length=255,
                                                 validators=[validate_transfer_destination])
    interruptions_enabled = serializers.BooleanField(required=False)
    interruption_min_words = serializers.IntegerField(required=False, min_value=1, max_value=10)
    record_calls = serializers.BooleanField(required=False)
    backchannel_words = BackchannelWordsField()
    knowledgebase_ids = OwnedIdsField(Knowledgebase, "Knowledgebase", source="knowledgebases")
    function_ids = OwnedIdsField(Function, "Function", source="functions")
    analysis = AnalysisSettingsField(required=False)
    websocket_url = serializers.SerializerMethodField()
    inbound_call_url = serializers.SerializerMethodField()

    class Meta:
        model = Voicebot
        fields = [
            "id", "name", "prompt", "prompt_length", "prompt_truncated", "welcome_message", "answer_llm", "tts",
            "stt", "callTimeout", "max_call_duration", "transfer_destination", "interruptions_enabled",
            "interruption_min_words", "backchannel_words", "record_calls", "knowledgebase_ids", "function_ids",
            "analysis", "websocket_url", "inbound_call_url", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "websocket_url", "inbound_call_url", "created_at", "updated_at"]
        extra_kwargs = {"welcome_message": {"required": False}}

    def get_prompt_length(self, obj) -> int:
        return prompt_length(obj)

    def get_prompt_truncated(self, obj) -> bool:
        return bool(self.context.get("summary")) and prompt_length(obj) > LIST_PROMPT_CHARS

    def get_websocket_url(self, obj) -> str:
        return public_urls.websocket_url(obj)

    def get_inbound_call_url(self, obj) -> str:
        return public_urls.inbound_call_url(obj)

    def create(self, validated_data):
        functions = validated_data.pop("functions", [])
        documents = validated_data.pop("knowledgebases", [])
        bot = Voicebot.objects.create(**validated_data)
        bot.functions.set(functions)
        bot.knowledgebases.set(documents)
        return bot

    def update(self, instance, validated_data):
        functions = validated_data.pop("functions", None)
        documents = validated_data.pop("knowledgebases", None)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save()
        if functions is not None:
            instance.functions.set(functions)
        if documents is not None:
            instance.knowledgebases.set(documents)
        return instance
