"""Keeps the API's error contract for what happens before or outside DRF views.

Unknown /v1/ paths, Django-level 404/405/413/500 pages, oversized bodies and NUL characters in the query
(PostgreSQL takes none) all become the JSON error body instead of an HTML page or a 500. API answers get
their rate-limit headers here (rate_limits.py counts).
"""
from __future__ import annotations

import logging

from django.conf import settings

from .errors import API_PREFIX, error_response

logger = logging.getLogger(__name__)

# Room for multipart framing and the other form fields around an upload.
_MULTIPART_OVERHEAD = 64 * 1024

_MESSAGES = {
    400: "Bad request.",
    403: "Forbidden.",
    404: "No such resource: check the path.",
    405: "Method not allowed on this path.",
    413: "The request body is too large.",
    500: "An internal error occurred; it has been logged.",
}


class ApiRequestGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        too_large = self._body_too_large(request)
        if too_large:
            return error_response(413, too_large)
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            return error_response(400, "The query contains a NUL character (%00), which no parameter takes.")
        response = self.get_response(request)
        response = self._json_error(response)
        counted = getattr(request, "rate_limit", None)  # set by the rate limiter (rate_limits.py)
        if counted is not None:
            for name, value in counted.headers().items():
                response[name] = value
        return response

    @staticmethod
    def _json_error(response):
        if response.status_code in _MESSAGES and not response.get("Content-Type", "").startswith(
            ("application/json", "application/xml", "text/xml", "text/event-stream")  # already the API's answer
        ):
            return error_response(response.status_code, _MESSAGES[response.status_code])
        return response

    def process_exception(self, request, exception):
        if request.path.startswith(API_PREFIX):
            logger.exception("Unhandled error on %s", request.path)
            return error_response(500, _MESSAGES[500])
        return None

    @staticmethod
    def _body_too_large(request) -> str | None:
        """Refuse a body by its declared size before reading any of it."""
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
        if length > limit + _MULTIPART_OVERHEAD:
            return f"The request body is too large: uploads are limited to {limit // (1024 * 1024)} MB."
        content_type = request.META.get("CONTENT_TYPE", "")
        if not content_type.startswith("multipart/") and length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return "The request body is too large."
        return None
