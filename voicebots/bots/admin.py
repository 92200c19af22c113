from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from voicebots.accounts.admin_scoping import AccountScopedAdmin

from . import public_urls
from .models import Voicebot


@admin.register(Voicebot)
class VoicebotAdmin(AccountScopedAdmin):
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
                                       "interruptions_enabled", "record_calls"]}),
        ("Functions and knowledge", {"fields": ["functions", "knowledgebases"]}),
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
