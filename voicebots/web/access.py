"""Which bots a signed-in user may use in the browser pages (playgrounds)."""
from __future__ import annotations

from voicebots.accounts.services import accounts_of_user
from voicebots.bots.models import Voicebot


def bot_for_user(user, bot_id) -> Voicebot | None:
    """The bot, if `user` is a member of its account or a superuser; None otherwise (as if it did not exist).

    Superusers stand for "staff" here: every member is `is_staff` (that is what opens the admin to them), so
    `is_staff` says nothing about other accounts.
    """
    if user is None or not user.is_authenticated:
        return None
    bots = Voicebot.objects.select_related("account")
    if not user.is_superuser:
        bots = bots.filter(account__in=accounts_of_user(user))
    return bots.filter(pk=bot_id).first()
