"""The simulated callers (simulate_call's and the benchmarks'), against the real web server in a process of its own:
a Plivo caller and a browser caller each greeted and answered, with the latencies they measure."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from django.test import Client

from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_server import FakeDeepgram, silence, silence_pcm16, speech, speech_pcm16
from tests.live_app import LiveApp
from voicebots.accounts.services import create_member
from voicebots.bots.models import Voicebot
from voicebots.calls.models import Call
from voicebots.telephony.management.commands.simulate_call import answer
from voicebots.telephony.simulator import PlivoCallSimulator
from voicebots.web.voice_simulator import BrowserCallSimulator

# Under `pytest -n`, one worker runs the whole module (tests/scheduling.py): its tests share a web server.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def app(django_db_setup):
    """One web server and set of vendor fakes for both callers (starting them takes seconds)."""
    llm, stt, tts = FakeAnthropic(), FakeDeepgram(), FakeCartesia(ms_per_char=20)
    for fake in (llm, stt, tts):
        fake.start_in_thread()
    llm.default_turn = Turn([Text("We open at nine.")])
    stt.script(*["When do you open?"] * 4)
    with LiveApp({"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": llm.url, "DEEPGRAM_API_KEY": "test-key",
                  "DEEPGRAM_BASE_URL": stt.ws_url.replace("ws://", "http://"), "CARTESIA_API_KEY": "test-key",
                  "CARTESIA_BASE_URL": tts.http_url, "PLIVO_VERIFY_SIGNATURES": "false"}) as live:
        yield live
    for fake in (llm, stt, tts):
        fake.stop()


@pytest.fixture
def bot(api):
    create_member(api.account, "talker", "a-long-password-123")
    return Voicebot.objects.select_related("account").get(pk=api.post("Voicebot/", {
        "name": "Desk", "welcome_message": "Hello!", "callTimeout": 30}).json()["id"])


def check(result, call):
    assert result.greeting_first_audio_ms is not None and not result.closed_by_server
    assert len(result.turns) == 1 and result.turns[0].latency_ms is not None and result.turns[0].latency_ms > 0
    assert result.checkpoints_acked and result.bot_audio
    assert [turn.caller_text for turn in call.turns.order_by("index")] == ["", "When do you open?"]


def test_a_plivo_caller_is_greeted_and_answered(app, bot):
    call_uuid = str(uuid.uuid4())
    url = answer(bot, app.url, {"CallUUID": call_uuid, "From": "14155550100", "To": "14155550199",
                                "Direction": "inbound", "CallStatus": "in-progress"})
    simulator = PlivoCallSimulator(url, call_id=call_uuid, caller_audio=speech(700) + silence(1500), linger_s=0.5)
    result = asyncio.run(simulator.run())
    check(result, Call.objects.get(call_uuid=call_uuid))


def test_a_browser_caller_is_greeted_and_answered(app, bot):
    client = Client()
    assert client.login(username="talker", password="a-long-password-123")
    simulator = BrowserCallSimulator(app.url.replace("http", "ws") + f"/ws/voice/{bot.id}/",
                                     cookie=f"sessionid={client.cookies['sessionid'].value}", origin=app.url,
                                     caller_audio=speech_pcm16(700) + silence_pcm16(1500), linger_s=0.5)
    result = asyncio.run(simulator.run())
    call = Call.objects.get(pk=result.call_id)
    check(result, call)
    assert call.direction == "web" and simulator.ended == {"type": "end", "code": 1000,
                                                           "reason": "The caller hung up."}
    assert len(result.bot_audio) % 2 == 0 and result.events_received["audio"] > 0
