from rest_framework import serializers

from .models import Call, CallEvent, CallTurn


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

    class Meta:
        model = Call
        fields = ["id", "voicebot_id", "direction", "status", "call_uuid", "request_uuid", "from_", "to", "variables",
                  "answered_at", "ended_at", "duration_seconds", "hangup_cause", "end_reason", "created_at",
                  "updated_at"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["from"] = data.pop("from_")
        return data


class CallDetailSerializer(CallSerializer):
    turns = CallTurnSerializer(many=True, read_only=True)
    events = CallEventSerializer(many=True, read_only=True)

    class Meta(CallSerializer.Meta):
        fields = CallSerializer.Meta.fields + ["turns", "events"]
        read_only_fields = fields
