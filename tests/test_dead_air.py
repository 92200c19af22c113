"""No dead air: while the bot owes the caller a reply, the caller never waits more than 3 s in silence, whatever
fails. The faults users of other platforms report: a slow function, a function that returns nothing, a function's
result arriving while the caller speaks, a model that answers with whitespace, a model stream that stalls; and a
vendor that is down. Every recovery is an event on the call.

Same harness as tests/test_call_control.py (real-time fake phone leg, the real Deepgram and Cartesia adapters
against their fakes, a scripted model), with the session's default dead-air settings (2.5 s).
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator

import pytest

from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_server import FakeDeepgram
from tests.test_call_control import PhoneLeg, Step, ToolScriptedLLM
from tests.test_voice_pipeline import CONFIG, MS_PER_CHAR, FakeCaller, Recorder, wait_until
from voicebots.conversation import ConversationEngine, LLMRequest
from voicebots.conversation.history import text_of
from voicebots.conversation.ports import ToolCall, ToolResult
from voicebots.providers.cartesia_tts import CartesiaTTS
from voicebots.providers.deepgram_stt import DeepgramSTT
from voicebots.core import clock
from voicebots.voice import CallSession, SessionOptions
from voicebots.voice.control import CallControl
from voicebots.voice.options import DEFAULT_APOLOGY, DEFAULT_CANNOT_HEAR, DEFAULT_EMPTY_REPLY, DEFAULT_MODEL_WAIT
from voicebots.voice.reply import CONTINUE_NOTE, SAY_SOMETHING_NOTE

# The session's waits (silences, timeouts, playback) pass on a virtual clock: tests/virtual_time.py.
pytestmark = pytest.mark.virtual_time

MOST_SILENCE_S = 3.0


class SlowFunctions:
    """The bot's functions: each answers `result` after `delay_s`."""

    def __init__(self, delay_s: float = 0.0, result: str = "done") -> None:
        self.delay_s = delay_s
        self.result = result
        self.calls: list[ToolCall] = []
        self.finished_at: list[float] = []

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        await asyncio.sleep(self.delay_s)
        self.finished_at.append(clock.now())
        return ToolResult(call.id, self.result)


class StallingLLM(ToolScriptedLLM):
    """A scripted model whose requests numbered in `stall` (from 1) never answer: the stream opens and then
    nothing comes, as when a connection hangs."""

    def __init__(self, *steps: Step, stall: set[int]) -> None:
        super().__init__(*steps)
        self._stall = stall

    async def stream(self, request: LLMRequest) -> AsyncIterator[Any]:
        if len(self.requests) + 1 in self._stall:
            self.requests.append(replace(request, messages=list(request.messages)))
            await asyncio.Event().wait()
        async for event in super().stream(request):
            yield event


@dataclass
class Call:
    session: CallSession
    transport: PhoneLeg
    caller: FakeCaller
    recorder: Recorder
    deepgram: FakeDeepgram


@asynccontextmanager
async def running_call(llm: Any, transcripts: list[str], functions: SlowFunctions | None = None,
                       **options: Any) -> AsyncIterator[Call]:
    async with FakeDeepgram(transcripts) as deepgram, FakeCartesia(ms_per_char=MS_PER_CHAR) as cartesia:
        transport, recorder = PhoneLeg(), Recorder()
        control = CallControl(functions or SlowFunctions())
        session = CallSession(
            config=CONFIG, engine=ConversationEngine(llm, tool_runner=control), transport=transport,
            stt=DeepgramSTT(deepgram.api_key, websocket_url=deepgram.ws_url),
            tts=CartesiaTTS(cartesia.api_key, "voice-1", base_url=cartesia.http_url,
                            websocket_base_url=cartesia.ws_url),
            observer=recorder, options=SessionOptions(**options), control=control)
        transport.handler = session
        caller = FakeCaller(session)
        await session.start()
        caller_task = asyncio.create_task(caller.run())
        try:
            yield Call(session, transport, caller, recorder, deepgram)
        finally:
            caller_task.cancel()
            await asyncio.gather(caller_task, return_exceptions=True)
            await session.stop()


