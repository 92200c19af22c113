from rest_framework import serializers

from voicebots.api.serializers import StrictSerializer

from .models import Account

MAX_RETENTION_DAYS = 36500


class AccountSerializer(serializers.ModelSerializer):
    """The account as GET shows it: no secret, only whether the Plivo token is set."""

    has_plivo_auth_token = serializers.SerializerMethodField()

    class Meta:
        model = Account
        fields = ["auth_id", "name", "plivo_auth_id", "has_plivo_auth_token", "recording_retention_days",
                  "created_at", "updated_at"]
        read_only_fields = fields

    def get_has_plivo_auth_token(self, account) -> bool:
        return bool(account.plivo_auth_token)


class AccountChangesSerializer(StrictSerializer):
    """PATCH: any of these; the Plivo pair is checked against Plivo before it is stored."""

    name = serializers.CharField(required=False, max_length=200)
    plivo_auth_id = serializers.CharField(required=False, allow_blank=True, max_length=64, trim_whitespace=True)
    plivo_auth_token = serializers.CharField(required=False, allow_blank=True, max_length=256, write_only=True,
                                             trim_whitespace=True)
    recording_retention_days = serializers.IntegerField(required=False, min_value=0, max_value=MAX_RETENTION_DAYS,
                                                        help_text="0 keeps recordings forever.")

    def validate(self, attrs):
        account = self.context["account"]
        plivo_id = attrs.get("plivo_auth_id", account.plivo_auth_id)
        plivo_token = attrs.get("plivo_auth_token", account.plivo_auth_token)
        if bool(plivo_id) != bool(plivo_token):
            missing = "plivo_auth_token" if plivo_id else "plivo_auth_id"
            raise serializers.ValidationError(
                {missing: ["Set plivo_auth_id and plivo_auth_token together (or clear both)."]})
        return attrs
