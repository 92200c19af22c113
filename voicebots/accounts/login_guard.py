"""Brute-force protection of the admin sign-in: a lockout per user name and client address.

After ADMIN_LOGIN_MAX_FAILURES failed sign-ins for one user name from one address, that pair is refused for
ADMIN_LOGIN_LOCKOUT_SECONDS (counted from the first failure) with a message saying so; a successful sign-in
forgets the failures. Keyed on the pair, so a stranger's guessing cannot lock a user out everywhere. The
counts live in the cache (Redis), shared by every web process.
"""
from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError


def client_address(request) -> str:
    """The client's address: behind a trusted proxy, the one the proxy saw (last X-Forwarded-For entry)."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.TRUST_PROXY_HEADERS and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def _keys(username: str, address: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()[:32]
    return f"login-failures:{digest}", f"login-locked:{digest}"


def locked_for(username: str, address: str) -> float:
    """Seconds until this user name may sign in again from this address (0: now)."""
    until = cache.get(_keys(username, address)[1])
    return max(0.0, until - time.time()) if until else 0.0


def record_failure(username: str, address: str) -> None:
    failures, locked = _keys(username, address)
    window = settings.ADMIN_LOGIN_LOCKOUT_SECONDS
    # The first failure opens a window; reaching the limit within it locks the pair for a window.
    if cache.add(failures, 1, timeout=window):
        count = 1
    else:
        try:
            count = cache.incr(failures)
        except ValueError:  # the window closed in between
            count = 1 if cache.add(failures, 1, timeout=window) else 0
    if count >= settings.ADMIN_LOGIN_MAX_FAILURES:
        cache.set(locked, time.time() + window, timeout=window)
        cache.delete(failures)


def forget_failures(username: str, address: str) -> None:
    cache.delete_many(_keys(username, address))


class GuardedAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked_out": "Too many failed sign-ins for this user from your address. Try again in %(minutes)s minutes.",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request) if self.request is not None else ""
        wait = locked_for(username, address)
        if wait:  # refused without checking the password, so guessing learns nothing meanwhile
            raise ValidationError(self.error_messages["locked_out"], code="locked_out",
                                  params={"minutes": max(1, math.ceil(wait / 60))})
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if error.code == "invalid_login":
                record_failure(username, address)
            raise
        forget_failures(username, address)
        return cleaned
