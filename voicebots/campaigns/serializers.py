from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from voicebots.api.serializers import StrictModelSerializer
from voicebots.bots.models import Voicebot
from voicebots.calls.serializers import E164Field

from . import windows
from .models import RETRYABLE_OUTCOMES, Campaign, Contact
from .services import progress


class AccountVoicebotField(serializers.PrimaryKeyRelatedField):
    default_error_messages = {"does_not_exist": "No Voicebot with id {pk_value} in this account.",
                              "incorrect_type": "Expected a voicebot id (a UUID)."}

    def __init__(self, **kwargs):
        super().__init__(pk_field=serializers.UUIDField(), **kwargs)

    def get_queryset(self):
        return Voicebot.objects.filter(account=self.context["account"])


@extend_schema_field({
    "type": "object", "additionalProperties": False,
    "description": "Local hours per weekday in each contact's time zone, e.g. {\"mon\": [[\"09:00\", \"17:00\"]]}; "
                   "a weekday left out has no calls.",
    "properties": {day: {"type": "array", "items": {
        "type": "array", "minItems": 2, "maxItems": 2,
        "items": {"type": "string", "pattern": "^([01][0-9]|2[0-4]):[0-5][0-9]$"}}} for day in windows.DAYS}})
class CallingWindowsField(serializers.JSONField):
    """Validated by windows.parse (validate_calling_windows)."""


class CampaignSerializer(StrictModelSerializer):
    voicebot_id = AccountVoicebotField(source="voicebot")
    caller_ids = serializers.ListField(child=E164Field(), min_length=1, max_length=100)
    retry_on = serializers.ListField(child=serializers.ChoiceField(choices=RETRYABLE_OUTCOMES), required=False)
    max_concurrent_calls = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=10)
    retry_delay_minutes = serializers.IntegerField(required=False, min_value=1, max_value=7 * 24 * 60)
    ring_timeout = serializers.IntegerField(required=False, min_value=5, max_value=120)
    progress = serializers.SerializerMethodField()
    calling_windows = CallingWindowsField(required=False)

    class Meta:
        model = Campaign
        fields = ["id", "name", "voicebot_id", "caller_ids", "status", "status_reason", "starts_at", "ends_at",
                  "timezone", "calling_windows", "max_concurrent_calls", "max_attempts", "retry_delay_minutes",
                  "retry_on", "ring_timeout", "machine_detection", "voicemail_action", "voicemail_message",
                  "progress", "started_at", "finished_at", "created_at", "updated_at"]
        read_only_fields = ["id", "status", "status_reason", "progress", "started_at", "finished_at", "created_at",
                            "updated_at"]

    def to_internal_value(self, data):
        if isinstance(data, dict) and "status" in data:
            raise serializers.ValidationError(
                {"status": ["Read-only: change it with POST Campaign/{id}/schedule, pause, resume or cancel."]})
        return super().to_internal_value(data)

    def get_progress(self, campaign) -> dict:
        return progress(campaign)

    def validate_caller_ids(self, value):
        repeated = sorted({number for number in value if value.count(number) > 1})
        if repeated:
            raise serializers.ValidationError(f"{', '.join(repeated)} is listed more than once.")
        return value

    def validate_timezone(self, value):
        try:
            windows.zone(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error))
        return value

    def validate_calling_windows(self, value):
        try:
            windows.parse(value)
        except windows.InvalidWindows as error:
            raise serializers.ValidationError(str(error))
        return value

    def validate_retry_on(self, value):
        return list(dict.fromkeys(value))

    def validate(self, attrs):
        def current(name):
            return attrs[name] if name in attrs else getattr(self.instance, name, None)

        starts_at, ends_at = current("starts_at"), current("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        leaves_message = current("machine_detection") and \
            current("voicemail_action") == Campaign.VoicemailAction.LEAVE_MESSAGE
        if leaves_message and not (current("voicemail_message") or "").strip():
            raise serializers.ValidationError(
                {"voicemail_message": ["Needed when machine_detection is on and voicemail_action is leave_message."]})
        return attrs


class ContactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Contact
        fields = ["id", "phone_number", "variables", "timezone", "line_number", "state", "attempts",
                  "next_attempt_at", "answered_at", "outcome", "last_error", "created_at", "updated_at"]
        read_only_fields = fields
