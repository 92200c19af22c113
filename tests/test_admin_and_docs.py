import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from voicebots.accounts.services import create_member
from voicebots.bots.models import Voicebot

MODELS = ["accounts/account", "accounts/membership", "bots/voicebot", "functions/function", "knowledge/knowledgebase",
          "django_celery_beat/periodictask"]


@pytest.fixture
def superuser_client(client, api):
    create_member(api.account, "root", "a-long-password-123", superuser=True)
    client.login(username="root", password="a-long-password-123")
    return client


@pytest.mark.parametrize("model", MODELS)
def test_admin_changelist_and_add_pages_load(superuser_client, model):
    assert superuser_client.get(f"/admin/{model}/").status_code == 200
    assert superuser_client.get(f"/admin/{model}/add/").status_code == 200


def test_admin_change_pages_load_with_data(superuser_client, api):
    function_id = api.post("Function/", {"name": "f", "handler_url": "https://example.com/x"}).json()["id"]
    document_id = api.upload("Knowledgebase/", "a.txt", b"Some knowledge").json()["id"]
    bot_id = api.post("Voicebot/", {"name": "Shown", "function_ids": [function_id],
                                    "knowledgebase_ids": [document_id]}).json()["id"]
    page = superuser_client.get(f"/admin/bots/voicebot/{bot_id}/change/")
    assert page.status_code == 200
    assert b"inbound_call" in page.content
    assert superuser_client.get(f"/admin/functions/function/{function_id}/change/").status_code == 200
    assert superuser_client.get(f"/admin/knowledge/knowledgebase/{document_id}/change/").status_code == 200
    assert superuser_client.get(f"/admin/accounts/account/{api.account.pk}/change/").status_code == 200
    search = superuser_client.get("/admin/bots/voicebot/", {"q": "Shown"})
    assert b"Shown" in search.content


def test_creating_an_account_in_the_admin_shows_its_token_once(superuser_client):
    response = superuser_client.post("/admin/accounts/account/add/", {"name": "Via admin", "plivo_auth_id": "",
                                                                     "plivo_auth_token": ""}, follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("auth_token" in m for m in messages), messages


def test_members_see_only_their_own_accounts_data(client, api, other_api):
    api.post("Voicebot/", {"name": "Mine"})
    other_api.post("Voicebot/", {"name": "Theirs"})
    theirs = Voicebot.objects.get(name="Theirs")
    create_member(api.account, "staffer", "a-long-password-123")
    client.login(username="staffer", password="a-long-password-123")
    listing = client.get("/admin/bots/voicebot/")
    assert listing.status_code == 200
    assert b"Mine" in listing.content and b"Theirs" not in listing.content
    assert client.get(f"/admin/bots/voicebot/{theirs.pk}/change/").status_code in (302, 404)
    accounts = client.get("/admin/accounts/account/")
    assert other_api.account.auth_id.encode() not in accounts.content


def test_member_adds_a_bot_in_the_admin_and_it_lands_in_their_account(client, api):
    create_member(api.account, "staffer", "a-long-password-123")
    client.login(username="staffer", password="a-long-password-123")
    form = {"name": "Admin-made", "prompt": "", "welcome_message": "", "llm_provider": "anthropic",
            "llm_model": "claude-haiku-5-5", "tts_provider": "cartesia", "tts_voice": "v", "stt_provider": "deepgram",
            "stt_language": "en", "call_timeout": 30, "max_call_duration": 1800, "interruption_min_words": 1,
            "interruption_min_speech_ms": 60, "interruption_words_wait_ms": 500, "dead_air_ms": 2500}
    response = client.post("/admin/bots/voicebot/add/", form)
    assert response.status_code == 302, response.content[:2000]
    assert Voicebot.objects.get(name="Admin-made").account == api.account


def test_a_members_admin_page_looks_up_their_account_once(client, api):
    """Every model's permission check asks for the member's account; one page asks the database once."""
    create_member(api.account, "staffer", "a-long-password-123")
    client.login(username="staffer", password="a-long-password-123")
    for url in ("/admin/", "/admin/bots/voicebot/", "/admin/bots/voicebot/add/"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        lookups = [query["sql"] for query in queries.captured_queries if "accounts_membership" in query["sql"]]
        assert len(lookups) == 1, (url, lookups)


def test_home_page_for_a_signed_in_member(client, api):
    create_member(api.account, "staffer", "a-long-password-123")
    assert client.get("/").status_code == 302  # to the login page
    client.login(username="staffer", password="a-long-password-123")
    page = client.get("/")
    assert page.status_code == 200 and api.account.auth_id.encode() in page.content


def test_openapi_document_describes_the_api(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in ("/v1/Account/{auth_id}/Voicebot/", "/v1/Account/{auth_id}/Function/{id}/",
                 "/v1/Account/{auth_id}/Knowledgebase/"):
        assert path in paths
    assert schema["components"]["securitySchemes"]["accountBasic"]["scheme"] == "basic"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
