"""The one thing analysis needs from a language model: a system text and a prompt in, text out.

`ModelCompleter` is that on top of the conversation's LLM port (`complete()`), so analysis runs on the
bot's own provider, Anthropic or OpenAI-compatible; anything else can stand in by having an
`async complete(system, prompt) -> str`. Errors are the port's LLMError (`retryable` says whether trying
again later may help).
"""
from __future__ import annotations

from typing import Protocol

from voicebots.conversation.ports import LLM, MAX_TOKENS, LLMError, Message

MAX_ANSWER_TOKENS = 2048


class Completer(Protocol):
    async def complete(self, system: str, prompt: str) -> str: ...


class ModelCompleter:
    """A Completer on any LLM adapter (`voicebots.vendors.registry.language_model`)."""

    def __init__(self, llm: LLM, model: str, max_tokens: int = MAX_ANSWER_TOKENS) -> None:
        self._llm = llm
        self._model = model
        self._max_tokens = max_tokens

    async def complete(self, system: str, prompt: str) -> str:
        completion = await self._llm.complete(model=self._model, system=system, messages=[Message.user(prompt)],
                                              max_tokens=self._max_tokens)
        if completion.stop_reason == MAX_TOKENS:
            raise LLMError(f"The language model's answer was longer than {self._max_tokens} tokens.")
        return completion.text
