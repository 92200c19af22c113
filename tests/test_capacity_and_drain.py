"""Capacity, drain and the reaper: the deployment counts its web processes' calls in Redis (real, embedded),
refuses an answer politely when full, drains a stopping process without cutting calls, and marks ended the
calls of a process that died."""
import asyncio
import time
import uuid
from xml.etree import ElementTree

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from tests import calls
from tests.fakes.deepgram_server import silence
from tests.test_live_control import connected_call
from voicebots.calls import live
from voicebots.calls.models import Call
from voicebots.deployment import capacity, drain, reaper, registry
from voicebots.deployment.redis_client import client as redis_client
from voicebots.telephony.webhooks import connect_or_refuse

vendors, _close_consumer_connections = calls.vendors, calls._close_consumer_connections  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def clean_deployment(monkeypatch, settings):
    """No other process's heartbeats, no reservations, this process neither draining nor carrying calls."""
    settings.HEARTBEAT_INTERVAL_S = 1
    registry.stop()
    monkeypatch.setattr(registry, "_local", registry._Local())
    redis = redis_client()
    for key in redis.scan_iter(match="voicebots:*"):
        redis.delete(key)
    yield
    registry.stop()
    for key in redis.scan_iter(match="voicebots:*"):
        redis.delete(key)


def publish(process_id, *, calls, max_calls, draining=False, ttl=60):
    key = registry.KEY_PREFIX + process_id
    redis_client().hset(key, mapping={"host": "h", "pid": 1, "calls": calls, "max_calls": max_calls,
                                "draining": int(draining), "started_at": time.time()})
    redis_client().expire(key, ttl)


@pytest.fixture
def bot(api, settings):
    settings.PLIVO_VERIFY_SIGNATURES = False
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello, Smile Dental!"}).json()


def ring(client_, api, bot):
    return client_.post(f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/inbound_call",
                        {"CallUUID": str(uuid.uuid4()), "From": "14155550100", "To": "14155550199",
                         "Direction": "inbound", "CallStatus": "in-progress"})


def test_capacity_is_the_serving_processes_room_less_their_calls_and_answers_not_yet_streaming():
    assert capacity.admit("a").admitted and capacity.admit("a").capacity is None  # nobody reported: take it
    publish("web-a:1:x", calls=1, max_calls=2)
    publish("web-b:2:y", calls=0, max_calls=2)
    publish("web-c:3:z", calls=5, max_calls=2, draining=True)  # draining: neither room nor load
    first = capacity.admit("call-1")
    assert first.admitted and (first.capacity, first.load) == (4, 1)
    second = capacity.admit("call-2")
    assert second.admitted and second.load == 2  # the first answer's reservation counts
    capacity.stream_started("call-1")  # ... until its stream starts (the process's count takes over)
    publish("web-b:2:y", calls=1, max_calls=2)
    third = capacity.admit("call-3")
    assert third.admitted and third.load == 3
    refused = capacity.admit("call-4")
    assert not refused.admitted and refused.reason == "Refused: the deployment was at capacity (4 of 4 calls)."


def test_a_deployment_that_is_only_draining_refuses_with_that_reason():
    publish("web-a:1:x", calls=0, max_calls=50, draining=True)
    refused = capacity.admit("call-1")
    assert not refused.admitted and "draining" in refused.reason


def test_a_full_deployment_answers_with_a_polite_refusal_and_a_record_saying_why(client, api, bot):
    publish("web-a:1:x", calls=3, max_calls=3)
    response = ring(client, api, bot)
    assert response.status_code == 200 and response["Content-Type"] == "application/xml"
    xml = ElementTree.fromstring(response.content)
    assert [element.tag for element in xml] == ["Speak", "Hangup"]
    assert "lines are busy" in xml.find("Speak").text
    call = Call.objects.get()
    assert call.status == "failed" and call.end_reason == "Refused: the deployment was at capacity (3 of 3 calls)."
    assert call.events.get(kind="refused_at_capacity").detail == {"capacity": 3, "load": 3}

    publish("web-a:1:x", calls=2, max_calls=3)  # a call ended: there is room again
    response = ring(client, api, bot)
    assert ElementTree.fromstring(response.content).find("Stream") is not None


def test_a_person_we_called_is_not_asked_to_call_again_when_the_deployment_is_full(client, api, bot):
    call = Call.objects.create(account=api.account, voicebot_id=bot["id"], direction=Call.Direction.OUTBOUND,
                               status=Call.Status.RINGING, from_number="14155550199", to_number="14155550100")
    publish("web-a:1:x", calls=3, max_calls=3)
    response = connect_or_refuse(call.voicebot, call)
    xml = ElementTree.fromstring(response.content)
    assert [element.tag for element in xml] == ["Speak", "Hangup"]
    assert xml.find("Speak").text == "Sorry, we can't continue this call right now. Goodbye."
    call.refresh_from_db()
    assert call.status == "failed" and call.end_reason.startswith("Refused: the deployment was at capacity")


