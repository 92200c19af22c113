"""Outgoing HTTP to customers' servers (function handlers, webhook endpoints): the address guard and a
client that dials a checked address.

The host is resolved first and refused if any of its addresses is not public (unless allowed); the request
then goes to that checked IP with the original Host header and TLS server name, so a second DNS answer
(rebinding) cannot send it elsewhere. No Django here: callers pass their settings.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import OrderedDict

import httpx

from .tls import CLIENT_CONTEXT

MAX_POOLED_HOSTS = 256


class RefusedAddress(Exception):
    """The URL may not be called; `reason` is one of the class constants."""

    INVALID = "invalid"  # not an http(s) URL with a host
    HTTP_NOT_ALLOWED = "http"  # plain http while only https is allowed
    NOT_FOUND = "not_found"  # the host name does not resolve
    PRIVATE = "private"  # a private, loopback, link-local... address

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, multicast, reserved and unspecified addresses, including
    IPv4 addresses wrapped in IPv6 (::ffff:10.0.0.1, 6to4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates += [embedded for embedded in (ip.ipv4_mapped, ip.sixtofour) if embedded is not None]
    return all(_is_public(candidate) for candidate in candidates)


def literal_address_problem(url: str, *, allow_http: bool, allow_private: bool) -> str | None:
    """What is wrong with `url` that can be told without DNS (for validating input), or None."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "Not a valid URL."
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "Must be an http(s) URL with a host."
    if parsed.scheme == "http" and not allow_http:
        return "Must use https."
    if allow_private:
        return None
    host = parsed.host
    if host == "localhost" or host.endswith(".localhost"):
        return "Must not point at this server (localhost)."
    try:
        private = not is_public_address(host)
    except ValueError:  # a host name: checked when it is called
        return None
    return "Must not be a private, loopback or link-local address." if private else None


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in resolver order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


async def checked_addresses(url: httpx.URL, *, allow_http: bool, allow_private: bool) -> list[str]:
    """The addresses to dial for `url`; RefusedAddress when it may not be called."""
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise RefusedAddress(RefusedAddress.INVALID)
    if url.scheme == "http" and not allow_http:
        raise RefusedAddress(RefusedAddress.HTTP_NOT_ALLOWED)
    try:
        addresses = await resolve(url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError):
        addresses = []
    if not addresses:
        raise RefusedAddress(RefusedAddress.NOT_FOUND)
    if not allow_private and not all(is_public_address(address) for address in addresses):
        raise RefusedAddress(RefusedAddress.PRIVATE)
    return addresses


def pinned_request_parts(url: httpx.URL) -> tuple[dict[str, str], dict[str, str]]:
    """The Host header and TLS server name that keep a request to a checked IP addressed to `url`'s host."""
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    return {"Host": url.netloc.decode("ascii")}, extensions


class _PerHostTransport(httpx.AsyncBaseTransport):
    """One connection pool per (scheme, Host header).

    Requests go to a pinned IP address, and a pool keyed by IP alone would let a TLS connection made
    for one host name (its SNI and certificate) carry requests for another name on the same IP, such
    as two customers' handlers behind one CDN address.
    """

    def __init__(self, verify: ssl.SSLContext | bool = CLIENT_CONTEXT, max_hosts: int = MAX_POOLED_HOSTS) -> None:
        self._pools: OrderedDict[tuple[str, str], httpx.AsyncHTTPTransport] = OrderedDict()
        self._verify = verify
        self._max_hosts = max_hosts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.scheme, request.headers.get("host", ""))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = httpx.AsyncHTTPTransport(verify=self._verify)
            if len(self._pools) > self._max_hosts:  # least recently used host; it reconnects if needed
                await self._pools.popitem(last=False)[1].aclose()
        else:
            self._pools.move_to_end(key)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()


def webhook_client(verify: ssl.SSLContext | bool = CLIENT_CONTEXT) -> httpx.AsyncClient:
    """A client for pinned requests: pools kept apart per host name, and no proxies from the environment
    (a proxy would dial the host itself, bypassing the address check)."""
    return httpx.AsyncClient(transport=_PerHostTransport(verify), trust_env=False)
