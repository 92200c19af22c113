"""`{{name}}` placeholders in a bot's prompt and welcome message, filled per call from its variables."""
from __future__ import annotations

import copy
import re

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def placeholders(*texts: str) -> list[str]:
    """The distinct placeholder names in `texts`, in order of first appearance."""
    names = (match.group(1) for text in texts for match in PLACEHOLDER.finditer(text or ""))
    return list(dict.fromkeys(names))


def bot_texts(bot) -> tuple[str, str]:
    """What a call renders: the bot's prompt and welcome message."""
    return bot.prompt, bot.welcome_message


def missing_variables(variables: dict, *texts: str) -> list[str]:
    """Placeholders of `texts` that `variables` gives no (non-empty) value for."""
    return [name for name in placeholders(*texts) if str(variables.get(name, "")).strip() == ""]


def render(text: str, variables: dict) -> str:
    """`text` with every placeholder that has a value replaced; the others are left as written."""
    def value(match):
        name = match.group(1)
        return str(variables[name]) if name in variables else match.group(0)

    return PLACEHOLDER.sub(value, text or "")


def personalized(bot, variables: dict | None):
    """A copy of `bot` (not saved) whose prompt and welcome message are rendered with a call's variables."""
    if not variables:
        return bot
    bot = copy.copy(bot)
    bot.prompt = render(bot.prompt, variables)
    bot.welcome_message = render(bot.welcome_message, variables)
    return bot
