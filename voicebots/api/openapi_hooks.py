"""What every operation of the API answers besides its own result, added to the generated document.

Every JSON answer carries `api_id`; every answer carries the rate-limit headers; errors are the contract's
{"api_id", "error", "details"?} with the statuses each operation can give: 401/403 (credentials), 404
(paths naming an object), 400 (input), 413/415 (bodies), 429 (rate limits, with Retry-After), and those a
view declares (`error_statuses`, e.g. 409 for a state conflict, 502 when Plivo is down).
"""
from __future__ import annotations

import re

from .schema import server_sent_event

ERROR_MEANINGS = {
    400: "Bad parameters; `details` names each field and what is wrong with it.",
    401: "Missing or wrong credentials.",
    403: "These credentials do not belong to the account in the path.",
    404: "No such object in this account (another account's objects are 404 too).",
    409: "The request conflicts with the object's state or the account's setup; `error` says how.",
    413: "The request body is too large.",
    415: "Unsupported content or file type.",
    429: "Rate limited: wait `Retry-After` seconds.",
    502: "An outside service (the language model, Plivo) failed; try again later.",
    503: "A service this request needs is not configured or not reachable; `error` names it.",
}

RATE_HEADERS = {
    "X-RateLimit-Limit": ("Requests this account may make of this class of endpoint per window.", "integer"),
    "X-RateLimit-Remaining": ("Requests left in the current window.", "integer"),
    "X-RateLimit-Reset": ("Seconds until the current window ends.", "integer"),
}

COMPONENTS = {
    "Error": {"type": "object", "required": ["api_id", "error"], "properties": {
        "api_id": {"type": "string", "format": "uuid"},
        "error": {"type": "string", "description": "One sentence saying what went wrong."},
        "details": {"type": "object", "description": "For 400s: each field (nested ones dotted, list items "
                                                     "indexed) with its messages.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    }},
    "PageMeta": {"type": "object", "required": ["limit", "offset", "total_count", "next", "previous"], "properties": {
        "limit": {"type": "integer"}, "offset": {"type": "integer"}, "total_count": {"type": "integer"},
        "next": {"type": "string", "nullable": True, "description": "The next page's path and query, or null."},
        "previous": {"type": "string", "nullable": True, "description": "The previous page's, or null."},
    }},
    "ApiId": {"type": "object", "required": ["api_id"], "properties": {
        "api_id": {"type": "string", "format": "uuid", "description": "A fresh id of this answer."}}},
}

DESCRIPTION = """Voice bots, functions and knowledge for AI phone agents on Plivo.

Every path starts with `/v1/Account/{auth_id}/` and takes HTTP Basic credentials `auth_id:auth_token`.
Paths work with and without a trailing slash. Request bodies are JSON objects (uploads are multipart
`file`); an unknown or read-only key is a 400. Every JSON answer carries a fresh `api_id`; errors are
`{"api_id", "error", "details"?}`. Lists are pages `{"api_id", "meta", "<objects>": [...]}` with `limit`
(1-100) and `offset`.

Rate limits count per account and class of endpoint (reads, writes, chat, uploads, searches) in short
windows; every answer says where it stands in `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
`X-RateLimit-Reset`, and a 429 says when to try again in `Retry-After`."""

_PATH_PARAMETER = re.compile(r"{(\w+)}")


def _error(status: int, media_types: list[str]) -> dict:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    if "text/event-stream" in media_types:
        content["text/event-stream"] = {"schema": server_sent_event(["error"])}  # the error object as data
    response = {"description": ERROR_MEANINGS.get(status, "Error."), "content": content}
    if status == 429:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return response


def _statuses(path: str, operation: dict) -> set[int]:
    statuses = {401, 403, 429, *operation.pop("x-error-statuses", [])}
    if set(_PATH_PARAMETER.findall(path)) - {"auth_id"}:
        statuses.add(404)
    takes_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
    if "requestBody" in operation:
        statuses |= {400, 413, 415}
    elif takes_query:
        statuses.add(400)
    return statuses


def _with_api_id(media: dict, schemas: dict) -> None:
    schema = media.get("schema")
    if not schema or schema.get("type") in ("string", "array"):
        return
    shown = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in schema else schema
    if "api_id" in shown.get("properties", {}):
        return
    media["schema"] = {"allOf": [schema, {"$ref": "#/components/schemas/ApiId"}]}


def describe_shared_answers(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(COMPONENTS)
    components["headers"] = {
        **{name: {"description": text, "schema": {"type": kind}} for name, (text, kind) in RATE_HEADERS.items()},
        "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}},
    }
    rate_headers = {name: {"$ref": f"#/components/headers/{name}"} for name in RATE_HEADERS}
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            media_types = sorted({m for r in responses.values() for m in r.get("content", {})})
            for code, response in responses.items():
                if code.startswith("2") and "application/json" in response.get("content", {}):
                    _with_api_id(response["content"]["application/json"], components["schemas"])
            for status in sorted(_statuses(path, operation)):
                responses.setdefault(str(status), _error(status, media_types))
            for response in responses.values():
                response.setdefault("headers", {}).update(rate_headers)
    result.setdefault("info", {})["description"] = DESCRIPTION
    return result
