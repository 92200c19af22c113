"""The OpenAPI document describes the API as it answers (tests/test_openapi.py holds it to that).

What the generator cannot see for itself is said here, once, for every operation:
- lists are pages: {"api_id", "meta", "<key>": [...]}, with `limit` and `offset`;
- PATCH answers 204 with no body;
- request bodies are JSON objects that refuse unknown keys (uploads are multipart);
- descriptions are written for API users: an action's own docstring, or a sentence about the action,
  never a class's internal docstring.
The answers every operation shares (api_id, errors, rate-limit headers) are added by openapi_hooks.py.
Views add what only they know: `list_keys` for their paged actions, `error_statuses` per action.
"""
from __future__ import annotations

import inspect

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema

from voicebots.api.pagination import MAX_LIMIT, MAX_OFFSET

from .serializers import StrictSerializer

UPLOAD_MEDIA_TYPE = "multipart/form-data"

_GENERIC = {
    "list": ("List {plural}", "The account's {plural}, newest first, a page at a time."),
    "create": ("Create {a} {label}", "Create {a} {label} in the account."),
    "retrieve": ("Get {a} {label}", "One {label} of the account, whole."),
    "partial_update": ("Change {a} {label}", "Change any subset of the {label}'s fields. Answers 204 with no body."),
    "destroy": ("Delete {a} {label}", "Delete the {label}."),
}


STREAM_EVENTS = ("retrieval", "first_token", "text", "tool_started", "tool_finished", "done", "error")


def server_sent_event(kinds) -> dict:
    """One server-sent event of a stream (`event: <kind>`, `data: <a JSON object>`)."""
    return {"type": "object", "required": ["event", "data"], "description": "Each event of the stream.",
            "properties": {"event": {"type": "string", "enum": list(kinds)},
                           "data": {"type": "string", "description": "A JSON object: see the README."}}}


class PageSchema:
    """Stands in for a paginator so that the generator describes our pages (api/pagination.py)."""

    def __init__(self, list_key: str) -> None:
        self.list_key = list_key

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {"type": "object", "required": ["api_id", "meta", self.list_key], "properties": {
            "api_id": {"type": "string", "format": "uuid"},
            "meta": {"$ref": "#/components/schemas/PageMeta"},
            self.list_key: schema,
        }}

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {"name": "limit", "in": "query", "required": False, "description": "Objects per page.",
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20}},
            {"name": "offset", "in": "query", "required": False, "description": "Objects to skip.",
             "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}},
        ]


def _own_doc(function) -> str:
    """The docstring a project view method wrote itself (inherited framework ones do not count)."""
    function = getattr(function, "__func__", function)
    module = getattr(function, "__module__", "") or ""
    doc = function.__doc__ if function is not None and module.startswith("voicebots.") else None
    return inspect.cleandoc(doc) if doc else ""


class ApiAutoSchema(AutoSchema):
    def _label(self) -> str:
        return getattr(self.view, "label", "") or type(self.view).__name__.removesuffix("ViewSet")

    def _action(self) -> str:
        return getattr(self.view, "action", None) or self.method.lower()

    def get_tags(self) -> list[str]:
        return [self._label()]

    def _generic(self, index: int) -> str:
        label = self._label()
        template = _GENERIC.get(self._action())
        if template is None:
            return ""
        article = "an" if label[:1].lower() in "aeiou" else "a"
        return template[index].format(label=label, plural=f"{label}s", a=article)

    def get_summary(self) -> str:
        return self._generic(0) or self._action().replace("_", " ").capitalize()

    def get_description(self) -> str:
        own = _own_doc(getattr(self.view, self._action(), None))
        return own or self._generic(1)

    def _get_paginator(self):
        key = getattr(self.view, "list_keys", {}).get(self._action()) or getattr(self.view, "list_key", "")
        return PageSchema(key) if key else None

    def map_parsers(self) -> list[str]:
        uploads = getattr(self.view, "rate_classes", {}).get(self._action()) == "upload"
        return [UPLOAD_MEDIA_TYPE] if uploads else ["application/json"]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if self._action() == "partial_update" and set(responses) == {"200"}:
            return {"204": {"description": "Changed. No body."}}
        return responses

    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        stream = response.get("content", {}).get("text/event-stream")
        if stream is not None:
            stream["schema"] = server_sent_event(STREAM_EVENTS)
        return response

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if "description" in schema and not type(serializer).__dict__.get("__doc__"):
            del schema["description"]  # an inherited docstring describes the base class, not these objects
        if direction == "request" and isinstance(serializer, StrictSerializer) and schema.get("type") == "object":
            schema["additionalProperties"] = False  # unknown keys are a 400
        return schema

    def error_statuses(self) -> tuple[int, ...]:
        declared = getattr(self.view, "error_statuses", {})
        return tuple(declared.get("*", ())) + tuple(declared.get(self._action(), ()))

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None:
            # Read by openapi_hooks.py, which adds the error answers, then removed.
            operation["x-error-statuses"] = list(self.error_statuses())
        return operation


class AccountBasicAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "voicebots.accounts.authentication.AccountBasicAuthentication"
    name = "accountBasic"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic",
                "description": "auth_id as the user name, auth_token as the password."}


class SettingsGroupFieldExtension(OpenApiSerializerFieldExtension):
    """A bot's settings object (`answer_llm`, `tts`, `stt`) is described by the serializer that validates it."""

    target_class = "voicebots.bots.serializers.SettingsGroupField"

    def map_serializer_field(self, auto_schema, direction):
        return auto_schema.resolve_serializer(self.target.group_serializer, direction).ref
