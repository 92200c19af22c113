"""Call control on live calls: the model ends or transfers the call, a silent caller is re-prompted then let go,
a call at its time limit is ended politely, turn-taking waits for numbers and spelled sequences, and barge-in
ignores acknowledgements and words without a voice behind them (the rest of barge-in: tests/test_barge_in.py).

Same harness as tests/test_voice_pipeline.py: a real-time fake phone leg, the real Deepgram and Cartesia adapters
against their fakes on 127.0.0.1, and a scripted LLM (here one that can also ask for tools).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator
from urllib.parse import urlsplit
from xml.etree import ElementTree

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from tests.fakes.anthropic_server import Text, ToolUse, Turn
from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_server import FakeDeepgram, silence, speech
from tests.fakes.plivo_server import FakeCall, FakePlivo
from tests.test_outbound_calls import use_plivo
from tests.test_phone_calls import PlivoPeer, _close_consumer_connections, vendors  # noqa: F401 (fixtures)
from tests.test_plivo_stream import answer, start_frame
from tests.test_voice_pipeline import CONFIG, LONG_REPLY, MS_PER_CHAR, FakeCaller, FakeTransport, Recorder, wait_until
from voicebots.bots.models import Voicebot
from voicebots.callruntime.records import recorded_audio
from voicebots.callruntime.runtime import TIME_LIMIT_GOODBYE_S, session_options
from voicebots.calls.models import Call as CallRecord
from voicebots.conversation import ConversationEngine, LLMRequest, Message, MessageDone, TextDelta, ToolUseRequested
from voicebots.conversation.history import text_of
from voicebots.conversation.ports import ToolCall, ToolResult
from voicebots.providers.cartesia_tts import CartesiaTTS
from voicebots.providers.silero_vad import BatchDetector, SileroActivity
from voicebots.providers.deepgram_stt import DeepgramSTT
from voicebots.core import clock
from voicebots.voice import CallSession, SessionOptions, TurnRecord
from voicebots.telephony.transfer import transfer_url
from voicebots.voice.activity import VoiceActivity
from voicebots.voice.barge_in import InterruptionRules
from voicebots.voice.control import CallControl
from voicebots.voice.ports import Transcript, UtteranceEnd
from voicebots.voice.turns import CallerPaused, CallerSpeaking, CallerTurnEnded, TurnTaker, sounds_unfinished

# The session's waits (silences, timeouts, playback) pass on a virtual clock: tests/virtual_time.py.
pytestmark = pytest.mark.virtual_time

# --- Test doubles -----------------------------------------------------------------------------------


class PhoneLeg(FakeTransport):
    """The fake phone leg, able to transfer (or refuse to) and to send DTMF."""

    def __init__(self, transfer_ok: bool = True) -> None:
        super().__init__()
        self.transfer_ok = transfer_ok
        self.transfers: list[tuple[float, str]] = []
        self.hung_up_at: float | None = None
        self.dtmf: list[str] = []

    async def hang_up(self) -> None:
        self.hung_up = True
        self.hung_up_at = clock.now()

    async def transfer(self, destination: str) -> bool:
        self.transfers.append((clock.now(), destination))
        return self.transfer_ok

    async def send_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)


@dataclass
class Step:
    """One model response: text fragments, then optionally a tool call."""

    fragments: list[str]
    tool: str | None = None
    tool_input: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.05  # before the first fragment


class ToolScriptedLLM:
    def __init__(self, *steps: Step) -> None:
        self._steps = deque(steps)
        self.requests: list[LLMRequest] = []

    async def stream(self, request: LLMRequest) -> AsyncIterator[Any]:
        self.requests.append(replace(request, messages=list(request.messages)))  # the engine appends to it later
        step = self._steps.popleft() if self._steps else Step([])
        await asyncio.sleep(step.delay_s)
        for fragment in step.fragments:
            yield TextDelta(fragment)
            await asyncio.sleep(0.01)
        text = "".join(step.fragments)
        if step.tool is None:
            yield MessageDone("end_turn", {}, Message.assistant(text))
            return
        tool_id = f"toolu_{len(self.requests)}"
        yield ToolUseRequested(tool_id, step.tool, step.tool_input)
        yield MessageDone("tool_use", {}, Message.assistant(text, tool_calls=[ToolCall(tool_id, step.tool,
                                                                                        step.tool_input)]))


class Webhooks:
    """The bot's own functions: records what reaches it."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        return ToolResult(call.id, "done")


