"""Who may open a bot's chat playground, and accounts made with their first member."""
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connections

from config.asgi import application
from voicebots.accounts.models import Account, Membership
from voicebots.accounts.services import create_member
from voicebots.bots.models import Voicebot

PASSWORD = "a-long-password-123"


def sign_in(client, username):
    assert client.login(username=username, password=PASSWORD)
    return client


def test_a_superuser_opens_the_playground_of_any_accounts_bot(client, api, other_api):
    create_member(api.account, "root", PASSWORD, superuser=True)
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    page = sign_in(client, "root").get(f"/playground/{theirs['id']}/")
    assert page.status_code == 200 and b"Playground: Theirs" in page.content
    admin_page = client.get(f"/admin/bots/voicebot/{theirs['id']}/change/")
    assert f"/playground/{theirs['id']}/".encode() in admin_page.content


def test_a_superuser_without_any_membership_opens_a_playground(client, other_api):
    get_user_model().objects.create_superuser("operator", password=PASSWORD)
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    assert sign_in(client, "operator").get(f"/playground/{theirs['id']}/").status_code == 200


def test_a_member_of_several_accounts_opens_each_accounts_playground(client, api, other_api):
    user = create_member(api.account, "both", PASSWORD)
    Membership.objects.create(user=user, account=other_api.account)
    ours = api.post("Voicebot/", {"name": "Ours"}).json()
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    sign_in(client, "both")
    assert client.get(f"/playground/{ours['id']}/").status_code == 200
    assert client.get(f"/playground/{theirs['id']}/").status_code == 200


def test_staff_of_another_account_still_get_a_404(client, api, other_api):
    create_member(api.account, "staffer", PASSWORD)  # staff (admin access) of their own account only
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    assert sign_in(client, "staffer").get(f"/playground/{theirs['id']}/").status_code == 404


@pytest.mark.django_db(transaction=True)
class TestPlaygroundSocket:
    @pytest.fixture(autouse=True)
    async def _close_consumer_connections(self):
        yield
        await sync_to_async(connections.close_all)()

    async def _connect(self, client, username, bot_id):
        await sync_to_async(client.login)(username=username, password=PASSWORD)
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        return WebsocketCommunicator(application, f"/ws/playground/{bot_id}/",
                                     headers=[(b"cookie", cookie), (b"host", b"testserver"),
                                              (b"origin", b"http://127.0.0.1:8000")])

    async def test_a_superuser_chats_with_another_accounts_bot_in_that_account(self, client, api, other_api,
                                                                               fake_anthropic):
        from tests.fakes.anthropic_server import Text, Turn

        await sync_to_async(create_member)(api.account, "root", PASSWORD, superuser=True)
        theirs = (await sync_to_async(other_api.post)("Voicebot/", {"name": "Theirs"})).json()
        fake_anthropic.script(Turn([Text("Hello from their bot.")]))
        socket = await self._connect(client, "root", theirs["id"])
        assert (await socket.connect())[0]
        await socket.send_json_to({"type": "message", "text": "Hi"})
        while (event := await socket.receive_json_from(timeout=10))["type"] != "done":
            assert event["type"] != "error", event
        assert event["response"] == "Hello from their bot."
        from voicebots.chats.models import ChatSession

        session = await ChatSession.objects.select_related("account").aget(pk=event["session_id"])
        assert session.account_id == other_api.account.pk
        await socket.disconnect()

    async def test_staff_of_another_account_are_refused(self, client, api, other_api):
        await sync_to_async(create_member)(api.account, "staffer", PASSWORD)
        theirs = (await sync_to_async(other_api.post)("Voicebot/", {"name": "Theirs"})).json()
        socket = await self._connect(client, "staffer", theirs["id"])
        connected, code = await socket.connect()
        assert not connected and code == 4404
        await socket.disconnect()  # its consumer ends now, not at the event loop's teardown


def test_create_account_adds_the_named_users_as_members(db, capsys):
    get_user_model().objects.create_user("ann", password=PASSWORD)
    call_command("create_account", "Acme", "--member", "ann")
    printed = json.loads(capsys.readouterr().out)
    account = Account.objects.get(auth_id=printed["auth_id"])
    assert printed["members"] == ["ann"]
    ann = get_user_model().objects.get(username="ann")
    assert Membership.objects.filter(user=ann, account=account).exists()
    assert ann.is_staff  # so that they can sign in to the admin


def test_create_account_with_an_unknown_user_creates_nothing(db):
    with pytest.raises(CommandError, match="nobody"):
        call_command("create_account", "Acme", "--member", "nobody")
    assert not Account.objects.exists() and not Voicebot.objects.exists()
