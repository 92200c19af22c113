"""Calls Functions (customer webhooks) as the bot's tools: a signed JSON POST behind an address guard,
with time and size caps. Every failure becomes a result sentence the model can talk about, never an
exception, so a broken handler never ends a call.

No Django here: callers pass plain config values (FunctionConfig, the account's webhook secret, settings).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import httpx

from voicebots.conversation.config import ToolSpec, tool_spec_from_parameters
from voicebots.conversation.ports import ToolCall, ToolResult
from voicebots.core.outbound import RefusedAddress, checked_addresses, pinned_request_parts, webhook_client

logger = logging.getLogger(__name__)

USER_AGENT = "Voicebots-Functions/1.0"
TIMESTAMP_HEADER = "X-Voicebots-Timestamp"
SIGNATURE_HEADER = "X-Voicebots-Signature"
CALL_FIELDS = ("call_uuid", "from", "to", "direction")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
MAX_RESULT_CHARS = 8000
MAX_ERROR_DETAIL_CHARS = 300
DEFAULT_TIMEOUT_S = 5.0


# --- Signing -----------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`, the X-Voicebots-Signature value."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str | int, body: bytes | str, signature: str,
                     tolerance_s: float = 300, *, now: float | None = None) -> bool:
    """What a handler runs on X-Voicebots-Timestamp, the raw body and X-Voicebots-Signature. The
    tolerance rejects replays of old requests."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance_s:
        return False
    raw = body.encode() if isinstance(body, str) else body
    return hmac.compare_digest(sign(secret, sent_at, raw), signature)


# --- Calling -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunctionResult:
    content: str
    is_error: bool
    status: int | None  # the handler's HTTP status, when it answered
    duration_ms: float

    def to_tool_result(self, call_id: str) -> ToolResult:
        return ToolResult(call_id, self.content, self.is_error, self.duration_ms)


class _Failure(Exception):
    """A failed call; the message is the sentence for the model."""

    def __init__(self, sentence: str, status: int | None = None) -> None:
        super().__init__(sentence)
        self.status = status


_REFUSED = {
    RefusedAddress.INVALID: "The {service} address is not a valid web address.",
    RefusedAddress.HTTP_NOT_ALLOWED: "The {service} address must use https.",
    RefusedAddress.NOT_FOUND: "The {service} address could not be found.",
    RefusedAddress.PRIVATE: "The {service} address is on a private network, which is not allowed.",
}


def _service(function_name: str) -> str:
    return function_name.replace("_", " ").replace("-", " ").strip() + " service"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [truncated]"


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port


def build_payload(*, function_name: str, user_params: Mapping[str, Any], fixed_params: Sequence[Mapping[str, Any]],
                  voicebot_id: str, session_id: str, call_info: Mapping[str, Any] | None) -> bytes:
    """The webhook body: user parameters plus fixed ones (fixed win, the model cannot override them)."""
    parameters = dict(user_params)
    parameters.update({fixed["name"]: fixed.get("value") for fixed in fixed_params})
    call = None if call_info is None else {name: call_info.get(name) for name in CALL_FIELDS}
    payload = {"function": function_name, "parameters": parameters, "voicebot_id": str(voicebot_id),
               "session_id": session_id, "call": call}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _reply_content(service: str, status: int, content_type: str, data: bytes) -> tuple[str, bool]:
    text = data.decode("utf-8", "replace")
    if not 200 <= status < 300:
        detail = _truncate(" ".join(text.split()), MAX_ERROR_DETAIL_CHARS)
        sentence = f"The {service} returned an error (HTTP {status})."
        return (f"{sentence} {detail}" if detail else sentence), True
    if not text.strip():
        return f"The {service} completed and returned no content.", False
    if "json" in content_type:
        try:
            text = json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False)
        except ValueError:  # mislabelled: pass it on as text
            pass
    return _truncate(text, MAX_RESULT_CHARS), False


