from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html, format_html_join

from voicebots.accounts.admin_scoping import AccountScopedAdmin
from voicebots.api.admin_forms import ApiValidatedForm

from . import clock, contacts_csv, services, windows
from .models import Campaign, Contact
from .serializers import CampaignSerializer

MAX_ERRORS_SHOWN = 20
# Progress bar segments: (progress key, label, colour).
SEGMENTS = (("completed", "completed", "#2e7d32"), ("voicemail", "voicemail", "#1565c0"),
            ("failed", "failed", "#c62828"), ("skipped", "skipped", "#9e9e9e"), ("in_call", "in a call", "#ef6c00"))


def progress_bar(progress: dict):
    total = progress["total"] or 1
    segments = format_html_join("", '<div title="{} {}" style="width:{}%;background:{}"></div>', (
        (progress[key], label, round(100 * progress[key] / total, 2), colour)
        for key, label, colour in SEGMENTS if progress[key]))
    return format_html(
        '<div style="display:flex;width:220px;height:12px;background:#e0e0e0;border-radius:3px;overflow:hidden">'
        '{}</div><div style="font-size:11px">{} of {} dialed, {} answered, {} completed, {} failed, {} remaining</div>',
        segments, progress["dialed"], progress["total"], progress["answered"], progress["completed"],
        progress["failed"], progress["remaining"])


class WeekdayWindowsWidget(forms.MultiWidget):
    """One text input per weekday: "09:00-12:00, 13:30-17:00"."""

    def __init__(self, attrs=None):
        super().__init__({day: forms.TextInput(attrs={"placeholder": "09:00-17:00", "size": 30})
                          for day in windows.DAYS}, attrs)

    def decompress(self, value):
        value = value if isinstance(value, dict) else {}
        return [", ".join(f"{start}-{end}" for start, end in value.get(day, [])) for day in windows.DAYS]

    def render(self, name, value, attrs=None, renderer=None):
        inputs = super().render(name, value, attrs, renderer)
        return format_html('<div class="weekday-windows">{}</div>', inputs)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        for day, widget in zip(windows.DAYS, context["widget"]["subwidgets"]):
            widget["attrs"]["aria-label"] = day
        return context


class WeekdayWindowsField(forms.MultiValueField):
    """Calling windows as the API's {"mon": [["09:00", "17:00"]], ...}; a weekday left empty has no window."""

    widget = WeekdayWindowsWidget

    def __init__(self, **kwargs):
        super().__init__(fields=[forms.CharField(required=False) for _ in windows.DAYS], require_all_fields=False,
                         required=False, **kwargs)

    def compress(self, texts):
        result = {}
        for day, text in zip(windows.DAYS, texts or [""] * len(windows.DAYS)):
            spans = [span.strip() for span in (text or "").split(",") if span.strip()]
            pairs = [[part.strip() for part in span.split("-", 1)] for span in spans]
            malformed = [span for span, pair in zip(spans, pairs) if len(pair) != 2]
            if malformed:
                raise forms.ValidationError(f"{day}: write '{malformed[0]}' as HH:MM-HH:MM.")
            if pairs:
                result[day] = pairs
        return result


class CampaignForm(ApiValidatedForm):
    """The API's CampaignSerializer decides what is valid; contacts may come with it as a CSV."""

    serializer_class = CampaignSerializer
    calling_windows = WeekdayWindowsField(
        label="Calling windows", help_text="Local hours per weekday in each contact's time zone, e.g. "
                                           "09:00-12:00, 13:30-17:00. Leave a day empty for no calls.")
    contacts_csv = forms.FileField(
        required=False, label="Add contacts (CSV)",
        help_text="A 'phone' column (E.164), an optional 'timezone' column, and a column per {{variable}}.")

    class Meta:
        model = Campaign
        exclude = ["status", "status_reason", "started_at", "finished_at"]

    def clean(self):
        data = super().clean()
        upload = data.get("contacts_csv")
        if upload and not self.errors:
            self._check_contacts(upload.read())
        return data

    def _check_contacts(self, content: bytes) -> None:
        campaign = self.instance
        stored = not campaign._state.adding
        if stored and campaign.status not in services.TAKES_CONTACTS:
            self.add_error("contacts_csv", f"A {campaign.status} campaign takes no more contacts.")
            return
        self.csv_content = content
        draft = Campaign(voicebot=self.cleaned_data.get("voicebot"),
                         voicemail_message=self.cleaned_data.get("voicemail_message", ""))
        existing = set(campaign.contacts.values_list("phone_number", flat=True)) if stored else set()
        try:
            parsed = contacts_csv.parse(content, required=services.required_variables(draft), existing_numbers=existing)
        except contacts_csv.CsvFileError as error:
            self.add_error("contacts_csv", str(error))
            return
        if parsed.errors:
            shown = [f"Line {e.line}: {e.error}" for e in parsed.errors[:MAX_ERRORS_SHOWN]]
            more = len(parsed.errors) - len(shown)
            self.add_error("contacts_csv", shown + ([f"... and {more} more invalid rows."] if more > 0 else []))


@admin.register(Campaign)
class CampaignAdmin(AccountScopedAdmin):
    form = CampaignForm
    list_display = ["name", "voicebot", "status", "progress_display", "starts_at", "ends_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    readonly_fields = ["status", "status_reason", "progress_display", "started_at", "finished_at"]
    actions = ["schedule", "pause", "resume", "cancel"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("voicebot")

    @admin.display(description="Progress")
    def progress_display(self, obj):
        return progress_bar(services.progress(obj)) if obj.pk else "-"

    def save_model(self, request, obj, form, change):
        content = getattr(form, "csv_content", None)
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if content:
                parsed = services.import_contacts(obj, content, skip_invalid=False, now=clock.now())
                messages.success(request, f"Added {len(parsed.rows)} contacts.")

    def _transition(self, request, queryset, change, done: str):
        for campaign in queryset:
            try:
                change(campaign, clock.now())
                messages.success(request, f"{campaign.name}: {done}.")
            except services.TransitionError as error:
                messages.error(request, f"{campaign.name}: {error}")

    @admin.action(description="Schedule the selected campaigns")
    def schedule(self, request, queryset):
        self._transition(request, queryset, services.schedule, "scheduled")

    @admin.action(description="Pause the selected campaigns")
    def pause(self, request, queryset):
        self._transition(request, queryset, services.pause, "paused")

    @admin.action(description="Resume the selected campaigns")
    def resume(self, request, queryset):
        self._transition(request, queryset, services.resume, "resumed")

    @admin.action(description="Cancel the selected campaigns")
    def cancel(self, request, queryset):
        self._transition(request, queryset, services.cancel, "cancelled")


@admin.register(Contact)
class ContactAdmin(AccountScopedAdmin):
    account_field = "campaign__account"
    list_display = ["phone_number", "campaign", "state", "attempts", "outcome", "next_attempt_at", "line_number"]
    list_filter = ["state", "campaign"]
    search_fields = ["phone_number"]
    readonly_fields = ["campaign", "phone_number", "variables", "timezone", "line_number", "state", "attempts",
                       "next_attempt_at", "claimed_at", "answered_at", "outcome", "last_error", "calls"]
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("campaign")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Calls")
    def calls(self, obj):
        rows = format_html_join("", '<li><a href="/admin/calls/call/{}/change/">Attempt {}</a>: {}</li>', (
            (attempt.call_id, attempt.number, attempt.call.status)
            for attempt in obj.call_attempts.select_related("call")))
        return format_html("<ul>{}</ul>", rows)
