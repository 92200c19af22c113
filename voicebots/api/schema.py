"""OpenAPI description of the API's authentication (HTTP Basic with auth_id:auth_token)."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension


class AccountBasicAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "voicebots.accounts.authentication.AccountBasicAuthentication"
    name = "accountBasic"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "auth_id as the user name, auth_token as the password."}


class SettingsGroupFieldExtension(OpenApiSerializerFieldExtension):
    """A bot's settings object (`answer_llm`, `tts`, `stt`) is described by the serializer that validates it."""

    target_class = "voicebots.bots.serializers.SettingsGroupField"

    def map_serializer_field(self, auto_schema, direction):
        return auto_schema.resolve_serializer(self.target.group_serializer, direction).ref
