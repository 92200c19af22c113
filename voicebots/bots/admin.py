from django import forms
from django.contrib import admin, messages
from django.contrib.postgres.forms import SimpleArrayField
from django.urls import reverse
from django.utils.html import format_html

from voicebots.accounts.admin_scoping import AccountScopedAdmin
from voicebots.api.admin_forms import ApiValidatedForm

from voicebots.vendors import choices
from voicebots.vendors.registry import LLM, STT, TTS, names

from . import public_urls
from .models import Voicebot
from .serializers import VoicebotSerializer


class DatalistInput(forms.TextInput):
    """A text input that suggests values (a browser datalist) without limiting the user to them."""

    def __init__(self, suggestions, attrs=None):
        super().__init__(attrs)
        self.suggestions = suggestions

    def render(self, name, value, attrs=None, renderer=None):
        listed = f"{name}_choices"
        field = super().render(name, value, {**(attrs or {}), "list": listed}, renderer)
        options = format_html("".join('<option value="{}">' for _ in self.suggestions), *self.suggestions)
        return format_html('{}<datalist id="{}">{}</datalist>', field, listed, options)


def choice_input(choices, *, current: str = "") -> forms.Select:
    """A select of the API's choices (plus the stored value, so showing a bot never changes it silently)."""
    values = list(choices) + ([current] if current and current not in choices else [])
    return forms.Select(choices=[(value, value) for value in values])


class VoicebotForm(ApiValidatedForm):
    """The API's VoicebotSerializer (the vendor registry) decides what is valid; the widgets offer its choices:
    lists where a provider takes only some values, suggestions where it takes any id (OpenAI-compatible
    models, Cartesia voices)."""

    serializer_class = VoicebotSerializer
    backchannel_words = SimpleArrayField(
        forms.CharField(max_length=40), required=False, delimiter=",",
        help_text="Comma-separated acknowledgements (\"ok\", \"uh-huh\") that never interrupt the bot.")

    class Meta:
        model = Voicebot
        fields = "__all__"
        widgets = {"tts_voice": DatalistInput(choices.DEEPGRAM_AURA_VOICES),
                   "llm_model": DatalistInput(choices.ANTHROPIC_MODELS)}
        help_texts = {"tts_voice": "A Cartesia voice id, or a Deepgram Aura voice ("
                                   + choices.one_of(choices.DEEPGRAM_AURA_VOICES) + ").",
                      "llm_model": "An Anthropic model (suggested), or the model id of an OpenAI-compatible server."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        lists = {"llm_provider": names(LLM), "tts_provider": names(TTS), "stt_provider": names(STT),
                 "stt_language": choices.DEEPGRAM_LANGUAGES}
        for name, values in lists.items():
            if name in self.fields:
                current = self.initial.get(name) or ""
                self.fields[name].widget = choice_input(values, current=str(current))

    def clean_analysis(self):
        return self.cleaned_data.get("analysis") or {}  # left empty: the defaults (a summary of each call)


@admin.register(Voicebot)
class VoicebotAdmin(AccountScopedAdmin):
    form = VoicebotForm
    list_display = ["name", "llm_model", "tts_provider", "tts_voice", "stt_language", "function_count",
                    "document_count", "created_at"]
    list_filter = ["llm_model", "tts_provider", "stt_language"]
    search_fields = ["name", "prompt", "welcome_message"]
    filter_horizontal = ["functions", "knowledgebases"]
    readonly_fields = ["id", "playground", "inbound_call_url", "websocket_url", "created_at", "updated_at"]
    actions = ["rotate_stream_secret"]
    fieldsets = [
        (None, {"fields": ["id", "playground", "account", "name", "prompt", "welcome_message"]}),
        ("Voice and model", {"fields": ["llm_provider", "llm_model", "tts_provider", "tts_voice",
                                        "stt_provider", "stt_language"]}),
        ("Call behaviour", {"fields": ["call_timeout", "max_call_duration", "transfer_destination",
                                       "interruptions_enabled", "interruption_min_words", "backchannel_words"]}),
        ("Functions and knowledge", {"fields": ["functions", "knowledgebases"]}),
        ("Recording and analysis", {"fields": ["record_calls", "analysis"]}),
        ("Plivo", {"fields": ["inbound_call_url", "websocket_url"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        if request.user.is_superuser:
            return self.fieldsets
        return [(title, {"fields": [f for f in opts["fields"] if f != "account"]}) for title, opts in self.fieldsets]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account").prefetch_related("functions", "knowledgebases")

    @admin.display(description="Functions")
    def function_count(self, obj):
        return len(obj.functions.all())

    @admin.display(description="Documents")
    def document_count(self, obj):
        return len(obj.knowledgebases.all())

    @admin.display(description="Try it")
    def playground(self, obj):
        if not obj.pk:
            return "-"
        return format_html('<a href="{}">Open the chat playground</a>', reverse("playground", args=[obj.pk]))

    @admin.display(description="Inbound call URL (a Plivo application's answer URL)")
    def inbound_call_url(self, obj):
        return format_html("<code>{}</code>", public_urls.inbound_call_url(obj)) if obj.pk else "-"

    @admin.display(description="WebSocket URL (for your own answer XML)")
    def websocket_url(self, obj):
        return format_html("<code>{}</code>", public_urls.websocket_url(obj)) if obj.pk else "-"

    @admin.action(description="Rotate the stream secret (old websocket URLs stop working)")
    def rotate_stream_secret(self, request, queryset):
        for bot in queryset:
            bot.rotate_stream_secret()
        messages.success(request, f"Rotated the stream secret of {queryset.count()} bot(s).")