@dataclass
class Call:
    session: CallSession
    transport: PhoneLeg
    caller: FakeCaller
    recorder: Recorder
    webhooks: Webhooks


@asynccontextmanager
async def running_call(llm: Any, transcripts: list[str], *, destination: str = "", transfer_ok: bool = True,
                       activity: Any = None, keys: bool = False, interim_every_ms: int = 100,
                       recorder: Recorder | None = None, **options: Any) -> AsyncIterator[Call]:
    async with FakeDeepgram(transcripts, interim_every_ms=interim_every_ms) as deepgram, FakeCartesia(ms_per_char=MS_PER_CHAR) as cartesia:
        transport, recorder, webhooks = PhoneLeg(transfer_ok), recorder or Recorder(), Webhooks()
        control = CallControl(webhooks, transfer_destination=destination,
                              send_dtmf=transport.send_dtmf if keys else None)
        session = CallSession(
            config=CONFIG, engine=ConversationEngine(llm, tool_runner=control), transport=transport,
            stt=DeepgramSTT(deepgram.api_key, websocket_url=deepgram.ws_url),
            tts=CartesiaTTS(cartesia.api_key, "voice-1", base_url=cartesia.http_url,
                            websocket_base_url=cartesia.ws_url),
            observer=recorder, options=SessionOptions(**options), control=control, activity=activity)
        transport.handler = session
        caller = FakeCaller(session)
        await session.start()
        caller_task = asyncio.create_task(caller.run())
        try:
            yield Call(session, transport, caller, recorder, webhooks)
        finally:
            caller_task.cancel()
            await asyncio.gather(caller_task, return_exceptions=True)
            await session.stop()


def tool_names(request: LLMRequest) -> list[str]:
    return [tool.name for tool in request.tools]


# --- Ending and transferring the call -----------------------------------------------------------------


async def test_end_call_plays_the_goodbye_then_hangs_up_without_reaching_a_webhook():
    llm = ToolScriptedLLM(Step(["Thanks for calling, goodbye!"], tool="end_call"), Step([]))
    async with running_call(llm, ["That's all, bye."]) as call:
        await call.caller.say(500)
        await wait_until(lambda: call.transport.hung_up, timeout=8)
        assert tool_names(llm.requests[0]) == ["end_call"]  # no destination: no transfer offered
        assert call.webhooks.calls == []
        last_ack = max(at for at, name in call.transport.checkpoints)
        assert call.transport.played == call.transport.checkpoint_names()  # the goodbye was heard in full
        assert call.transport.hung_up_at >= last_ack
        await wait_until(lambda: call.recorder.turns, timeout=2)
        assert call.recorder.turns[0].bot_text == "Thanks for calling, goodbye!"


async def test_end_call_without_words_says_the_default_goodbye():
    llm = ToolScriptedLLM(Step([], tool="end_call"), Step([]))
    async with running_call(llm, ["Bye."], goodbye_text="Goodbye from the desk.") as call:
        await call.caller.say(400)
        await wait_until(lambda: call.transport.hung_up, timeout=8)
        await wait_until(lambda: call.recorder.turns, timeout=2)
        assert call.recorder.turns[0].bot_text == "Goodbye from the desk."


class SlowRecorder(Recorder):
    """Keeps each turn record the way a database does: it takes a while."""

    async def on_turn(self, record: TurnRecord) -> None:
        await asyncio.sleep(0.2)
        await super().on_turn(record)


async def test_the_goodbye_is_recorded_even_when_the_hang_up_stops_the_call_at_once():
    # A phone leg stops the session as soon as its socket closes: the goodbye's record, still being written,
    # must not be cancelled with the rest of the call.
    llm = ToolScriptedLLM(Step([], tool="end_call"), Step([]))
    async with running_call(llm, ["Bye."], recorder=SlowRecorder(), goodbye_text="Goodbye from the desk.") as call:
        await call.caller.say(400)
        await wait_until(lambda: call.transport.hung_up, timeout=8)
        await call.session.stop()
        assert [turn.bot_text for turn in call.recorder.turns] == ["Goodbye from the desk."]


