from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from voicebots.api.serializers import StrictModelSerializer
from voicebots.core.outbound import literal_address_problem

from .models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint


class EventsField(serializers.ListField):
    """Event names, each one of EVENT_TYPES; duplicates dropped."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(max_length=64), allow_empty=False, max_length=len(EVENT_TYPES),
                         **kwargs)
        self.error_messages["empty"] = f"Name at least one event: {', '.join(EVENT_TYPES)}."

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > len(EVENT_TYPES):
            data = list(dict.fromkeys(data))  # repeats are not an error, just redundant
        events = super().to_internal_value(data)
        unknown = [event for event in events if event not in EVENT_TYPES]
        if unknown:
            names = ", ".join(f"'{event}'" for event in unknown)
            raise serializers.ValidationError(
                f"{names} {'is not an event' if len(unknown) == 1 else 'are not events'}; "
                f"use any of {', '.join(EVENT_TYPES)}.")
        return list(dict.fromkeys(events))


class WebhookEndpointSerializer(StrictModelSerializer):
    url = serializers.CharField(max_length=2000)
    events = EventsField()

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "description", "enabled", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_url(self, value):
        problem = literal_address_problem(value, allow_http=settings.WEBHOOK_ALLOW_HTTP,
                                          allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(source="event.type", read_only=True)
    event_id = serializers.UUIDField(source="event.id", read_only=True)
    webhook_id = serializers.CharField(source="event.message_id", read_only=True,
                                       help_text="The webhook-id header: the same on every try.")

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "event_id", "webhook_id", "status", "attempts", "last_status_code", "last_error",
                  "next_attempt_at", "delivered_at", "created_at"]
        read_only_fields = fields
