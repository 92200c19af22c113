from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from voicebots.accounts.admin_scoping import AccountScopedAdmin
from voicebots.analysis.admin import analysis_html

from .models import Call


@admin.register(Call)
class CallAdmin(AccountScopedAdmin):
    list_display = ["created_at", "voicebot", "direction", "status", "from_number", "to_number", "duration_seconds",
                    "turn_count", "in_console"]
    list_filter = ["status", "direction", "voicebot"]
    search_fields = ["call_uuid", "from_number", "to_number", "turns__caller_text", "turns__bot_text"]
    date_hierarchy = "created_at"
    readonly_fields = ["id", "in_console", "voicebot", "direction", "status", "call_uuid", "request_uuid", "stream_id",
                       "from_number", "to_number", "variables", "answered_at", "stream_started_at", "ended_at",
                       "duration_seconds", "hangup_cause", "end_reason", "analysis_view", "transcript", "events_table",
                       "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("voicebot", "account")

    @admin.display(description="Console")
    def in_console(self, obj):
        """The call's page in the console: its recording, timeline and latency per turn."""
        url = reverse("console:call", args=[obj.account.auth_id, obj.pk])
        return format_html('<a href="{}">Listen and inspect</a>', url)

    @admin.display(description="Turns")
    def turn_count(self, obj):
        return obj.turns.count()

    @admin.display(description="Analysis")
    def analysis_view(self, obj):
        return analysis_html(obj.analysis)

    @admin.display(description="Transcript")
    def transcript(self, obj):
        def timing(t):
            keys = ("latency_ms", "platform_ms", "stt_ms", "llm_ms", "tts_ms")
            return ", ".join(f"{k.removesuffix('_ms')} {t[k]:.0f} ms" for k in keys if t.get(k) is not None)

        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>", (
            (turn.index, turn.caller_text, turn.bot_text, " (interrupted)" if turn.interrupted else "",
             timing(turn.timings))
            for turn in obj.turns.all()
        ))
        return format_html('<table><tr><th>#</th><th>Caller</th><th>Bot (as heard)</th><th>Timings</th></tr>{}'
                           '</table>', rows)

    @admin.display(description="Events")
    def events_table(self, obj):
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((e.created_at.strftime("%H:%M:%S.%f")[:-3], e.kind, e.detail) for e in obj.events.all()))
        return format_html("<table>{}</table>", rows)