class FunctionRunner:
    """POSTs signed JSON to handler URLs.

    The host is resolved first and refused if any address is not public (unless `allow_private`), then
    the request is sent to that validated IP with the original Host header and TLS server name, so a
    second DNS answer (rebinding) cannot redirect it. Redirects are followed only within the same
    scheme, host and port (at most three), re-checked each time. Plain http needs `allow_http`.
    """

    def __init__(self, webhook_secret: str, *, allow_private: bool, allow_http: bool,
                 max_response_bytes: int = 64 * 1024, client: httpx.AsyncClient | None = None) -> None:
        self._secret = webhook_secret
        self._allow_private = allow_private
        self._allow_http = allow_http
        self._max_response_bytes = max_response_bytes
        self._owns_client = client is None
        # Pass a client made by webhook_client(): any other one pools connections by the pinned IP.
        self._client = client or webhook_client()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def call(self, *, url: str, function_name: str, user_params: Mapping[str, Any],
                   fixed_params: Sequence[Mapping[str, Any]], voicebot_id: str, session_id: str,
                   call_info: Mapping[str, Any] | None, timeout_s: float) -> FunctionResult:
        started = time.perf_counter()
        service = _service(function_name)
        body = build_payload(function_name=function_name, user_params=user_params, fixed_params=fixed_params,
                             voicebot_id=voicebot_id, session_id=session_id, call_info=call_info)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",  # the size cap counts what is on the wire
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        status: int | None = None
        try:
            async with asyncio.timeout(timeout_s):  # one deadline for DNS, redirects and the body
                status, content_type, data = await self._post(httpx.URL(url), body, headers, timeout_s, service)
            content, is_error = _reply_content(service, status, content_type, data)
        except (TimeoutError, httpx.TimeoutException):
            content, is_error = f"The {service} did not answer in time.", True
        except _Failure as failure:
            content, is_error, status = str(failure), True, failure.status
        except httpx.InvalidURL:
            content, is_error = f"The {service} address is not a valid web address.", True
        except httpx.HTTPError as exc:  # refused, reset, TLS verification failed...
            logger.warning("Function %s could not be reached: %r", function_name, exc)
            content, is_error = f"The {service} could not be reached.", True
        except Exception:  # the contract: a function failure never ends a call
            logger.exception("Function %s failed unexpectedly", function_name)
            content, is_error = f"The {service} failed unexpectedly.", True
        return FunctionResult(content, is_error, status, (time.perf_counter() - started) * 1000)

    async def _post(self, url: httpx.URL, body: bytes, headers: dict[str, str], timeout_s: float,
                    service: str) -> tuple[int, str, bytes]:
        method, content = "POST", body
        for _ in range(MAX_REDIRECTS + 1):
            addresses = await self._checked_addresses(url, service)
            status, response_headers, data = await self._send(url, addresses, method, content, headers,
                                                              timeout_s, service)
            location = response_headers.get("location")
            if status not in REDIRECT_STATUSES or not location:
                return status, response_headers.get("content-type", ""), data
            target = url.join(location)
            if _origin(target) != _origin(url):
                raise _Failure(f"The {service} redirected to another address, which is not allowed.", status)
            if status == 303:  # "see other": fetch the result, don't repeat the call
                method, content = "GET", None
            url = target
        raise _Failure(f"The {service} redirected too many times.", status)

    async def _checked_addresses(self, url: httpx.URL, service: str) -> list[str]:
        try:
            return await checked_addresses(url, allow_http=self._allow_http, allow_private=self._allow_private)
        except RefusedAddress as refused:
            raise _Failure(_REFUSED[refused.reason].format(service=service)) from None

    async def _send(self, url: httpx.URL, addresses: list[str], method: str, content: bytes | None,
                    headers: dict[str, str], timeout_s: float, service: str) -> tuple[int, httpx.Headers, bytes]:
        # The Host header, TLS server name (and certificate check) stay the host name although we dial an IP.
        host_header, extensions = pinned_request_parts(url)
        pinned_headers = {**headers, **host_header}
        last_error: httpx.ConnectError | None = None
        for address in addresses:
            try:
                return await self._exchange(url.copy_with(host=address), method, content, pinned_headers,
                                            extensions, timeout_s, service)
            except httpx.ConnectError as exc:  # e.g. an IPv6 address without a route: try the next one
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _exchange(self, url: httpx.URL, method: str, content: bytes | None, headers: dict[str, str],
                        extensions: dict[str, Any], timeout_s: float, service: str) -> tuple[int, httpx.Headers, bytes]:
        too_large = f"The {service} response was too large."
        async with self._client.stream(method, url, content=content, headers=headers, extensions=extensions,
                                       timeout=timeout_s, follow_redirects=False) as response:
            status = response.status_code
            if status in REDIRECT_STATUSES:
                return status, response.headers, b""
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_response_bytes:
                raise _Failure(too_large, status)
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > self._max_response_bytes:
                    raise _Failure(too_large, status)
            return status, response.headers, bytes(data)


# --- The engine's ToolRunner port ---------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionConfig:
    """A Function as plain values (the Django model's fields)."""

    name: str
    description: str
    handler_url: str
    user_parameters: Sequence[Mapping[str, Any]] = ()
    fixed_parameters: Sequence[Mapping[str, Any]] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S

    def tool_spec(self) -> ToolSpec:
        """What the model sees: fixed parameters are never part of it."""
        return tool_spec_from_parameters(self.name, self.description, self.user_parameters)


class FunctionToolRunner:
    """The engine's ToolRunner for one conversation: finds the Function by tool name and calls it."""

    def __init__(self, runner: FunctionRunner, functions: Iterable[FunctionConfig], *, voicebot_id: str,
                 session_id: str, call_info: Mapping[str, Any] | None = None) -> None:
        self._runner = runner
        self._functions = {function.name: function for function in functions}
        self._voicebot_id = voicebot_id
        self._session_id = session_id
        self._call_info = call_info

    def tool_specs(self) -> list[ToolSpec]:
        return [function.tool_spec() for function in self._functions.values()]

    async def run(self, call: ToolCall) -> ToolResult:
        function = self._functions.get(call.name)
        if function is None:
            return ToolResult(call.id, f"There is no tool named {call.name}.", is_error=True)
        result = await self._runner.call(
            url=function.handler_url, function_name=function.name, user_params=call.input,
            fixed_params=function.fixed_parameters, voicebot_id=self._voicebot_id, session_id=self._session_id,
            call_info=self._call_info, timeout_s=function.timeout_s)
        return result.to_tool_result(call.id)
