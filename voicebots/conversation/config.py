"""A bot's conversation settings, with the request pieces that never change between turns built once."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Sequence

from .ports import ToolSpec

DEFAULT_PROMPT = "You are a helpful, concise voice assistant."
JSON_SCHEMA_TYPES = frozenset({"string", "number", "integer", "boolean"})


def tool_spec_from_parameters(name: str, description: str, user_parameters: Sequence[Mapping[str, Any]]) -> ToolSpec:
    """Build a tool from a Function's `userParameters` ([{"name", "type", "description", "required"}])."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in user_parameters:
        kind = parameter.get("type", "string")
        schema: dict[str, Any] = {"type": kind if kind in JSON_SCHEMA_TYPES else "string"}
        if parameter.get("description"):
            schema["description"] = parameter["description"]
        properties[parameter["name"]] = schema
        if parameter.get("required"):
            required.append(parameter["name"])
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    return ToolSpec(name=name, description=description, input_schema=input_schema)


@dataclass(frozen=True)
class BotConfig:
    """Everything the engine needs to know about a bot for one conversation.

    `context` holds per-conversation facts (date, caller number, call direction...) shown to the model.
    `history_token_budget` is a soft cap: the newest exchange is always kept.
    """

    bot_id: str
    name: str
    prompt: str
    model: str
    max_tokens: int = 1024
    tools: Sequence[ToolSpec] = ()
    thinking_enabled: bool = False
    context: Mapping[str, str] = field(default_factory=dict)
    history_token_budget: int = 6000
    max_tool_rounds: int = 5

    # cached_property stores into the instance __dict__, which a frozen dataclass allows: these are
    # built on the first turn and reused by every later one.
    @cached_property
    def stable_prompt(self) -> str:
        """The part of the system prompt that never changes in a conversation (so it can be cached)."""
        return self.prompt.strip() or DEFAULT_PROMPT

    @cached_property
    def context_text(self) -> str:
        lines = [f"- {key}: {value}" for key, value in self.context.items() if value]
        return "## Conversation context\n" + "\n".join(lines) if lines else ""
