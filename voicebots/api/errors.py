"""The error body of the contract: {"api_id", "error": "<one sentence>", "details"?: {field: [messages]}}."""
from __future__ import annotations

import logging
import uuid

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


class UnsupportedFileType(exceptions.APIException):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_detail = "Unsupported file type."


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with an existing object."


def error_body(message: str, details: dict | None = None, **extra) -> dict:
    body = {"api_id": str(uuid.uuid4()), "error": message}
    if details:
        body["details"] = details
    body.update(extra)
    return body


def error_response(status_code: int, message: str, details: dict | None = None) -> JsonResponse:
    return JsonResponse(error_body(message, details), status=status_code)


def flatten_details(detail) -> dict[str, list[str]]:
    """DRF validation detail -> {"field": ["message", ...]}, nested fields joined with dots."""
    out: dict[str, list[str]] = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, sub in value.items():
                if isinstance(key, int) or str(key).isdigit():
                    name = f"{prefix}[{key}]"
                elif key == "non_field_errors" and prefix:
                    name = prefix  # an error about the nested value as a whole
                else:
                    name = f"{prefix}.{key}" if prefix else str(key)
                walk(name, sub)
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, sub in enumerate(value):
                if sub:
                    walk(f"{prefix}[{index}]", sub)
        else:
            messages = value if isinstance(value, list) else [value]
            out.setdefault(prefix or "non_field_errors", []).extend(str(m) for m in messages)

    walk("", detail)
    return out


def _summary(details: dict[str, list[str]]) -> str:
    field, messages = next(iter(details.items()))
    where = "" if field == "non_field_errors" else f"{field}: "
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"Invalid request parameters. {where}{messages[0]}{more}"


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()

    if isinstance(exc, exceptions.ValidationError):
        details = flatten_details(exc.detail)
        response = Response(error_body(_summary(details), details), status=400)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        if isinstance(detail, (dict, list)):
            message = next(iter(flatten_details(detail).values()))[0]
        else:
            message = str(detail)
        response = Response(error_body(message), status=exc.status_code)
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            auth_header = context["view"].get_authenticate_header(context["request"])
            if auth_header:
                response["WWW-Authenticate"] = auth_header
            else:
                response.status_code = 403
        counted = getattr(context["request"], "rate_limit", None)
        if isinstance(exc, exceptions.Throttled) and counted is not None:
            response.data = error_body(counted.refusal())
            response["Retry-After"] = str(counted.reset_s)
        elif getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
    else:
        logger.exception("Unhandled error in %s", context["view"].__class__.__name__)
        response = Response(error_body("An internal error occurred; it has been logged."), status=500)
    set_rollback()
    return response
