from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from rest_framework import serializers

from voicebots.api.serializers import StrictModelSerializer, StrictSerializer

from .models import Function

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARAMETER_TYPES = ("string", "number", "integer", "boolean")
# Tools the platform itself offers on calls; a user function may not shadow them.
RESERVED_NAMES = ("end_call", "transfer_call", "send_dtmf")


def validate_tool_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise serializers.ValidationError("Use 1 to 64 letters, digits, '_' or '-'.")
    return value


class UserParameterSerializer(StrictSerializer):
    name = serializers.CharField(validators=[validate_tool_name])
    type = serializers.ChoiceField(
        choices=PARAMETER_TYPES,
        error_messages={"invalid_choice": f"\"{{input}}\" is not a valid type; use one of {', '.join(PARAMETER_TYPES)}."},
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")
    required = serializers.BooleanField(required=False, default=False)


class FixedParameterSerializer(StrictSerializer):
    name = serializers.CharField(validators=[validate_tool_name])
    value = serializers.JSONField()


class FunctionSerializer(StrictModelSerializer):
    userParameters = UserParameterSerializer(many=True, required=False, source="user_parameters")
    fixedParameters = FixedParameterSerializer(many=True, required=False, source="fixed_parameters")
    timeout = serializers.FloatField(
        source="timeout_seconds", required=False, min_value=0.5, max_value=30,
        help_text="Seconds to wait for the handler (default 5).",
    )
    handler_url = serializers.CharField(max_length=2000)
    filler_message = serializers.CharField(
        required=False, allow_blank=True, max_length=200,
        help_text="Said on a call while the handler is slow (blank: the bot's own filler line).",
    )

    class Meta:
        model = Function
        fields = [
            "id", "name", "description", "handler_url", "userParameters", "fixedParameters", "timeout",
            "filler_message", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}

    def validate_name(self, value):
        validate_tool_name(value)
        if value in RESERVED_NAMES:
            raise serializers.ValidationError(f"'{value}' is reserved for the platform's own call controls.")
        clash = Function.objects.filter(account=self.context["account"], name=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(f"This account already has a function named '{value}'.")
        return value

    def validate_handler_url(self, value):
        parts = urlsplit(value)
        allowed = ("https", "http") if settings.FUNCTION_ALLOW_HTTP else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            raise serializers.ValidationError(
                "Must be an https URL." if len(allowed) == 1 else "Must be an http or https URL."
            )
        return value

    def validate(self, attrs):
        user = [p["name"] for p in attrs.get("user_parameters", getattr(self.instance, "user_parameters", []))]
        fixed = [p["name"] for p in attrs.get("fixed_parameters", getattr(self.instance, "fixed_parameters", []))]
        errors = {}
        for field, names in (("userParameters", user), ("fixedParameters", fixed)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                errors[field] = [f"Duplicate parameter names: {', '.join(duplicates)}."]
        both = sorted(set(user) & set(fixed))
        if both:
            errors["fixedParameters"] = [f"Names also used by userParameters: {', '.join(both)}."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs
