"""Live control at the session: an operator has the bot say something, end the call or transfer it.

Same harness as tests/test_call_control.py: a real-time fake phone leg, the real Deepgram and Cartesia adapters
against their fakes on 127.0.0.1, and a scripted LLM.
"""
from __future__ import annotations

import pytest

from tests.test_call_control import PhoneLeg, Step, ToolScriptedLLM, running_call
from tests.test_voice_pipeline import LONG_REPLY, wait_until
from voicebots.conversation.ports import Message, ToolCall
from voicebots.core import clock
from voicebots.voice.operator import history_with_bot_line

# The session's waits (silences, timeouts, playback) pass on a virtual clock: tests/virtual_time.py.
pytestmark = pytest.mark.virtual_time


class WarmLeg(PhoneLeg):
    """A phone leg that takes the summary of a warm transfer."""

    def __init__(self, transfer_ok: bool = True) -> None:
        super().__init__(transfer_ok)
        self.summaries: list[str] = []

    async def transfer(self, destination: str, summary: str = "") -> bool:
        self.summaries.append(summary)
        return await super().transfer(destination)


def with_warm_leg(call, transfer_ok: bool = True) -> WarmLeg:
    leg = WarmLeg(transfer_ok)
    leg.handler = call.session
    call.session._transport = leg  # the session's one transport, swapped before anything was said
    call.session._playout._transport = leg
    call.transport = leg
    return leg


async def test_a_line_said_while_the_bot_listens_is_spoken_at_once_and_joins_the_history():
    llm = ToolScriptedLLM(Step(["Noted."]))
    async with running_call(llm, ["What did you say?"], welcome_message="Hello!") as call:
        await wait_until(lambda: call.recorder.turns, timeout=5)  # the greeting was heard
        asked = clock.now()
        assert call.session.say("Your table is ready.")
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=5)
        assert call.recorder.turns[1].bot_text == "Your table is ready."
        assert call.transport.frames[-1][0] - asked < 3
        assert call.session.history[-1] == Message.assistant("Hello! Your table is ready.")
        await call.caller.say(500)
        await wait_until(lambda: llm.requests, timeout=8)
        assert llm.requests[0].messages[1] == Message.assistant("Hello! Your table is ready.")


async def test_a_line_waits_for_the_bot_to_finish_its_turn_unless_it_interrupts():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(LONG_REPLY))
    async with running_call(llm, ["Tables tonight?", "And tomorrow?"]) as call:
        await call.caller.say(500)
        await wait_until(lambda: call.transport.frames, timeout=8)
        assert call.session.say("A message from the manager.")
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=20)
        reply, line = call.recorder.turns
        assert not reply.interrupted and reply.bot_text == "".join(LONG_REPLY).strip()
        assert line.bot_text == "A message from the manager."
        assert call.transport.clears == []

        frames = len(call.transport.frames)
        await call.caller.say(500)
        await wait_until(lambda: len(call.transport.frames) > frames + 5, timeout=8)  # the second reply plays
        assert call.session.say("Sorry to cut in: we close soon.", interrupt=True)
        await wait_until(lambda: len(call.recorder.turns) == 4, timeout=10)
        cut, urgent = call.recorder.turns[2:]
        assert cut.interrupted and len(cut.bot_text) < len("".join(LONG_REPLY).strip())
        assert urgent.bot_text == "Sorry to cut in: we close soon."
        assert call.transport.clears, "the caller's playback was cleared"


async def test_end_says_the_goodbye_then_hangs_up_and_end_without_words_hangs_up_at_once():
    async with running_call(ToolScriptedLLM(), [], welcome_message="Hello!") as call:
        await wait_until(lambda: call.recorder.turns, timeout=5)
        assert call.session.end("We have to end the call now. Goodbye!")
        await wait_until(lambda: call.transport.hung_up, timeout=8)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=2)
        assert call.recorder.turns[1].bot_text == "We have to end the call now. Goodbye!"
        assert call.transport.hung_up_at >= max(at for at, _ in call.transport.checkpoints)
        assert not call.session.say("Too late.")  # a closing call takes no more lines

    async with running_call(ToolScriptedLLM(), []) as call:
        assert call.session.end()
        await wait_until(lambda: call.transport.hung_up, timeout=3)
        assert call.transport.frames == []


async def test_a_warm_transfer_says_the_line_then_hands_the_summary_to_the_transport():
    async with running_call(ToolScriptedLLM(), [], welcome_message="Hello!") as call:
        leg = with_warm_leg(call)
        await wait_until(lambda: call.recorder.turns, timeout=5)
        assert call.session.transfer("+14155550123", "Ada wants to move her booking to Friday.")
        await wait_until(lambda: leg.transfers, timeout=8)
        assert leg.transfers[0][1] == "+14155550123"
        assert leg.summaries == ["Ada wants to move her booking to Friday."]
        assert call.recorder.turns[-1].bot_text == "Please hold while I transfer your call."
        assert not call.session.say("Still there?")  # the call is being handed over


async def test_a_cold_transfer_passes_no_summary_and_a_refused_one_is_told_to_the_caller():
    async with running_call(ToolScriptedLLM(), [], transfer_ok=False) as call:
        assert call.session.transfer("sip:desk@example.com")
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)
        assert call.transport.transfers[0][1] == "sip:desk@example.com"
        assert "transfer_failed" in call.recorder.incident_kinds()
        assert call.recorder.turns[1].bot_text.startswith("Sorry, I could not transfer")
        assert call.session.say("Let me help you myself.")  # the call goes on


def test_a_line_joins_the_history_as_the_bots_words():
    assert history_with_bot_line([], "Hi.") == [Message.user("(The call has connected.)"), Message.assistant("Hi.")]
    after_reply = [Message.user("Open?"), Message.assistant("Yes.")]
    assert history_with_bot_line(after_reply, "Also Sundays.")[-1] == Message.assistant("Yes. Also Sundays.")
    waiting = [Message.user("Hello?")]
    assert history_with_bot_line(waiting, "One moment.")[-1] == Message.assistant("One moment.")
    with_tools = [Message.user("x"), Message.assistant("a", tool_calls=(ToolCall("t1", "book", {}),))]
    booked = (ToolCall("t1", "book", {}),)
    assert history_with_bot_line(with_tools, "b")[-1] == Message.assistant("a b", tool_calls=booked)
    assert after_reply[-1] == Message.assistant("Yes.")  # never changed in place
