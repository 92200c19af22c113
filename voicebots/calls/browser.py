"""Records of browser calls (the voice playground): opened within the account's limit of calls at once."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from voicebots.accounts.models import Account
from voicebots.webhooks import events as webhook_events

from .models import Call
from .services import record_event

# A browser call whose process died never gets its end written; past its time limit (and this margin) it no
# longer counts against the account's calls at once.
STALE_MARGIN_S = 60


class TooManyBrowserCalls(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"This account already has {limit} browser call{'s' if limit != 1 else ''} in progress; "
                         "hang one up and try again.")


def live_browser_calls(account: Account) -> int:
    since = timezone.now() - timedelta(seconds=settings.BROWSER_CALL_MAX_SECONDS + STALE_MARGIN_S)
    return Call.objects.filter(account=account, direction=Call.Direction.WEB, status=Call.Status.IN_PROGRESS,
                               created_at__gte=since).count()


@transaction.atomic
def open_browser_call(bot, user) -> Call:
    """The record of a new browser call with `bot`, started by `user`; TooManyBrowserCalls past the limit."""
    Account.objects.select_for_update().filter(pk=bot.account_id).first()  # one opening at a time per account
    limit = settings.BROWSER_CALLS_PER_ACCOUNT
    if live_browser_calls(bot.account) >= limit:
        raise TooManyBrowserCalls(limit)
    now = timezone.now()
    call = Call.objects.create(account=bot.account, voicebot=bot, direction=Call.Direction.WEB,
                               status=Call.Status.IN_PROGRESS, answered_at=now, stream_started_at=now)
    record_event(call, "browser_call", user=user.get_username())
    webhook_events.call_started(call)  # as a phone call's when its stream starts
    return call
