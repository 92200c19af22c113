from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html, format_html_join

from voicebots.accounts.admin_scoping import AccountScopedAdmin
from voicebots.bots.models import Voicebot
from voicebots.calls.phone_numbers import e164_problem

from . import clock, contacts_csv, services, windows
from .models import RETRYABLE_OUTCOMES, Campaign, Contact

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


class CampaignForm(forms.ModelForm):
    contacts_csv = forms.FileField(
        required=False, label="Add contacts (CSV)",
        help_text="A 'phone' column (E.164), an optional 'timezone' column, and a column per {{variable}}.")

    class Meta:
        model = Campaign
        exclude = ["status", "status_reason", "started_at", "finished_at"]

    def clean_caller_ids(self):
        numbers = self.cleaned_data["caller_ids"]
        problems = [problem for problem in map(e164_problem, numbers) if problem]
        if problems:
            raise forms.ValidationError(problems)
        return numbers

    def clean_timezone(self):
        try:
            windows.zone(self.cleaned_data["timezone"])
        except ValueError as error:
            raise forms.ValidationError(str(error))
        return self.cleaned_data["timezone"]

    def clean_calling_windows(self):
        try:
            windows.parse(self.cleaned_data["calling_windows"])
        except windows.InvalidWindows as error:
            raise forms.ValidationError(str(error))
        return self.cleaned_data["calling_windows"]

    def clean_retry_on(self):
        unknown = [value for value in self.cleaned_data["retry_on"] if value not in RETRYABLE_OUTCOMES]
        if unknown:
            raise forms.ValidationError(
                f"Unknown outcome(s) {', '.join(unknown)}; use {', '.join(RETRYABLE_OUTCOMES)}.")
        return self.cleaned_data["retry_on"]

    def clean(self):
        data = super().clean()
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            self.add_error("ends_at", "Must be after the start.")
        if data.get("machine_detection") and data.get("voicemail_action") == Campaign.VoicemailAction.LEAVE_MESSAGE \
                and not (data.get("voicemail_message") or "").strip():
            self.add_error("voicemail_message", "Needed to leave a message on answering machines.")
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

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "voicebot" and not request.user.is_superuser:
            kwargs["queryset"] = Voicebot.objects.filter(account=self._account(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

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
