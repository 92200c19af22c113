"""The Voicebot's `analysis` settings in the API:
{"summary": bool (default true), "success_criteria": text, "extraction_schema": JSON Schema of an object | null}."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from voicebots.api.serializers import StrictSerializer

from .schema import schema_problem

MAX_CRITERIA_CHARS = 2000


class AnalysisSettingsSerializer(StrictSerializer):
    summary = serializers.BooleanField(required=False, default=True)
    success_criteria = serializers.CharField(required=False, default="", allow_blank=True,
                                             max_length=MAX_CRITERIA_CHARS)
    extraction_schema = serializers.JSONField(required=False, default=None, allow_null=True)

    def validate_extraction_schema(self, value):
        if value is not None:
            problem = schema_problem(value)
            if problem:
                raise serializers.ValidationError(problem)
        return value


def normalized(value: dict | None) -> dict:
    """Stored settings with every key present (older rows may hold {})."""
    value = value or {}
    return {"summary": value.get("summary", True), "success_criteria": value.get("success_criteria", ""),
            "extraction_schema": value.get("extraction_schema")}


@extend_schema_field(AnalysisSettingsSerializer)
class AnalysisSettingsField(serializers.Field):
    """On PATCH, the keys given replace those keys only."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object with summary, success_criteria, extraction_schema.")
        instance = getattr(self.parent, "instance", None)
        current = normalized(instance.analysis) if instance is not None else {}
        settings = AnalysisSettingsSerializer(data={**current, **data})
        if not settings.is_valid():
            raise serializers.ValidationError(settings.errors)
        return dict(settings.validated_data)

    def to_representation(self, value):
        return normalized(value)