async def test_transfer_call_speaks_a_line_then_transfers_to_the_bot_destination():
    llm = ToolScriptedLLM(Step(["Let me put you through."], tool="transfer_call"), Step([]))
    async with running_call(llm, ["Can I talk to a person?"], destination="+14155550123") as call:
        await call.caller.say(600)
        await wait_until(lambda: call.transport.transfers, timeout=8)
        assert tool_names(llm.requests[0]) == ["end_call", "transfer_call"]
        assert call.transport.transfers[0][1] == "+14155550123"
        assert call.transport.played == call.transport.checkpoint_names()
        assert not call.transport.hung_up and call.webhooks.calls == []


async def test_a_failed_transfer_is_reported_and_the_caller_is_told():
    llm = ToolScriptedLLM(Step(["Transferring you."], tool="transfer_call"), Step([]))
    async with running_call(llm, ["A human please."], destination="sip:desk@example.com", transfer_ok=False) as call:
        await call.caller.say(500)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)
        assert "transfer_failed" in call.recorder.incident_kinds()
        assert call.recorder.turns[1].bot_text.startswith("Sorry, I could not transfer")


async def test_other_tools_still_reach_the_bot_functions():
    control = CallControl(Webhooks())
    result = await control.run(ToolCall("t1", "book_visit", {}))
    assert result.content == "done" and control.take_action() is None
    refused = await control.run(ToolCall("t2", "transfer_call", {}))  # no destination configured
    assert refused.content == "done" and control.take_action() is None


async def test_the_bot_presses_keys_for_a_phone_menu_and_goes_on_talking():
    llm = ToolScriptedLLM(Step([], tool="send_dtmf", tool_input={"digits": "2 #"}), Step(["I chose billing."]))
    async with running_call(llm, ["For billing press two, then hash."], keys=True) as call:
        await call.caller.say(700)
        await wait_until(lambda: call.recorder.turns, timeout=8)
        assert tool_names(llm.requests[0]) == ["end_call", "send_dtmf"]
        assert call.transport.dtmf == ["2#"]
        assert call.recorder.turns[0].bot_text == "I chose billing."
        assert not call.transport.hung_up and call.webhooks.calls == []


async def test_keys_are_checked_and_offered_only_when_they_can_be_sent():
    pressed: list[str] = []

    async def press(digits: str) -> None:
        pressed.append(digits)

    control = CallControl(Webhooks(), send_dtmf=press)
    wrong = await control.run(ToolCall("t1", "send_dtmf", {"digits": "call me"}))
    assert wrong.is_error and pressed == []
    assert not (await control.run(ToolCall("t2", "send_dtmf", {"digits": "*9a"}))).is_error
    assert pressed == ["*9A"]
    assert "send_dtmf" not in [spec.name for spec in CallControl(Webhooks()).specs]


# --- Silence and time limits ----------------------------------------------------------------------


async def test_a_silent_caller_is_reprompted_once_then_told_goodbye_and_hung_up_on():
    async with running_call(ToolScriptedLLM(), [], welcome_message="Hello!", caller_silence_s=0.5) as call:
        await wait_until(lambda: call.transport.hung_up, timeout=8)
        texts = [turn.bot_text for turn in call.recorder.turns]
        assert texts[0] == "Hello!" and texts[1] == "Are you still there?"
        await wait_until(lambda: len(call.recorder.turns) == 3, timeout=2)
        assert call.recorder.turns[2].bot_text.endswith("Goodbye!")
        assert "caller_silent" in call.recorder.incident_kinds()


async def test_an_answer_to_the_reprompt_keeps_the_call_going():
    llm = ToolScriptedLLM(Step(["Great."]))
    async with running_call(llm, ["Yes, I am here."], caller_silence_s=0.6) as call:
        await wait_until(lambda: call.recorder.turns, timeout=8)
        assert call.recorder.turns[0].bot_text == "Are you still there?"
        await call.caller.say(400)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)
        assert call.recorder.turns[1].bot_text == "Great." and not call.transport.hung_up


