"""Absolute URLs handed to Plivo, built from PUBLIC_BASE_URL."""
from urllib.parse import urlencode

from django.conf import settings


def _base(scheme_for_ws: bool = False) -> str:
    base = settings.PUBLIC_BASE_URL
    if scheme_for_ws:
        base = "wss" + base[len("https"):] if base.startswith("https") else "ws" + base[len("http"):]
    return base


def account_path(auth_id: str) -> str:
    return f"/v1/Account/{auth_id}"


def inbound_call_url(bot) -> str:
    return f"{_base()}{account_path(bot.account.auth_id)}/Voicebot/{bot.id}/inbound_call"


def websocket_url(bot) -> str:
    query = urlencode({"token": bot.stream_secret})
    return f"{_base(scheme_for_ws=True)}{account_path(bot.account.auth_id)}/Voicebot/{bot.id}/connect?{query}"
