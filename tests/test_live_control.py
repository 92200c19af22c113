"""Live control through the API: POST Call/{id}/end|say|transfer reach the call over the Channels layer (the real
embedded Redis) and its stream consumer hands them to the call; a call that is not live is a 409.

The call runs through the real ASGI app (WebsocketCommunicator) with the vendor fakes; tests/test_multiprocess.py
does the same across separate web processes.
"""
import uuid
from xml.etree import ElementTree

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from tests import calls
from tests.fakes.deepgram_server import silence
from tests.fakes.plivo_server import CallPlan, FakeCall, FakePlivo
from tests.test_outbound_calls import use_plivo
from tests.test_phone_calls import PlivoPeer, start_call
from voicebots.calls import live
from voicebots.calls.models import Call

pytestmark = pytest.mark.django_db(transaction=True)
vendors, _close_consumer_connections = calls.vendors, calls._close_consumer_connections  # fixtures


@pytest.fixture
def bot(api, settings):
    settings.PLIVO_VERIFY_SIGNATURES = False
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello, Smile Dental!"}).json()


async def connected_call(client, api, bot):
    call_uuid, communicator, peer = await start_call(client, api, bot)
    await peer.wait_for(lambda: peer.count("checkpoint") > 0)  # the greeting was sent: the call is live
    call = await Call.objects.aget(call_uuid=call_uuid)
    await peer.wait_for(lambda: live.carried() and live.carried()[0].call_id == str(call.id))
    return call, communicator, peer


def post(api, path, payload=None):
    return sync_to_async(api.post)(path, payload)


async def test_say_reaches_the_live_call_and_the_bot_speaks_the_text(client, api, bot, vendors):
    llm, stt, tts = vendors
    call, communicator, peer = await connected_call(client, api, bot)
    await peer.send_audio(silence(600))
    response = await post(api, f"Call/{call.id}/say", {"text": "Your table is ready."})
    assert response.status_code == 202, response.json()
    assert response.json()["message"] == "text queued" and "api_id" in response.json()
    await peer.wait_for(lambda: "Your table is ready." in tts.transcripts.values(), timeout=10)
    await peer.send_audio(silence(1000))
    turns = [turn async for turn in call.turns.order_by("index")]
    assert [turn.bot_text for turn in turns] == ["Hello, Smile Dental!", "Your table is ready."]
    event = await call.events.filter(kind="live_say").afirst()
    assert event.detail["text"] == "Your table is ready." and event.detail["interrupt"] is False
    await communicator.disconnect()


async def test_end_says_the_goodbye_hangs_up_and_the_record_says_why(client, api, bot, vendors):
    llm, stt, tts = vendors
    call, communicator, peer = await connected_call(client, api, bot)
    await peer.send_audio(silence(400))
    response = await post(api, f"Call/{call.id}/end/", {"say": "We must end the call now. Goodbye!"})
    assert response.status_code == 202
    await peer.wait_for(lambda: peer.count("closed"), timeout=10)
    assert "We must end the call now. Goodbye!" in tts.transcripts.values()
    await call.arefresh_from_db()
    assert call.has_ended and call.end_reason == "Ended through live control."
    assert live.carried() == []
    again = await post(api, f"Call/{call.id}/end", {})
    assert again.status_code == 409 and "already ended" in again.json()["error"]