async def test_the_call_is_ended_politely_at_its_time_limit():
    async with running_call(ToolScriptedLLM(), [], max_call_duration_s=0.5) as call:
        await wait_until(lambda: call.transport.hung_up, timeout=8)
        assert "max_duration" in call.recorder.incident_kinds()
        await wait_until(lambda: call.recorder.turns, timeout=2)
        assert "time limit" in call.recorder.turns[0].bot_text


# --- Bot settings, the transfer XML and a transfer through Plivo ------------------------------------


@pytest.mark.django_db
def test_bot_call_control_settings_are_validated_and_normalized(api):
    bot = api.post("Voicebot/", {"name": "Desk"}).json()
    assert bot["transfer_destination"] == "" and bot["interruptions_enabled"] is True
    assert bot["interruption_min_words"] == 1 and "uh-huh" in bot["backchannel_words"]
    for destination in ("+14155550123", "sip:desk@example.com", ""):
        assert api.patch(f"Voicebot/{bot['id']}/", {"transfer_destination": destination}).status_code == 204
        assert api.get(f"Voicebot/{bot['id']}/").json()["transfer_destination"] == destination
    for wrong in ("4155550123", "+1 415 555", "desk@example.com", "sip:nohost"):
        response = api.patch(f"Voicebot/{bot['id']}/", {"transfer_destination": wrong})
        assert response.status_code == 400, wrong
        assert "E.164" in str(response.json())
    api.patch(f"Voicebot/{bot['id']}/", {"backchannel_words": ["OK", " Uh   huh ", "ok"],
                                         "interruptions_enabled": False, "interruption_min_words": 2})
    bot = api.get(f"Voicebot/{bot['id']}/").json()
    assert bot["backchannel_words"] == ["ok", "uh huh"]
    assert bot["interruptions_enabled"] is False and bot["interruption_min_words"] == 2


def test_transfer_xml_dials_a_number_or_a_sip_user_only_with_a_valid_token(client, settings):
    call_id = uuid.uuid4()
    for destination, tag, dialled in (("+14155550123", "Number", "14155550123"),
                                      ("sip:desk@example.com", "User", "sip:desk@example.com")):
        url = urlsplit(transfer_url(call_id, destination))
        response = client.post(f"{url.path}?{url.query}")
        assert response.status_code == 200 and response["Content-Type"] == "application/xml"
        (dial,) = ElementTree.fromstring(response.content)
        assert [(element.tag, element.text) for element in dial] == [(tag, dialled)]
        assert f"/plivo/transfer/{call_id}/result/" in dial.get("action") and dial.get("confirmSound") is None
    other = urlsplit(transfer_url(uuid.uuid4(), "+14155550123"))
    assert client.post(f"{url.path}?{other.query}").status_code == 403  # a token of another call
    assert client.post(f"{url.path}?token=forged").status_code == 403


@pytest.mark.real_time  # Plivo's fake and the database run on threads of their own
@pytest.mark.django_db(transaction=True)
async def test_a_phone_call_is_transferred_through_plivo_after_the_bot_line(client, api, vendors, settings):
    llm, stt, tts = vendors
    settings.PLIVO_VERIFY_SIGNATURES = False
    plivo = FakePlivo().start_in_thread()
    settings.PLIVO_API_BASE_URL = plivo.url
    try:
        await sync_to_async(use_plivo)(api.account, plivo)
        bot = await sync_to_async(api.post)("Voicebot/", {"name": "Desk", "transfer_destination": "+14155550123"})
        call_uuid = str(uuid.uuid4())
        plivo.calls.append(FakeCall(str(uuid.uuid4()), call_uuid, {}, status="in-progress"))
        path = await sync_to_async(answer)(client, api, bot.json(), call_uuid)
        stt.script("Can I speak to a person?")
        llm.script(Turn([Text("Sure, putting you through."), ToolUse("transfer_call", {})], stop_reason="tool_use"),
                   Turn([Text("")]))
        communicator = WebsocketCommunicator(application, path)
        assert (await communicator.connect())[0]
        await communicator.send_to(text_data=start_frame(call_uuid))
        peer = PlivoPeer(communicator)
        await peer.send_audio(speech(900) + silence(800))
        await peer.wait_for(lambda: plivo.calls[0].transfers)
        aleg_url = urlsplit(plivo.calls[0].transfers[0][0])
        xml = await sync_to_async(client.post)(f"{aleg_url.path}?{aleg_url.query}")
        (dial,) = ElementTree.fromstring(xml.content)
        assert [(element.tag, element.text) for element in dial] == [("Number", "14155550123")]
        assert "transfer_call" in [tool["name"] for tool in llm.requests[0].body["tools"]]
        await peer.send(peer.codec.stop(call_uuid))
        await communicator.disconnect()
        call = await CallRecord.objects.aget(call_uuid=call_uuid)
        events = [(event.kind, event.detail) async for event in call.events.all()]
        assert ("transferred", {"destination": "+14155550123"}) in events
    finally:
        plivo.stop()


