from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from voicebots.api.serializers import StrictSerializer
from voicebots.bots.models import Voicebot

from . import templating
from .models import Call, CallEvent, CallTurn
from .phone_numbers import e164_problem

MAX_VARIABLES = 100
MAX_VARIABLE_LENGTH = 2000


class CallTurnSerializer(serializers.ModelSerializer):
    class Meta:
        model = CallTurn
        fields = ["index", "caller_text", "bot_text", "interrupted", "tool_calls", "timings", "created_at"]


class CallEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = CallEvent
        fields = ["kind", "detail", "created_at"]


class CallSerializer(serializers.ModelSerializer):
    voicebot_id = serializers.UUIDField(read_only=True, allow_null=True)
    # Plivo's names for the numbers.
    to = serializers.CharField(source="to_number", read_only=True)
    from_ = serializers.CharField(source="from_number", read_only=True)
    recording_url = serializers.SerializerMethodField()
    variables = serializers.DictField(child=serializers.CharField(), read_only=True,
                                      help_text="The values the bot's {{placeholders}} were filled with.")

    class Meta:
        model = Call
        fields = ["id", "voicebot_id", "direction", "status", "call_uuid", "request_uuid", "from_", "to", "variables",
                  "answered_at", "ended_at", "duration_seconds", "hangup_cause", "end_reason", "recording_url",
                  "analysis",
                  "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_recording_url(self, call) -> str | None:
        """The call's WAV (GET Call/{id}/recording), once there is one to play."""
        recording = getattr(call, "recording", None)
        if recording is None or not recording.playable:
            return None
        return f"{settings.PUBLIC_BASE_URL}/v1/Account/{call.account.auth_id}/Call/{call.id}/recording"

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # `from` is a Python keyword, so declared as from_ (documented as from)
        return fields


class CallDetailSerializer(CallSerializer):
    turns = CallTurnSerializer(many=True, read_only=True)
    events = CallEventSerializer(many=True, read_only=True)

    class Meta(CallSerializer.Meta):
        fields = CallSerializer.Meta.fields + ["turns", "events"]
        read_only_fields = fields


class E164Field(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=32, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = e164_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


@extend_schema_field({"type": "object", "description": "Values of the bot's {{placeholders}}, by name.",
                     "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}})
class VariablesField(serializers.DictField):
    """{"name": value}: names usable as {{name}}, values strings, numbers or booleans (stored as text)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object of variable names and values.")
        if len(data) > MAX_VARIABLES:
            raise serializers.ValidationError(f"At most {MAX_VARIABLES} variables.")
        variables = {}
        for name, value in data.items():
            if not templating.VARIABLE_NAME.match(str(name)):
                raise serializers.ValidationError(
                    f"'{name}' is not a variable name (letters, digits and _, not starting with a digit).")
            if isinstance(value, (dict, list)) or value is None:
                raise serializers.ValidationError(f"The value of '{name}' must be a string, number or boolean.")
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if len(text) > MAX_VARIABLE_LENGTH:
                raise serializers.ValidationError(f"The value of '{name}' is longer than {MAX_VARIABLE_LENGTH}.")
            variables[name] = text
        return variables


@extend_schema_field({"oneOf": [{"type": "string", "enum": ["true", "hangup"]}, {"type": "boolean"}]})
class MachineDetectionField(serializers.Field):
    """Plivo's machine_detection: "true" (detect, then carry on) or "hangup"; true/false accepted too."""

    def to_internal_value(self, data):
        if data in (False, None, "false", ""):
            return None
        if data in (True, "true", "hangup"):
            return "hangup" if data == "hangup" else "true"
        raise serializers.ValidationError('Must be "true", "hangup" or false.')

    def to_representation(self, value):
        return value


def missing_placeholders_error(names: list[str]) -> str:
    listed = ", ".join("{{" + name + "}}" for name in names)
    return f"No value for {listed}, used in the bot's prompt, welcome message or voicemail message."


class OutboundCallSerializer(StrictSerializer):
    """POST Call/: place a call from one of the account's numbers to `to`, answered by the bot."""

    voicebot_id = serializers.UUIDField()
    to = E164Field()
    variables = VariablesField(required=False, default=dict)
    ring_timeout = serializers.IntegerField(required=False, default=30, min_value=5, max_value=120)
    machine_detection = MachineDetectionField(required=False, default=None)
    voicemail_message = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = E164Field()  # a Python keyword, so declared here
        return fields

    def validate_voicebot_id(self, value):
        bot = Voicebot.objects.filter(account=self.context["account"], pk=value).first()
        if bot is None:
            raise serializers.ValidationError(f"No Voicebot with id {value} in this account.")
        return bot

    def validate(self, attrs):
        bot, variables = attrs["voicebot_id"], attrs["variables"]
        if attrs["from"] == attrs["to"]:
            raise serializers.ValidationError({"to": ["Must differ from the from number."]})
        missing = templating.missing_variables(variables, *templating.bot_texts(bot), attrs["voicemail_message"])
        if missing:
            raise serializers.ValidationError({"variables": [missing_placeholders_error(missing)]})
        if attrs["voicemail_message"] and attrs["machine_detection"] != "true":
            raise serializers.ValidationError(
                {"voicemail_message": ['Needs machine_detection "true": the message is left when a machine answers.']})
        return attrs
