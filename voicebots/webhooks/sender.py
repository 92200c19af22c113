"""Sends one webhook delivery: a signed POST to a checked address, one deadline, no redirects followed.

No Django here. Every failure is an Outcome with a sentence saying what happened, never an exception.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from voicebots.core.outbound import RefusedAddress, checked_addresses, pinned_request_parts

from . import signing

USER_AGENT = "Voicebots-Webhooks/1.0"
MAX_EXCERPT_BYTES = 1000
MAX_ERROR_CHARS = 500
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_REFUSED = {
    RefusedAddress.INVALID: "The URL is not a valid http(s) address.",
    RefusedAddress.HTTP_NOT_ALLOWED: "The URL must use https.",
    RefusedAddress.NOT_FOUND: "The host name could not be resolved.",
    RefusedAddress.PRIVATE: "The URL points at a private, loopback or link-local address, which is refused.",
}


@dataclass(frozen=True)
class Message:
    url: str
    message_id: str
    body: bytes
    signing_secrets: list[str]  # the current secret first


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str
    duration_ms: float
    response_excerpt: str = ""


@dataclass(frozen=True)
class Policy:
    timeout_s: float
    allow_http: bool
    allow_private: bool


def headers_for(message: Message, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
        "webhook-id": message.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(message.signing_secrets, message.message_id, timestamp,
                                                      message.body),
    }


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"


async def send(client: httpx.AsyncClient, message: Message, policy: Policy) -> Outcome:
    """One attempt. `client` must come from core.outbound.webhook_client (pools kept apart per host)."""
    started = time.perf_counter()

    def outcome(delivered: bool, status: int | None, error: str = "", excerpt: str = "") -> Outcome:
        return Outcome(delivered, status, _short(error), (time.perf_counter() - started) * 1000, excerpt)

    try:
        async with asyncio.timeout(policy.timeout_s):  # one deadline for DNS, connecting and the answer
            url = httpx.URL(message.url)
            addresses = await checked_addresses(url, allow_http=policy.allow_http, allow_private=policy.allow_private)
            status, location, excerpt = await _post(client, url, addresses, message, policy.timeout_s)
    except TimeoutError:
        return outcome(False, None, f"No answer within {policy.timeout_s:g} s.")
    except RefusedAddress as refused:
        return outcome(False, None, _REFUSED[refused.reason])
    except httpx.InvalidURL:
        return outcome(False, None, _REFUSED[RefusedAddress.INVALID])
    except httpx.TimeoutException:
        return outcome(False, None, f"No answer within {policy.timeout_s:g} s.")
    except httpx.ConnectError as error:
        return outcome(False, None, f"Could not connect: {error or type(error).__name__}.")
    except httpx.HTTPError as error:
        return outcome(False, None, f"The connection failed: {error or type(error).__name__}.")
    if 200 <= status < 300:
        return outcome(True, status, excerpt=excerpt)
    if status in REDIRECT_STATUSES:
        where = f" to {location}" if location else ""
        return outcome(False, status, f"Answered HTTP {status}, a redirect{where}; redirects are not followed: "
                                      "use the final URL.", excerpt)
    return outcome(False, status, f"Answered HTTP {status}.", excerpt)


async def _post(client: httpx.AsyncClient, url: httpx.URL, addresses: list[str], message: Message,
                timeout_s: float) -> tuple[int, str, str]:
    """Status, Location header and the start of the answer; tries each checked address in turn."""
    host_header, extensions = pinned_request_parts(url)
    headers = {**headers_for(message, int(time.time())), **host_header}
    last_error: httpx.ConnectError | None = None
    for address in addresses:
        try:
            async with client.stream("POST", url.copy_with(host=address), content=message.body, headers=headers,
                                     extensions=extensions, timeout=timeout_s, follow_redirects=False) as response:
                excerpt = bytearray()
                async for chunk in response.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= MAX_EXCERPT_BYTES:
                        break  # the status is what counts; the rest is not worth waiting for
                text = bytes(excerpt[:MAX_EXCERPT_BYTES]).decode("utf-8", "replace")
                return response.status_code, response.headers.get("location", ""), text
        except httpx.ConnectError as error:  # e.g. an IPv6 address without a route: try the next one
            last_error = error
    assert last_error is not None
    raise last_error