# --- Adaptive end of turn ----------------------------------------------------------------------------


def test_unfinished_sounding_text_is_recognized():
    unfinished = ["My number is 415 555.", "five five", "it's john dot", "john@gmail", "J O H N", "A-B-C.",
                  "Tuesday at"]
    finished = ["I need a table.", "Is it 5?", "for two.", "john@gmail.com", "I have 2 kids", "Thanks!", ""]
    assert [text for text in unfinished if not sounds_unfinished(text)] == []
    assert [text for text in finished if sounds_unfinished(text)] == []


def test_a_turn_ending_mid_number_is_held_until_more_words_or_the_hold_ends():
    taker = TurnTaker(hold_s=1.5)
    assert taker.on_event(Transcript("My number is 415", is_final=True, speech_final=True)) == [
        CallerSpeaking(4), CallerPaused(1.5)]
    assert taker.on_event(UtteranceEnd(2.0)) == []  # the hold, not the utterance end, decides
    assert taker.on_event(Transcript("555 0123.", is_final=True, speech_final=True)) == [
        CallerSpeaking(6), CallerPaused(1.5)]
    assert taker.end_held_turn() == CallerTurnEnded("My number is 415 555 0123.")
    assert taker.end_held_turn() is None
    assert taker.on_event(Transcript("What are your hours?", is_final=True)) == [  # no endpoint needed
        CallerSpeaking(4), CallerTurnEnded("What are your hours?")]
    assert TurnTaker(hold_s=0).on_event(Transcript("Room 12", is_final=True, speech_final=True))[-1] == \
        CallerTurnEnded("Room 12")


async def test_a_caller_pausing_mid_number_is_answered_once_with_the_whole_number():
    llm = ToolScriptedLLM(Step(["Thanks, got it."]))
    async with running_call(llm, ["My number is 415 555.", "0123."]) as call:
        await call.caller.say(700)
        await asyncio.sleep(0.6)  # a breath between groups of digits: longer than the vendor's endpointing
        await call.caller.say(500)
        await wait_until(lambda: call.recorder.turns, timeout=8)
        assert call.recorder.turns[0].caller_text == "My number is 415 555. 0123."
        assert len(llm.requests) == 1


# --- Barge-in ----------------------------------------------------------------------------------------


def test_acknowledgements_do_not_count_as_interrupting_words():
    rules = InterruptionRules(min_words=1)
    for text in ("ok", "Okay.", "Uh-huh", "uh huh, right", "Mhm. Yeah.", "Sure"):
        assert rules.is_backchannel(text), text
    for text in ("Wait", "okay wait", "No, seven.", "Uh-huh, but what about parking?"):
        assert not rules.is_backchannel(text), text
    assert InterruptionRules(min_words=2).is_backchannel("ok stop")
    assert not InterruptionRules(min_words=2).is_backchannel("please stop")
    assert InterruptionRules(backchannel_words=["got it"]).is_backchannel("Got it.")


def test_an_interim_ending_on_the_start_of_an_acknowledgement_waits_for_the_next_word():
    rules = InterruptionRules()
    assert rules.is_backchannel("Got", partial=True) and rules.is_backchannel("Got it.")
    assert not rules.is_backchannel("Got a question", partial=True)
    assert not rules.is_backchannel("Got")  # a final transcript is taken as it is
    assert not rules.is_backchannel("Wait", partial=True)


