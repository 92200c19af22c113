"""OpenAPI description of the API's authentication (HTTP Basic with auth_id:auth_token)."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class AccountBasicAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "voicebots.accounts.authentication.AccountBasicAuthentication"
    name = "accountBasic"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "auth_id as the user name, auth_token as the password."}
