"""Django's side of the conversation engine: a bot's settings, knowledge, functions and the LLM as ports.

Shared by the chat API, the playground and phone calls.
"""
from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from voicebots.conversation import BotConfig, ConversationEngine, Passage
from voicebots.functions.runner import FunctionConfig, FunctionRunner, FunctionToolRunner
from voicebots.knowledge.retrieval import search
from voicebots.providers.anthropic_llm import AnthropicLLM

RETRIEVAL_TOP_K = 4


class MissingProviderKey(Exception):
    """A vendor key the feature needs is not configured; `message` names it."""

    def __init__(self, setting: str) -> None:
        self.setting = setting
        self.message = f"{setting} is not configured on this server, so the bot cannot answer."
        super().__init__(self.message)


# One client per event loop: its connection pool belongs to the loop that opened it.
_llms: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def language_model() -> AnthropicLLM:
    if not settings.ANTHROPIC_API_KEY:
        raise MissingProviderKey("ANTHROPIC_API_KEY")
    key = (settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL)
    per_loop = _llms.setdefault(asyncio.get_running_loop(), {})
    if key not in per_loop:
        per_loop[key] = AnthropicLLM(api_key=key[0], base_url=key[1])
    return per_loop[key]


class KnowledgeRetriever:
    """The engine's Retriever over the documents attached to one bot."""

    def __init__(self, account_id, document_ids: list) -> None:
        self.account_id = account_id
        self.document_ids = document_ids

    async def retrieve(self, query: str, *, bot_id: str) -> list[Passage]:
        if not self.document_ids:
            return []
        result = await sync_to_async(search)(self.account_id, query, self.document_ids, top_k=RETRIEVAL_TOP_K)
        return [Passage(hit.text, hit.score, hit.name, hit.page, str(hit.knowledgebase_id)) for hit in result.hits]


@dataclass
class BotRuntime:
    config: BotConfig
    engine_parts: dict[str, Any]

    def engine(self) -> ConversationEngine:
        return ConversationEngine(language_model(), **self.engine_parts)


def load_bot_runtime(bot, *, session_id: str, call_info: dict | None = None,
                     context: dict[str, str] | None = None, extra_prompt: str = "") -> BotRuntime:
    """Everything a conversation with `bot` needs, read from the database once (sync)."""
    functions = [
        FunctionConfig(name=f.name, description=f.description, handler_url=f.handler_url,
                       user_parameters=f.user_parameters, fixed_parameters=f.fixed_parameters,
                       timeout_s=f.timeout_seconds)
        for f in bot.functions.all()
    ]
    runner = FunctionRunner(bot.account.webhook_secret, allow_private=settings.FUNCTION_ALLOW_PRIVATE_ADDRESSES,
                            allow_http=settings.FUNCTION_ALLOW_HTTP)
    tools = FunctionToolRunner(runner, functions, voicebot_id=str(bot.id), session_id=session_id,
                               call_info=call_info)
    retriever = KnowledgeRetriever(bot.account_id, list(bot.knowledgebases.values_list("id", flat=True)))
    today = datetime.now(timezone.utc).strftime("%A %d %B %Y, %H:%M UTC")
    config = BotConfig(
        bot_id=str(bot.id), name=bot.name, prompt=(bot.prompt + extra_prompt).strip(), model=bot.llm_model,
        tools=tuple(tools.tool_specs()), context={"Current date": today, **(context or {})},
    )
    return BotRuntime(config, {"retriever": retriever, "tool_runner": tools})
