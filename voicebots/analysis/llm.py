"""The one thing analysis needs from a language model: a system text and a prompt in, text out.

`AnthropicCompleter` is that on top of the conversation engine's Anthropic provider; any other model can
stand in by having an `async complete(system, prompt) -> str`. Errors are the engine's LLMError
(`retryable` says whether trying again later may help).
"""
from __future__ import annotations

from typing import Protocol

from voicebots.conversation.ports import LLMError, LLMRequest, MessageDone, TextDelta

MAX_TOKENS = 2048


class Completer(Protocol):
    async def complete(self, system: str, prompt: str) -> str: ...


class AnthropicCompleter:
    """A Completer on an `AnthropicLLM` (voicebots.providers.anthropic_llm), which streams; the text is
    gathered here."""

    def __init__(self, llm, model: str, max_tokens: int = MAX_TOKENS) -> None:
        self._llm = llm
        self._model = model
        self._max_tokens = max_tokens

    async def complete(self, system: str, prompt: str) -> str:
        request = LLMRequest(model=self._model, system=[{"type": "text", "text": system}],
                             messages=[{"role": "user", "content": prompt}], tools=[], max_tokens=self._max_tokens)
        parts: list[str] = []
        async for event in self._llm.stream(request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, MessageDone) and event.stop_reason == "max_tokens":
                raise LLMError(f"The language model's answer was longer than {self._max_tokens} tokens.")
        return "".join(parts)
