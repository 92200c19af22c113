"""The per-turn parts of a request: the retrieval query and the system prompt."""
from __future__ import annotations

import re
from typing import Sequence

from .config import BotConfig
from .ports import Message, Passage, SystemPrompt

QUERY_CONTEXT_CHARS = 200
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

KNOWLEDGE_HEADER = (
    "## Knowledge\n"
    "Excerpts from the bot's documents that may answer the latest message. Use them when relevant; "
    "do not invent facts that are not there."
)


def retrieval_query(history: Sequence[Message], user_text: str) -> str:
    """The latest user message, plus the last sentence the assistant said before it.

    Short replies ("yes, the second one") only make sense next to the question they answer.
    """
    for message in reversed(history):
        if message.role == "assistant":
            said = message.text.strip()
            if said:
                last_sentence = _SENTENCE_END.split(said)[-1][-QUERY_CONTEXT_CHARS:]
                return f"{user_text}\n{last_sentence}"
            break
    return user_text


def knowledge_text(passages: Sequence[Passage]) -> str:
    if not passages:
        return ""
    parts = [KNOWLEDGE_HEADER]
    for number, passage in enumerate(passages, start=1):
        source = passage.document_name if passage.page is None else f"{passage.document_name}, page {passage.page}"
        parts.append(f"[{number}] ({source})\n{passage.text.strip()}")
    return "\n\n".join(parts)


def system_prompt(config: BotConfig, passages: Sequence[Passage]) -> SystemPrompt:
    """The bot's prompt (the same every turn, so it can be cached); the knowledge and context after it."""
    changing = "\n\n".join(part for part in (knowledge_text(passages), config.context_text) if part)
    return SystemPrompt(config.stable_prompt, changing)