class LateActivity(VoiceActivity):
    """A detector whose verdict on speech comes `delay_s` after the sound (a busy batch, a slow start)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.loud_since: float | None = None

    def update(self, audio: bytes, now: float) -> bool:
        heard_before = self.last_speech_at
        loud = super().update(audio, now)
        self.loud_since = (self.loud_since or now) if loud else None
        self.speaking = loud and now - self.loud_since >= self.delay_s
        self.last_speech_at = now if self.speaking else heard_before
        self._verdicts[-1] = replace(self._verdicts[-1], speech=self.speaking)
        return self.speaking


async def test_interim_words_ahead_of_the_voice_detector_interrupt_once_it_hears_the_voice():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(["Seven it is."]))
    # Interim results at 400 and 800 ms of speech; the voice detector hears the voice from 500 ms on.
    async with running_call(llm, ["Do you have a table tonight?", "Wait, seven please"],
                            activity=LateActivity(0.5), interim_every_ms=400, finalize_after_silence_s=None) as call:
        await call.caller.say(600)
        await wait_until(lambda: "turn0-seg0" in call.transport.played, timeout=8)
        await asyncio.sleep(1.0)  # the question's own voice is no longer recent; the bot still speaks
        started = clock.now()
        await call.caller.say(900)
        assert call.transport.clears and call.transport.clears[0] < started + 0.7  # not left for the next words


async def test_with_interruptions_off_the_caller_is_answered_after_the_bot_finishes():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(["Seven it is."]))
    async with running_call(llm, ["Do you have a table tonight?", "Seven please."],
                            interruptions_enabled=False) as call:
        await call.caller.say(600)
        await wait_until(lambda: "turn0-seg0" in call.transport.played, timeout=8)
        await call.caller.say(500)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=12)
        first, second = call.recorder.turns
        assert not call.transport.clears and not first.interrupted
        assert first.bot_text == "".join(LONG_REPLY).strip()
        assert (second.caller_text, second.bot_text) == ("Seven please.", "Seven it is.")


async def test_with_interruptions_off_a_reply_is_timed_from_the_words_it_answers():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(["Seven it is."]), Step(["Two it is."]))
    async with running_call(llm, ["Do you have a table tonight?", "Seven please.", "For two."],
                            interruptions_enabled=False) as call:
        await call.caller.say(600)
        await wait_until(lambda: "turn0-seg0" in call.transport.played, timeout=8)
        await call.caller.say(500)
        said_seven_until = call.caller.speech_ended_at
        await asyncio.sleep(1.0)  # "Seven please." is final, and the bot still speaks
        await call.caller.say(300)  # more words before it has finished
        await wait_until(lambda: len(call.recorder.turns) == 3, timeout=15)
        seven = next(turn for turn in call.recorder.turns if turn.caller_text == "Seven please.")
        assert seven.origin - said_seven_until < 0.5, seven.origin - said_seven_until
        assert seven.timings["latency_ms"] > 1000  # what the caller waited: the rest of the bot's turn


def test_silero_activity_hears_speech_but_not_silence_or_a_tone():
    def speech_frames(audio: bytes) -> int:
        activity = SileroActivity()
        return sum(activity.update(audio[i:i + 160], i / 8000) for i in range(0, len(audio), 160))

    recorded = recorded_audio("trouble")  # a spoken sentence, 8 kHz mu-law
    assert speech_frames(recorded) > len(recorded) // 160 // 2
    assert speech_frames(silence(2000)) == 0 and speech_frames(speech(2000)) == 0  # the fakes' tone is no voice


def test_batched_detection_of_many_calls_matches_judging_each_call_alone():
    recorded = recorded_audio("trouble")
    lines = {"speaker": recorded, "quiet": silence(len(recorded) // 8), "tone": speech(len(recorded) // 8)}
    alone = {name: SileroActivity() for name in lines}
    detector = BatchDetector()
    batched = {name: SileroActivity(detector=detector) for name in lines}
    for offset in range(0, len(recorded), 160):  # the calls' frames interleave, as on a busy server
        for name, audio in lines.items():
            alone[name].update(audio[offset:offset + 160], offset / 8000)
            batched[name].update(audio[offset:offset + 160], offset / 8000)
    deadline = time.monotonic() + 10
    while detector._waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the last batch being judged
    assert alone["speaker"].last_speech_at is not None
    for name in lines:
        assert batched[name].last_speech_at == alone[name].last_speech_at, name
        assert np.allclose(batched[name]._state, alone[name]._state, atol=1e-4), name
    assert batched["quiet"].last_speech_at is None and batched["tone"].last_speech_at is None


class DeafActivity(VoiceActivity):
    """A detector that never hears speech: every transcript is of noise or echo."""

    def update(self, audio: bytes, now: float) -> bool:
        return False


async def test_interim_words_without_voice_activity_do_not_cut_the_bot_off_but_a_final_does():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(["Seven it is."]))
    async with running_call(llm, ["Do you have a table tonight?", "Seven for me please"],
                            activity=DeafActivity()) as call:
        await call.caller.say(600)
        await wait_until(lambda: "turn0-seg0" in call.transport.played, timeout=8)
        await call.caller.say(700)  # interim words arrive meanwhile, with no voice heard behind them
        assert not call.transport.clears
        await wait_until(lambda: call.transport.clears, timeout=5)  # the final transcript still interrupts
        assert call.transport.clears[0] > call.caller.speech_ended_at + 0.2  # after the vendor's endpointing


@pytest.mark.django_db
def test_a_bots_call_settings_become_the_session_options(api):
    function = api.post("Function/", {"name": "check_tables", "handler_url": "https://example.com/tables",
                                      "filler_message": "Let me look at the bookings."}).json()
    assert function["filler_message"] == "Let me look at the bookings."
    quiet = api.post("Function/", {"name": "quiet", "handler_url": "https://example.com/quiet"}).json()
    assert quiet["filler_message"] == ""
    created = api.post("Voicebot/", {"name": "Desk", "callTimeout": 12, "max_call_duration": 600,
                                     "interruptions_enabled": False, "interruption_min_words": 3,
                                     "backchannel_words": ["got it"], "interruption_min_speech_ms": 120,
                                     "interruption_words_wait_ms": 800, "dead_air_ms": 4000,
                                     "filler_message": "Hang on.",
                                     "function_ids": [function["id"], quiet["id"]]}).json()
    options = session_options(Voicebot.objects.get(pk=created["id"]))
    assert (options.caller_silence_s, options.max_call_duration_s) == (12.0, 600 - TIME_LIMIT_GOODBYE_S)
    assert not options.interruptions_enabled and options.min_interruption_words == 3
    assert options.backchannel_words == ("got it",)
    assert (options.barge_in_min_speech_s, options.barge_in_words_wait_s, options.dead_air_s) == (0.12, 0.8, 4.0)
    assert options.filler_text == "Hang on."
    assert options.function_fillers == {"check_tables": "Let me look at the bookings."}
    assert options.llm_stall_s == 2.5


@pytest.mark.django_db
def test_the_model_stall_time_is_a_deployment_setting(api, settings):
    bot = Voicebot.objects.get(pk=api.post("Voicebot/", {"name": "Slow model"}).json()["id"])
    settings.LLM_STALL_S = 8.0
    assert session_options(bot).llm_stall_s == 8.0
    settings.LLM_STALL_S = 0.0
    assert session_options(bot).llm_stall_s is None  # never asked again: a self-hosted model may take its time


@pytest.mark.django_db
def test_barge_in_and_dead_air_settings_have_measured_defaults_and_sane_bounds(api):
    bot = api.post("Voicebot/", {"name": "Desk"}).json()
    assert (bot["interruption_min_speech_ms"], bot["interruption_words_wait_ms"], bot["dead_air_ms"]) == (
        round(SessionOptions().barge_in_min_speech_s * 1000), round(SessionOptions().barge_in_words_wait_s * 1000),
        round(SessionOptions().dead_air_s * 1000))
    assert bot["filler_message"] == SessionOptions().filler_text
    for field, wrong in (("interruption_min_speech_ms", 5), ("interruption_words_wait_ms", 10_000),
                         ("dead_air_ms", 100), ("filler_message", "x" * 201)):
        response = api.patch(f"Voicebot/{bot['id']}/", {field: wrong})
        assert response.status_code == 400 and field in response.json()["details"], field
