"""Call-control tools: the model may end the call, or transfer it to the destination set on the bot.

`CallControl` wraps the bot's ToolRunner. `end_call` and `transfer_call` are answered here (they never reach a
webhook) and remembered as the turn's action; the session carries it out once the bot's last words have played.
They are offered on phone calls only: the session adds their specs to the bot's tools (`offer_to`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from voicebots.conversation.config import BotConfig, ToolSpec
from voicebots.conversation.ports import ToolCall, ToolResult, ToolRunner

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
NO_INPUT = {"type": "object", "properties": {}}

END_CALL_SPEC = ToolSpec(
    END_CALL,
    "Hang up the phone call. Use it when the caller says goodbye or the conversation is clearly over. "
    "Say a short goodbye in the same reply; nothing can be said after this.",
    NO_INPUT,
)
TRANSFER_CALL_SPEC = ToolSpec(
    TRANSFER_CALL,
    "Transfer the caller to a human colleague. Use it when the caller asks for a person or you cannot help. "
    "Tell the caller in one short sentence that you are transferring them, in the same reply.",
    NO_INPUT,
)

ActionKind = Literal["end_call", "transfer_call"]


@dataclass(frozen=True, slots=True)
class ControlAction:
    """What the model asked the call to do once its reply has been heard."""

    kind: ActionKind
    destination: str = ""


class CallControl:
    def __init__(self, inner: ToolRunner | None = None, *, transfer_destination: str = "") -> None:
        self._inner = inner
        self._destination = transfer_destination.strip()
        self._action: ControlAction | None = None

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        # Without a destination the model must not be offered a transfer it cannot make.
        return (END_CALL_SPEC, TRANSFER_CALL_SPEC) if self._destination else (END_CALL_SPEC,)

    def offer_to(self, config: BotConfig) -> BotConfig:
        """The bot's config with the control tools added (a bot function of the same name is replaced)."""
        names = {spec.name for spec in self.specs}
        tools = tuple(tool for tool in config.tools if tool.name not in names) + self.specs
        return replace(config, tools=tools)

    async def run(self, call: ToolCall) -> ToolResult:
        if call.name == END_CALL:
            self._action = ControlAction("end_call")
            return ToolResult(call.id, "The call will end once your goodbye has played. Do not say anything more.")
        if call.name == TRANSFER_CALL and self._destination:
            self._action = ControlAction("transfer_call", self._destination)
            return ToolResult(call.id, "The caller will be transferred once your sentence has played. "
                                       "Do not say anything more.")
        if self._inner is None:
            return ToolResult(call.id, "This tool is not available.", is_error=True)
        return await self._inner.run(call)

    def take_action(self) -> ControlAction | None:
        """The action requested since the last call (and forget it)."""
        action, self._action = self._action, None
        return action
