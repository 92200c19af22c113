"""Who may try a bot in the chat playground.

Members try the bots of every account they belong to. Superusers, the platform's own staff, may try any
bot (to help a customer); the conversation is then kept in the bot's account, as if a member had it.
Every member is Django "staff" so that they can use the admin, so staff alone grants nothing here.
"""
from __future__ import annotations

from voicebots.accounts.services import accounts_of_user
from voicebots.bots.models import Voicebot


def playground_bot(user, bot_id) -> Voicebot | None:
    """The bot `user` may open in the playground, or None (shown as a 404: unknown and foreign look alike)."""
    if user is None or not user.is_authenticated:
        return None
    bots = Voicebot.objects.select_related("account")
    if not user.is_superuser:
        bots = bots.filter(account__in=accounts_of_user(user))
    return bots.filter(pk=bot_id).first()
