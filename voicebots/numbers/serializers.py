from rest_framework import serializers

from voicebots.api.serializers import StrictSerializer
from voicebots.bots.models import Voicebot


class NumberSerializer(serializers.Serializer):
    """A Plivo number of the account, and the bot it answers for (read-only)."""

    number = serializers.CharField()
    alias = serializers.CharField()
    number_type = serializers.CharField()
    country = serializers.CharField()
    region = serializers.CharField()
    voice_enabled = serializers.BooleanField()
    application_id = serializers.CharField()
    voicebot_id = serializers.UUIDField(allow_null=True)


class NumberUpdateSerializer(StrictSerializer):
    """PATCH Number/{number}/: {"voicebot_id": "<id>"} assigns the number to a bot, null unassigns it."""

    voicebot_id = serializers.UUIDField(allow_null=True)

    def validate_voicebot_id(self, value):
        if value is None:
            return None
        bot = Voicebot.objects.select_related("account").filter(account=self.context["account"], pk=value).first()
        if bot is None:
            raise serializers.ValidationError(f"No Voicebot with id {value} in this account.")
        return bot
