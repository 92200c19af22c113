"""The browser chat playground: page and WebSocket, end to end through the ASGI app."""
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from channels.testing import WebsocketCommunicator

from config.asgi import application
from voicebots.accounts.services import create_member
from tests.fakes.anthropic_server import Text, ToolUse, Turn
from tests.fakes.http_handler import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_consumer_connections():
    """Consumers reach the database from asgiref's worker thread; close its connection after each test."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def member(client, api):
    create_member(api.account, "player", "a-long-password-123")
    client.login(username="player", password="a-long-password-123")
    return client


def connect(client, bot_id):
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return WebsocketCommunicator(application, f"/ws/playground/{bot_id}/", headers=[
        (b"cookie", cookie), (b"host", b"testserver"), (b"origin", b"http://127.0.0.1:8000")])


async def receive_until(communicator, kind, timeout=10):
    events = []
    while True:
        event = await communicator.receive_json_from(timeout=timeout)
        events.append(event)
        if event["type"] == kind:
            return events


def test_playground_page_for_members_only(member, api, other_api, client):
    bot = api.post("Voicebot/", {"name": "Desk"}).json()
    page = member.get(f"/playground/{bot['id']}/")
    assert page.status_code == 200 and b"Playground: Desk" in page.content
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    assert member.get(f"/playground/{theirs['id']}/").status_code == 404
    admin_page = member.get(f"/admin/bots/voicebot/{bot['id']}/change/")
    assert f"/playground/{bot['id']}/".encode() in admin_page.content


def test_playground_page_says_when_the_key_is_missing(member, api, settings):
    settings.ANTHROPIC_API_KEY = ""
    bot = api.post("Voicebot/", {"name": "Desk"}).json()
    assert b"ANTHROPIC_API_KEY is not configured" in member.get(f"/playground/{bot['id']}/").content


@pytest.fixture
def bot_with_tool(api, function_handler):
    function_handler.reply("/hours", Reply.json({"open": "9-17"}))
    function = api.post("Function/", {"name": "opening_hours", "handler_url": function_handler.url_for("/hours")})
    return api.post("Voicebot/", {"name": "Desk", "function_ids": [function.json()["id"]]}).json()


@pytest.fixture
def their_bot(other_api):
    return other_api.post("Voicebot/", {"name": "Theirs"}).json()


@pytest.fixture
def plain_bot(api):
    return api.post("Voicebot/", {"name": "Desk"}).json()


async def test_playground_streams_tokens_tools_and_new_conversations(member, bot_with_tool, fake_anthropic):
    bot = bot_with_tool
    fake_anthropic.script(
        Turn([ToolUse("opening_hours", {})], stop_reason="tool_use"),
        Turn([Text("We are open ", "nine to five.")]),
        Turn([Text("Fresh start.")]),
    )
    communicator = connect(member, bot["id"])
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "message", "text": "When are you open?"})
    events = await receive_until(communicator, "done")
    kinds = [e["type"] for e in events]
    assert kinds.index("tool_started") < kinds.index("tool_finished") < kinds.index("done")
    assert "".join(e["text"] for e in events if e["type"] == "text") == "We are open nine to five."
    finished = next(e for e in events if e["type"] == "tool_finished")
    assert "9-17" in finished["result"] and not finished["is_error"]
    first_session = events[-1]["session_id"]

    await communicator.send_json_to({"type": "new"})
    assert (await communicator.receive_json_from())["type"] == "new"
    await communicator.send_json_to({"type": "message", "text": "Hello again"})
    events = await receive_until(communicator, "done")
    assert events[-1]["session_id"] != first_session
    assert len(fake_anthropic.requests[2].body["messages"]) == 1  # the new conversation has no history
    await communicator.disconnect()


async def test_playground_refuses_strangers_and_other_accounts(member, their_bot):
    theirs = their_bot
    communicator = connect(member, theirs["id"])
    connected, code = await communicator.connect()
    assert not connected and code == 4404
    anonymous = WebsocketCommunicator(application, f"/ws/playground/{theirs['id']}/",
                                      headers=[(b"origin", b"http://127.0.0.1:8000")])
    connected, code = await anonymous.connect()
    assert not connected and code == 4401
    cookie = communicator.scope["headers"][0]
    elsewhere = WebsocketCommunicator(application, f"/ws/playground/{theirs['id']}/",
                                      headers=[cookie, (b"origin", b"https://evil.example")])
    connected, _ = await elsewhere.connect()
    assert not connected  # another site's page cannot use the member's session
    # A refused socket's consumer still runs until the client goes: end each here, not at the loop's teardown
    # (where a channel layer's receive may ignore the cancellation and hang the run).
    for refused in (communicator, anonymous, elsewhere):
        await refused.disconnect()


async def test_playground_reports_a_missing_key(member, plain_bot, settings):
    settings.ANTHROPIC_API_KEY = ""
    communicator = connect(member, plain_bot["id"])
    connected, _ = await communicator.connect()
    assert connected
    event = await communicator.receive_json_from()
    assert event["type"] == "error" and "ANTHROPIC_API_KEY" in event["error"]
    await communicator.disconnect()
