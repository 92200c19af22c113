"""Django's side of the conversation engine: a bot's settings, knowledge, functions and the LLM as ports.

Shared by the chat API, the playground and phone calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from voicebots.conversation import BotConfig, ConversationEngine, Passage
from voicebots.functions.runner import FunctionConfig, FunctionRunner, FunctionToolRunner
from voicebots.knowledge.retrieval import search
from voicebots.vendors import registry
from voicebots.vendors.registry import ProviderUnavailable

RETRIEVAL_TOP_K = 4


__all__ = ["BotRuntime", "KnowledgeRetriever", "ProviderUnavailable", "language_model", "load_bot_runtime"]


def language_model(provider: str):
    """The bot's LLM adapter; raises ProviderUnavailable (unknown provider, or its key missing)."""
    return registry.language_model(provider)


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
    llm_provider: str

    def engine(self) -> ConversationEngine:
        """Raises ProviderUnavailable when the bot's LLM cannot be used on this server."""
        return ConversationEngine(language_model(self.llm_provider), **self.engine_parts)


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
    return BotRuntime(config, {"retriever": retriever, "tool_runner": tools}, bot.llm_provider)