async def test_this_process_counts_its_calls_and_takes_back_the_reservation_when_a_stream_starts(
        client, api, bot, vendors):
    publish("web-other:9:q", calls=0, max_calls=10)
    registry.ensure_started()
    call, communicator, peer = await connected_call(client, api, bot)
    assert redis_client().zscore(capacity.RESERVATIONS_KEY, str(call.id)) is None
    await peer.wait_for(lambda: redis_client().hget(registry.KEY_PREFIX + registry.process.process_id(), "calls") == "1")
    await call.arefresh_from_db()
    assert call.web_process == registry.process.process_id()
    await communicator.disconnect()
    await peer.wait_for(lambda: redis_client().hget(registry.KEY_PREFIX + registry.process.process_id(), "calls") == "0")


async def test_drain_lets_a_call_finish_then_ends_the_rest_politely_with_the_reason(client, api, bot, vendors):
    llm, stt, tts = vendors
    call, communicator, peer = await connected_call(client, api, bot)
    await peer.send_audio(silence(300))
    draining = asyncio.create_task(drain.drain(timeout_s=1.0))
    await asyncio.sleep(0.2)
    assert registry.is_draining()
    health = await sync_to_async(client.get)("/healthz")
    assert health.status_code == 503 and health.json() == {"status": "draining", "calls": 1}
    assert await asyncio.wait_for(draining, 30) == 1
    assert drain.GOODBYE in tts.transcripts.values()
    await peer.wait_for(lambda: peer.count("closed"))
    await call.arefresh_from_db()
    assert call.has_ended and call.end_reason == drain.END_REASON
    turns = [turn.bot_text async for turn in call.turns.order_by("index")]
    assert turns == ["Hello, Smile Dental!", drain.GOODBYE]


async def test_drain_returns_as_soon_as_the_calls_have_ended_by_themselves(client, api, bot, vendors):
    call, communicator, peer = await connected_call(client, api, bot)
    draining = asyncio.create_task(drain.drain(timeout_s=30))
    await asyncio.sleep(0.3)
    await peer.send(peer.codec.stop(call.call_uuid))
    assert await asyncio.wait_for(draining, 10) == 0
    await call.arefresh_from_db()
    assert call.end_reason == "The call's audio stream stopped."
    assert live.carried() == []


def test_the_reaper_ends_calls_whose_process_is_gone_and_leaves_the_others(api):
    publish("alive:1:a", calls=1, max_calls=10)
    started = timezone.now()
    orphan = Call.objects.create(account=api.account, status="in-progress", stream_started_at=started,
                                 answered_at=started, web_process="dead:2:b")
    carried = Call.objects.create(account=api.account, status="in-progress", stream_started_at=started,
                                  web_process="alive:1:a")
    not_streaming = Call.objects.create(account=api.account, status="in-progress")
    assert reaper.reap_orphaned_calls() == 1
    orphan.refresh_from_db()
    assert orphan.has_ended and "dead:2:b" in orphan.end_reason and "reaper" in orphan.end_reason
    assert orphan.events.filter(kind="process_lost").exists()
    for other in (carried, not_streaming):
        other.refresh_from_db()
        assert other.status == "in-progress"


def test_the_reaper_spares_a_process_whose_heartbeat_comes_back(api, settings, monkeypatch):
    """A restarted Redis has lost every heartbeat for a moment: a second look saves their calls."""
    call = Call.objects.create(account=api.account, status="in-progress", stream_started_at=timezone.now(),
                               web_process="busy:3:c")
    real_sleep = time.sleep
    monkeypatch.setattr(reaper.time, "sleep", lambda s: (publish("busy:3:c", calls=1, max_calls=10), real_sleep(0)))
    assert reaper.reap_orphaned_calls() == 0
    call.refresh_from_db()
    assert call.status == "in-progress"


def test_a_long_end_reason_is_cut_to_fit_instead_of_failing_the_calls_end(api):
    """A vendor error quoted in the reason (Plivo unreachable, with its whole URL) once made finalize fail."""
    from voicebots.calls import services as calls

    call = Call.objects.create(account=api.account, status="queued")
    calls.finalize(call, status="failed", reason="Plivo did not place the call: " + "x" * 400)
    call.refresh_from_db()
    assert call.status == "failed" and len(call.end_reason) == 255
