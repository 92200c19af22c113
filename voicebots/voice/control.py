"""Call-control tools: the model may end the call, transfer it to the destination set on the bot, or press keys.

`CallControl` wraps the bot's ToolRunner. `end_call` and `transfer_call` are answered here (they never reach a
webhook) and remembered as the turn's action; the session carries it out once the bot's last words have played.
`send_dtmf` presses keys at once (an automated phone menu listens while the bot talks); it is offered only when
a way to send them is given (the consumer does so on outbound calls, which may reach such menus). The tools
are offered on phone calls only: the session adds their specs to the bot's tools (`offer_to`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Literal

from voicebots.conversation.config import BotConfig, ToolSpec
from voicebots.conversation.ports import ToolCall, ToolResult, ToolRunner

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
SEND_DTMF = "send_dtmf"
DTMF_DIGITS = re.compile(r"^[0-9A-D*#]{1,32}$")  # what Plivo's sendDTMF accepts
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

SEND_DTMF_SPEC = ToolSpec(
    SEND_DTMF,
    "Press keys on the phone keypad, for example to choose an option in an automated phone menu. "
    "Only when a menu asks for keys; the keys are sent at once.",
    {"type": "object", "properties": {"digits": {
        "type": "string", "description": "The keys in order: 0-9, *, # (and A-D), e.g. \"1\" or \"4521#\"."}},
     "required": ["digits"]},
)

ActionKind = Literal["end_call", "transfer_call"]


@dataclass(frozen=True, slots=True)
class ControlAction:
    """What the model asked the call to do once its reply has been heard."""

    kind: ActionKind
    destination: str = ""


class CallControl:
    def __init__(self, inner: ToolRunner | None = None, *, transfer_destination: str = "",
                 send_dtmf: Callable[[str], Awaitable[None]] | None = None) -> None:
        self._inner = inner
        self._destination = transfer_destination.strip()
        self._send_dtmf = send_dtmf
        self._action: ControlAction | None = None

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        # The model must not be offered a transfer or keys it cannot use.
        return ((END_CALL_SPEC,) + ((TRANSFER_CALL_SPEC,) if self._destination else ())
                + ((SEND_DTMF_SPEC,) if self._send_dtmf is not None else ()))

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
        if call.name == SEND_DTMF and self._send_dtmf is not None:
            return await self._press(call)
        if self._inner is None:
            return ToolResult(call.id, "This tool is not available.", is_error=True)
        return await self._inner.run(call)

    async def _press(self, call: ToolCall) -> ToolResult:
        digits = str(call.input.get("digits", "")).replace(" ", "").upper()
        if not DTMF_DIGITS.match(digits):
            return ToolResult(call.id, "digits must be 1 to 32 of 0-9, *, # or A-D.", is_error=True)
        await self._send_dtmf(digits)
        return ToolResult(call.id, f"Pressed {digits}.")

    @property
    def action_pending(self) -> bool:
        """The model asked to end or transfer the call in this reply."""
        return self._action is not None

    def take_action(self) -> ControlAction | None:
        """The action requested since the last call (and forget it)."""
        action, self._action = self._action, None
        return action