def longest_silence(leg: PhoneLeg, since: float) -> float:
    """The longest the caller heard nothing from the bot after `since` (the end of their speech) until the bot's
    last audio: each frame plays 20 ms, after the one before it."""
    play_end, starts = 0.0, []
    for sent, _ in leg.frames:
        start = max(play_end, sent)
        play_end = start + 0.02
        starts.append(start)
    longest, heard_until = 0.0, since
    for start in starts:
        if start + 0.02 <= since:
            continue
        longest = max(longest, start - heard_until)
        heard_until = max(heard_until, start + 0.02)
    return longest


def incident_details(call: Call, kind: str) -> list[str]:
    return [detail for incident, detail in call.recorder.incidents if incident == kind]


async def ask(call: Call, ms: int = 600) -> float:
    await call.caller.say(ms)
    return call.caller.speech_ended_at


async def test_a_slow_function_gets_its_filler_so_the_caller_is_never_left_in_silence():
    llm = ToolScriptedLLM(Step([], tool="check_tables"), Step(["You're booked for seven."]))
    functions = SlowFunctions(delay_s=4.0)
    async with running_call(llm, ["Book me a table at seven."], functions,
                            function_fillers={"check_tables": "Let me look at the bookings."}) as call:
        asked_at = await ask(call)
        await wait_until(lambda: call.recorder.turns, timeout=15)
        said = call.recorder.turns[0].bot_text
        assert said == "Let me look at the bookings. You're booked for seven."
        assert incident_details(call, "filler") and "waiting on the tool" in incident_details(call, "filler")[0]
        assert longest_silence(call.transport, asked_at) <= MOST_SILENCE_S
        assert len(functions.calls) == 1
        assert text_of(call.session.history[-1]) == "You're booked for seven."  # the filler is not the model's


async def test_a_function_that_returns_nothing_gets_the_model_asked_again():
    llm = ToolScriptedLLM(Step([], tool="find_table"), Step([]), Step(["Sorry, I found no free table tonight."]))
    async with running_call(llm, ["Any table tonight?"], SlowFunctions(result="")) as call:
        asked_at = await ask(call)
        await wait_until(lambda: call.recorder.turns, timeout=15)
        assert call.recorder.turns[0].bot_text == "Sorry, I found no free table tonight."
        assert incident_details(call, "empty_reply") == ["the model said nothing; asked again"]
        last = llm.requests[2].messages
        assert any(message.tool_results for message in last)
        assert SAY_SOMETHING_NOTE in last[-1].text
        assert longest_silence(call.transport, asked_at) <= MOST_SILENCE_S


async def test_a_model_answering_only_whitespace_is_asked_again_then_the_bot_says_a_fallback_line():
    llm = ToolScriptedLLM(Step(["  ", "\n"]), Step([" "]))
    async with running_call(llm, ["Hello?"]) as call:
        asked_at = await ask(call, 400)
        await wait_until(lambda: call.recorder.turns, timeout=15)
        assert call.recorder.turns[0].bot_text == DEFAULT_EMPTY_REPLY
        assert len(llm.requests) == 2 and len(incident_details(call, "empty_reply")) == 2
        assert longest_silence(call.transport, asked_at) <= MOST_SILENCE_S


async def test_a_stalled_model_stream_is_asked_again_while_the_bot_says_a_word():
    llm = StallingLLM(Step(["We open at nine."]), stall={1})
    async with running_call(llm, ["When do you open?"]) as call:
        asked_at = await ask(call)
        await wait_until(lambda: call.recorder.turns, timeout=15)
        assert call.recorder.turns[0].bot_text == f"{DEFAULT_MODEL_WAIT} We open at nine."
        assert incident_details(call, "llm_stalled") == ["no answer for 2.5 s; asked again"]
        assert len(llm.requests) == 2 and llm.requests[1].messages == llm.requests[0].messages
        assert longest_silence(call.transport, asked_at) <= MOST_SILENCE_S