async def test_a_warm_transfer_goes_through_plivo_with_the_summary_said_to_whoever_answers(
        client, api, bot, vendors, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url  # Plivo fetches the transfer's XML from the app
    plivo = FakePlivo(plan=CallPlan()).start_in_thread()
    settings.PLIVO_API_BASE_URL = plivo.url
    try:
        await sync_to_async(use_plivo)(api.account, plivo)
        call, communicator, peer = await connected_call(client, api, bot)
        plivo.calls.append(FakeCall(str(uuid.uuid4()), call.call_uuid, {}, status="in-progress"))
        response = await post(api, f"Call/{call.id}/transfer", {
            "to": "+14155550123", "summary": "Ada wants to move her cleaning to Friday morning."})
        assert response.status_code == 202
        await peer.wait_for(lambda: plivo.calls[0].announcements, timeout=15)
        url, xml = plivo.calls[0].transfers[0]
        dial = ElementTree.fromstring(xml).find("Dial")
        assert dial.find("Number").text == "14155550123" and "/announcement/" in dial.get("confirmSound")
        # The person called takes the call by pressing 1: a voicemail that picks up never gets the caller.
        assert (dial.get("confirmKey"), dial.get("timeout"), dial.get("method")) == ("1", "30", "POST")
        announcement = ElementTree.fromstring(plivo.calls[0].announcements[0])
        assert announcement.find("Speak").text == (
            "Ada wants to move her cleaning to Friday morning. Press 1 to take the call.")
        await peer.wait_for(lambda: plivo.calls[0].dial_results, timeout=15)
        assert list(ElementTree.fromstring(plivo.calls[0].dial_results[0])) == []  # taken: nothing more to do
        event = await call.events.filter(kind="transferred").afirst()
        assert event.detail == {"destination": "+14155550123",
                                "summary": "Ada wants to move her cleaning to Friday morning."}
        assert plivo.callback_errors == []
        await communicator.disconnect()
    finally:
        plivo.stop()


async def test_a_transfer_nobody_answers_tells_the_caller_instead_of_dropping_them(
        client, api, bot, vendors, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    plivo = FakePlivo(plan=CallPlan(transfer_status="no-answer")).start_in_thread()
    settings.PLIVO_API_BASE_URL = plivo.url
    try:
        await sync_to_async(use_plivo)(api.account, plivo)
        call, communicator, peer = await connected_call(client, api, bot)
        plivo.calls.append(FakeCall(str(uuid.uuid4()), call.call_uuid, {}, status="in-progress"))
        response = await post(api, f"Call/{call.id}/transfer", {"to": "+14155550123", "summary": "Ada, about Friday."})
        assert response.status_code == 202
        await peer.wait_for(lambda: plivo.calls[0].dial_results, timeout=15)
        assert plivo.calls[0].announcements == []  # nobody answered, so nobody heard the summary
        result = ElementTree.fromstring(plivo.calls[0].dial_results[0])
        assert [element.tag for element in result] == ["Speak", "Hangup"]
        assert "nobody could take your call" in result.find("Speak").text
        assert plivo.calls[0].ended.is_set()
        event = await call.events.filter(kind="transfer_unanswered").afirst()
        assert event.detail == {"status": "no-answer"}
        assert plivo.callback_errors == []
        await communicator.disconnect()
    finally:
        plivo.stop()


def test_the_transfer_result_needs_its_token(client):
    call_id = uuid.uuid4()
    response = client.post(f"/plivo/transfer/{call_id}/result/?token=forged", {"DialStatus": "no-answer"})
    assert response.status_code == 403
    assert client.get(f"/plivo/transfer/{call_id}/result/").status_code == 405


async def test_a_cold_transfer_dials_without_an_announcement(client, api, bot, vendors, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    plivo = FakePlivo(plan=CallPlan()).start_in_thread()
    settings.PLIVO_API_BASE_URL = plivo.url
    try:
        await sync_to_async(use_plivo)(api.account, plivo)
        call, communicator, peer = await connected_call(client, api, bot)
        plivo.calls.append(FakeCall(str(uuid.uuid4()), call.call_uuid, {}, status="in-progress"))
        assert (await post(api, f"Call/{call.id}/transfer", {"to": "sip:desk@example.com"})).status_code == 202
        await peer.wait_for(lambda: plivo.calls[0].transfers and plivo.calls[0].transfers[0][1], timeout=15)
        dial = ElementTree.fromstring(plivo.calls[0].transfers[0][1]).find("Dial")
        assert dial.find("User").text == "sip:desk@example.com" and dial.get("confirmSound") is None
        assert plivo.calls[0].announcements == []
        await communicator.disconnect()
    finally:
        plivo.stop()


async def test_bad_bodies_are_400s_that_name_the_field_and_reach_no_call(client, api, bot, vendors):
    call, communicator, peer = await connected_call(client, api, bot)
    for path, body, field in ((f"Call/{call.id}/say", {}, "text"),
                              (f"Call/{call.id}/say", {"text": "x" * 1001}, "text"),
                              (f"Call/{call.id}/say", {"text": "Hi", "loud": True}, "loud"),
                              (f"Call/{call.id}/transfer", {"to": "4155550123"}, "to"),
                              (f"Call/{call.id}/transfer", {"summary": "hi"}, "to"),
                              (f"Call/{call.id}/end", {"say": 5, "x": 1}, "x")):
        response = await post(api, path, body)
        assert response.status_code == 400, (path, body)
        assert field in response.json()["details"], response.json()
    assert not await call.events.filter(kind__startswith="live_").aexists()
    await communicator.disconnect()


async def test_calls_that_are_not_live_are_409s_and_other_accounts_calls_404s(api, other_api, bot, monkeypatch):
    monkeypatch.setattr(live, "REPLY_TIMEOUT_S", 0.5)
    ringing = await Call.objects.acreate(account=api.account, direction="outbound", status="ringing")
    response = await post(api, f"Call/{ringing.id}/say", {"text": "Hello?"})
    assert response.status_code == 409 and "not connected to a bot yet" in response.json()["error"]
    # In progress in the database, but no web process carries it (its process died): nobody answers.
    orphan = await Call.objects.acreate(account=api.account, direction="inbound", status="in-progress",
                                        stream_started_at=timezone.now(), web_process="gone:1:abc")
    response = await post(api, f"Call/{orphan.id}/end", {})
    assert response.status_code == 409 and "not live on any web process" in response.json()["error"]
    assert (await post(other_api, f"Call/{orphan.id}/end", {})).status_code == 404
    assert (await post(api, f"Call/{uuid.uuid4()}/transfer", {"to": "+14155550123"})).status_code == 404
    assert (await post(api, "Call/not-a-uuid/say", {"text": "Hi"})).status_code == 404


# --- The pages' live-call buttons (calls/live_views.py); the browser test is in tests/test_multiprocess.py ------


def test_the_buttons_act_only_on_the_users_own_calls_and_say_why_nothing_was_sent(client, api, other_api):
    from django.contrib.messages import get_messages

    from voicebots.accounts.services import create_member

    create_member(api.account, "desk", "a-long-password-123")
    client.login(username="desk", password="a-long-password-123")
    ended = Call.objects.create(account=api.account, status="completed")
    theirs = Call.objects.create(account=other_api.account, status="in-progress", stream_started_at=timezone.now())
    assert client.post(f"/calls/{theirs.id}/live/end/").status_code == 404
    assert client.post(f"/calls/{ended.id}/live/reboot/").status_code == 404

    response = client.post(f"/calls/{ended.id}/live/say/", {"text": "Hello?", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == f"/admin/calls/call/{ended.id}/change/"
    assert "has already ended" in [str(m) for m in get_messages(response.wsgi_request)][-1]

    live_call = Call.objects.create(account=api.account, status="in-progress", stream_started_at=timezone.now())
    response = client.post(f"/calls/{live_call.id}/live/transfer/", {"to": "12345", "next": "/admin/"})
    assert response["Location"] == "/admin/"
    message = [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert message.startswith("Nothing was sent: to: Use an E.164 phone number")
    assert not live_call.events.exists()

    client.logout()
    assert client.post(f"/calls/{live_call.id}/live/end/")["Location"].startswith("/admin/login/")


async def test_the_command_inbox_stops_when_cancelled_even_if_the_layer_turns_the_cancellation_into_an_error():
    """channels_redis's receive may end a cancelled wait with an AssertionError from its clean-up; the inbox must
    stop all the same (an event loop closing waits for it)."""
    import asyncio

    class Layer:
        async def new_channel(self):
            return "specific.test!x"

        async def receive(self, channel):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise AssertionError("receive_lock still held")

    inbox = live._Inbox()
    inbox.layer = Layer()
    assert await inbox.channel_name() == "specific.test!x"
    await asyncio.sleep(0.05)
    inbox._task.cancel()
    done, _ = await asyncio.wait([inbox._task], timeout=3)
    assert done and inbox._task.cancelled()
