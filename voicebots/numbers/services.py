"""The account's Plivo numbers, and pointing them at bots (inbound calls) through one application per bot.

Plivo is the record of which numbers exist; we keep only what we changed, so that unassigning gives a
number back the application it had before.
"""
from __future__ import annotations

import re

from django.conf import settings
from django.db import transaction

from voicebots.bots.public_urls import account_path, inbound_call_url
from voicebots.providers.plivo_api import PlivoApiError
from voicebots.telephony.rest import plivo_api_for

from .models import BotApplication, NumberAssignment

_APPLICATION_ID = re.compile(r"/Application/([^/]+)/?$")


class NotAssigned(Exception):
    pass


def plivo_digits(number: str) -> str | None:
    """A number as Plivo writes it (digits with the country code), from '+14155550100' or '14155550100'."""
    digits = number.strip().lstrip("+")
    return digits if re.fullmatch(r"[1-9]\d{6,14}", digits) else None


def application_id(plivo_number: dict) -> str:
    match = _APPLICATION_ID.search(plivo_number.get("application") or "")
    return match.group(1) if match else ""


def describe(plivo_number: dict, assignment: NumberAssignment | None) -> dict:
    """A number as our API shows it: E.164, a few of Plivo's fields, and the bot it answers for."""
    return {
        "number": "+" + str(plivo_number.get("number", "")),
        "alias": plivo_number.get("alias") or "",
        "number_type": plivo_number.get("number_type") or "",
        "country": plivo_number.get("country") or "",
        "region": plivo_number.get("region") or "",
        "voice_enabled": bool(plivo_number.get("voice_enabled")),
        "application_id": application_id(plivo_number),
        "voicebot_id": str(assignment.voicebot_id) if assignment and assignment.voicebot_id else None,
    }


def _assignments(account, numbers: list[str]) -> dict[str, NumberAssignment]:
    return {a.number: a for a in NumberAssignment.objects.filter(account=account, number__in=numbers)}


class PlivoNumbers:
    """The account's numbers as the API's paginate() reads a queryset: a count and slices."""

    def __init__(self, account) -> None:
        self.account = account
        self.api = plivo_api_for(account)

    def count(self) -> int:
        return self.api.list_numbers(offset=0, limit=1)[1]

    def __getitem__(self, page: slice) -> list[dict]:
        numbers, _ = self.api.list_numbers(offset=page.start, limit=page.stop - page.start)
        assigned = _assignments(self.account, [str(n.get("number")) for n in numbers])
        return [describe(n, assigned.get(str(n.get("number")))) for n in numbers]


def get_number(account, number: str) -> dict:
    found = plivo_api_for(account).get_number(number)
    return describe(found, _assignments(account, [number]).get(number))


def hangup_url(bot) -> str:
    return f"{settings.PUBLIC_BASE_URL}{account_path(bot.account.auth_id)}/Voicebot/{bot.id}/hangup"


def bot_application(api, bot) -> str:
    """The id of the bot's Plivo application, created or brought up to date (answer and hangup URLs)."""
    urls = {"answer_url": inbound_call_url(bot), "hangup_url": hangup_url(bot)}
    known = BotApplication.objects.filter(voicebot=bot).first()
    if known is not None:
        try:
            api.update_application(known.app_id, **urls)
            return known.app_id
        except PlivoApiError as error:
            if error.kind != PlivoApiError.NOT_FOUND:
                raise
            known.delete()  # deleted in Plivo's console: make a new one
    app_id = api.create_application(name=f"voicebot-{bot.id}", **urls)
    BotApplication.objects.create(account=bot.account, voicebot=bot, app_id=app_id)
    return app_id


def assign(account, number: str, bot) -> NumberAssignment:
    """Point the number at the bot: inbound calls to it are answered by the bot from now on."""
    api = plivo_api_for(account)
    current = api.get_number(number)  # an unknown number fails here, before anything changes
    app_id = bot_application(api, bot)
    with transaction.atomic():
        assignment = NumberAssignment.objects.select_for_update().filter(account=account, number=number).first()
        if assignment is None:  # remember what it had before we first touched it
            assignment = NumberAssignment(account=account, number=number, previous_app_id=application_id(current))
        api.link_number(number, app_id)
        assignment.voicebot, assignment.app_id = bot, app_id
        assignment.save()
    return assignment


def unassign(account, number: str) -> None:
    """Give the number back the application it had before it was assigned to a bot."""
    with transaction.atomic():
        assignment = NumberAssignment.objects.select_for_update().filter(account=account, number=number).first()
        if assignment is None:
            raise NotAssigned(f"+{number} is not assigned to a voicebot.")
        plivo_api_for(account).link_number(number, assignment.previous_app_id or None)
        assignment.delete()