async def test_a_model_that_stalls_again_is_given_up_on_with_an_apology():
    llm = StallingLLM(stall={1, 2})
    async with running_call(llm, ["When do you open?"]) as call:
        asked_at = await ask(call)
        await wait_until(lambda: call.recorder.turns, timeout=15)
        assert call.recorder.turns[0].bot_text.endswith(DEFAULT_APOLOGY)
        assert [detail.split("; ")[1] for detail in incident_details(call, "llm_stalled")] == [
            "asked again", "gave up on the reply"]
        assert longest_silence(call.transport, asked_at) <= MOST_SILENCE_S


async def test_a_stream_stalling_after_a_function_is_asked_again_with_its_result_and_it_does_not_run_twice():
    llm = StallingLLM(Step([], tool="book"), Step(["Booked for seven."]), stall={2})
    functions = SlowFunctions(result="booking 42 confirmed")
    async with running_call(llm, ["Book seven please."], functions) as call:
        asked_at = await ask(call)
        await wait_until(lambda: call.recorder.turns, timeout=15)
        assert call.recorder.turns[0].bot_text.endswith("Booked for seven.")
        assert len(functions.calls) == 1
        retry = llm.requests[2].messages
        assert "booking 42 confirmed" in str(retry) and CONTINUE_NOTE in retry[-1].text
        assert longest_silence(call.transport, asked_at) <= MOST_SILENCE_S


async def test_a_function_result_arriving_while_the_caller_speaks_is_kept_and_the_caller_answered():
    llm = ToolScriptedLLM(Step([], tool="find_table"), Step(["I found a table at seven."]),
                          Step(["Yes, I'm here: a table at seven is free."]))
    functions = SlowFunctions(delay_s=1.0, result="a table at seven")
    async with running_call(llm, ["Any table tonight?", "Hello, are you still there?"], functions) as call:
        await ask(call)
        await wait_until(lambda: functions.calls, timeout=8)
        await asyncio.sleep(0.3)
        spoke_from = clock.now()
        await call.caller.say(1200)  # the function answers in the middle of this
        assert spoke_from < functions.finished_at[0] < call.caller.speech_ended_at
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=10)
        assert all(at >= call.caller.speech_ended_at for at, _ in call.transport.frames)  # never over the caller
        assert call.recorder.turns[1].bot_text == "Yes, I'm here: a table at seven is free."
        answer_request = llm.requests[2].messages
        assert "a table at seven" in str(answer_request) and "Hello, are you still there?" in str(answer_request)
        assert longest_silence(call.transport, call.caller.speech_ended_at) <= MOST_SILENCE_S


async def test_a_lost_speech_to_text_the_bot_cannot_get_back_is_told_to_the_caller_before_hanging_up():
    async with running_call(ToolScriptedLLM(), [], stt_reconnect_delays_s=(0.0,)) as call:
        await wait_until(lambda: call.deepgram.streams, timeout=5)
        call.deepgram.api_key = "revoked"  # reconnecting fails from now on
        await call.deepgram.drop()
        await wait_until(lambda: call.transport.hung_up, timeout=10)
        assert "stt_lost" in call.recorder.incident_kinds()
        await wait_until(lambda: call.recorder.turns, timeout=2)
        assert call.recorder.turns[-1].bot_text == DEFAULT_CANNOT_HEAR


def test_the_filler_line_is_the_functions_own_once_then_a_still_working_line():
    from voicebots.voice.bot_turn import BotTurn
    from voicebots.voice.dead_air import DeadAirWatch
    from voicebots.voice.timeline import Timeline

    watch = DeadAirWatch(None, dead_air_s=2.5, function_filler="One moment.", function_fillers={"book": "Booking."},
                         still_working_text="Still on it.", model_wait_text="Just a moment.",
                         current_turn=lambda: None, held=lambda turn: False, closing=lambda: False,
                         incident=None)
    turn = BotTurn(0, "reply", "Book it.", [], Timeline.now())
    turn.waiting, turn.tools_running = "tool", {"t1": "book"}
    assert [watch.line_for(turn) for _ in range(2)] == ["Booking.", "Still on it."]
    turn.tools_running = {"t2": "other"}
    assert watch.line_for(turn) == "One moment."
    turn.waiting = "model"
    assert watch.line_for(turn) == "Just a moment."
    turn.waiting = "done"
    assert watch.line_for(turn) is None
