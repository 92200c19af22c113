"""Input a client can send is answered with a clear 4xx, never a 500, and nothing is lost or garbled."""
import json
import uuid

import pytest

from voicebots.campaigns.models import Campaign
from voicebots.functions.models import Function


def assert_clear_error(response, status):
    assert response.status_code == status, response.content[:500]
    body = response.json()
    uuid.UUID(body["api_id"])
    assert isinstance(body["error"], str) and len(body["error"]) > 10, body
    return body


# --- NUL characters inside JSON-stored values -----------------------------------------------------------------

def test_a_nul_character_in_fixed_parameters_is_a_400(api):
    response = api.post("Function/", {"name": "f", "handler_url": "https://example.com/x",
                                      "fixedParameters": [{"name": "clinic", "value": "c\u000042"}]})
    body = assert_clear_error(response, 400)
    assert "NUL" in body["error"]
    assert not Function.objects.exists()


def test_a_nul_character_in_a_key_or_a_patch_is_a_400(api):
    function = api.post("Function/", {"name": "f", "handler_url": "https://example.com/x"}).json()
    response = api.patch(f"Function/{function['id']}", {"fixedParameters": [{"name": "a", "value": {"k\u0000": 1}}]})
    assert "NUL" in assert_clear_error(response, 400)["error"]


@pytest.fixture
def plivo_account(api, fake_plivo):
    api.account.plivo_auth_id, api.account.plivo_auth_token = fake_plivo.auth_id, fake_plivo.auth_token
    api.account.save()
    return api


def test_a_nul_character_in_call_variables_is_a_400(plivo_account):
    api = plivo_account
    bot = api.post("Voicebot/", {"name": "Caller"}).json()
    response = api.post("Call/", {"voicebot_id": bot["id"], "from": "+14155550100", "to": "+14155550101",
                                  "variables": {"name": "Ann\u0000"}})
    assert "NUL" in assert_clear_error(response, 400)["error"]


def test_a_nul_character_in_a_contacts_csv_cell_is_reported_by_line(plivo_account):
    api = plivo_account
    bot = api.post("Voicebot/", {"name": "Caller"}).json()
    campaign = api.post("Campaign/", {"name": "C", "voicebot_id": bot["id"], "caller_ids": ["+14155550100"],
                                      "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2025-12-31T00:00:00Z"}).json()
    csv = "phone,first_name\n+12125550001,Ann\n+12125550002,Bo\x00b\n".encode()
    response = api.upload(f"Campaign/{campaign['id']}/contacts", "contacts.csv", csv)
    body = assert_clear_error(response, 400)
    assert "NUL" in json.dumps(body["details"]["line 3"])
    assert Campaign.objects.get().contacts.count() == 0


# --- Numbers and nesting beyond what can be stored -----------------------------------------------------------

@pytest.mark.parametrize("offset", [2**63, 2**63 - 1, 10**30])
def test_a_huge_offset_is_a_400(api, offset):
    body = assert_clear_error(api.get(f"Voicebot/?offset={offset}"), 400)
    assert "offset" in body["details"]


def test_a_large_but_storable_offset_is_an_empty_page(api):
    assert api.get("Voicebot/?offset=1000000").json()["voicebots"] == []


@pytest.mark.parametrize("depth", [50_000, 1_000])
def test_deeply_nested_json_is_a_400(api, depth):
    body = "[" * depth + "]" * depth
    response = api.client.post(api.url("Function/"), '{"name": "f", "handler_url": "https://example.com/x", '
                               f'"fixedParameters": [{{"name": "a", "value": {body}}}]}}',
                               content_type="application/json", **api.headers)
    assert "nested" in assert_clear_error(response, 400)["error"]


def test_reasonable_nesting_is_stored(api):
    value = {"a": [{"b": [1, 2, {"c": True}]}]}
    response = api.post("Function/", {"name": "f", "handler_url": "https://example.com/x",
                                      "fixedParameters": [{"name": "a", "value": value}]})
    assert response.status_code == 201 and response.json()["fixedParameters"][0]["value"] == value


# --- Read-only fields, empty bodies, streaming errors -------------------------------------------------------

@pytest.mark.parametrize("resource, body", [
    ("Voicebot", {"name": "Bot"}),
    ("Function", {"name": "f", "handler_url": "https://example.com/x"}),
])
def test_a_read_only_field_in_a_patch_is_a_400_that_says_so(api, resource, body):
    created = api.post(f"{resource}/", body).json()
    response = api.patch(f"{resource}/{created['id']}", {"id": str(uuid.uuid4()), "name": "renamed"})
    details = assert_clear_error(response, 400)["details"]
    assert "read-only" in details["id"][0].lower()
    assert api.get(f"{resource}/{created['id']}").json()["name"] == body["name"]  # nothing half-applied


def test_read_only_fields_in_a_create_are_a_400_too(api):
    response = api.post("Voicebot/", {"name": "Bot", "created_at": "2020-01-01T00:00:00Z"})
    assert "read-only" in assert_clear_error(response, 400)["details"]["created_at"][0].lower()


def test_an_empty_multipart_body_is_a_clear_400(api):
    response = api.client.post(api.url("Knowledgebase/"), b"", content_type="multipart/form-data; boundary=xyz",
                               **api.headers)
    assert "file" in assert_clear_error(response, 400)["error"]


def test_a_multipart_body_without_a_boundary_is_a_clear_400(api):
    response = api.client.post(api.url("Knowledgebase/"), b"--x\r\n", content_type="multipart/form-data",
                               **api.headers)
    assert_clear_error(response, 400)


def test_streaming_chat_keeps_the_validation_errors_of_the_json_path(api):
    bot = api.post("Voicebot/", {"name": "Bot"}).json()
    as_json = api.post(f"Voicebot/{bot['id']}/chat", {"message": ""})
    streamed = api.post(f"Voicebot/{bot['id']}/chat", {"message": ""}, HTTP_ACCEPT="text/event-stream")
    assert as_json.status_code == streamed.status_code == 400
    assert streamed["Content-Type"].startswith("text/event-stream")
    event, data = streamed.content.decode().strip().split("\n")
    assert event == "event: error"
    streamed_body, json_body = json.loads(data.removeprefix("data: ")), as_json.json()
    assert streamed_body["error"] == json_body["error"] and streamed_body["details"] == json_body["details"]


def test_streaming_chat_for_an_unknown_bot_says_which(api):
    missing = str(uuid.uuid4())
    streamed = api.post(f"Voicebot/{missing}/chat", {"message": "hi"}, HTTP_ACCEPT="text/event-stream")
    assert streamed.status_code == 404 and missing.encode() in streamed.content


# --- Uploads: NUL bytes are not UTF-16, names lose direction overrides --------------------------------------

@pytest.fixture
def processed_upload(api, django_capture_on_commit_callbacks):
    """Upload a document and let its processing (queued on commit) run."""
    def upload(name, content):
        with django_capture_on_commit_callbacks(execute=True):
            return api.upload("Knowledgebase/", name, content)
    return upload


@pytest.mark.parametrize("content", [
    # NUL-padded records (every other byte NUL for a while) followed by ordinary text
    "Record one, the header of this file. ".encode("utf-16-le") * 3
    + b"We open at nine. Parking is free behind the building.\n" * 3,
    b"Opening hours\n\nWe open at nine.\x00\x00 Parking is free.\n" * 4,
])
def test_a_text_file_with_nul_bytes_is_not_read_as_utf16(api, processed_upload, content):
    response = processed_upload("hours.txt", content)
    if response.status_code == 201:
        document = api.get(f"Knowledgebase/{response.json()['id']}").json()
        assert document["status"] == "ready", document
        hits = api.post("Knowledgebase/search", {"query": "When do you open?"}).json()["results"]
        assert "We open at nine." in hits[0]["text"] and "\x00" not in hits[0]["text"]
    else:
        assert "NUL" in assert_clear_error(response, 415)["error"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16"])
def test_real_utf16_text_is_still_read(api, processed_upload, encoding):
    response = processed_upload("hours.txt", "Opening hours: we open at nine, café au lait.".encode(encoding))
    assert response.status_code == 201
    hits = api.post("Knowledgebase/search", {"query": "When do you open?"}).json()["results"]
    assert "we open at nine" in hits[0]["text"]


def test_direction_overrides_are_removed_from_file_names(api):
    response = api.upload("Knowledgebase/", "invoice\u202efdp.exe.txt", b"Some knowledge about invoices.")
    assert response.status_code == 201
    name = response.json()["name"]
    assert name == "invoicefdp.exe.txt"
    download = api.get(f"Knowledgebase/{response.json()['id']}/file")
    assert "\u202e" not in download["Content-Disposition"] and "%E2%80%AE" not in download["Content-Disposition"]


# --- Knowledge search and list shapes --------------------------------------------------------------------

def test_search_results_carry_heading_paths_as_lists_of_headings(api, processed_upload):
    processed_upload("guide.md", b"# Hours\n\n## Weekdays\n\nWe open at nine on weekdays.\n")
    hit = api.post("Knowledgebase/search", {"query": "When do you open on weekdays?"}).json()["results"][0]
    assert hit["heading_path"] == ["Hours", "Weekdays"]


def test_lists_summarise_long_prompts_and_details_give_them_whole(api):
    prompt = "You are a patient receptionist. " * 40_000  # ~1.3 MB
    created = api.post("Voicebot/", {"name": "Verbose", "prompt": prompt})
    assert created.status_code == 201
    listed = api.get("Voicebot/")
    assert len(listed.content) < 10_000
    item = listed.json()["voicebots"][0]
    assert prompt.startswith(item["prompt"]) and len(item["prompt"]) <= 1000
    assert item["prompt_truncated"] is True and item["prompt_length"] == len(prompt)
    detail = api.get(f"Voicebot/{created.json()['id']}").json()
    assert detail["prompt"] == prompt and detail["prompt_truncated"] is False


# --- WebSockets: junk nested beyond Python's recursion is skipped, the socket lives on -----------------------

@pytest.mark.django_db(transaction=True)
class TestDeepJsonOnSockets:
    DEEP = "[" * 50_000 + "]" * 50_000

    @pytest.fixture(autouse=True)
    async def _close_consumer_connections(self):
        from asgiref.sync import sync_to_async
        from django.db import connections

        yield
        await sync_to_async(connections.close_all)()

    async def test_the_playground_answers_junk_and_keeps_going(self, client, api, settings):
        from asgiref.sync import sync_to_async
        from channels.testing import WebsocketCommunicator

        from config.asgi import application
        from voicebots.accounts.services import create_member

        settings.ANTHROPIC_API_KEY = "set"
        bot = await sync_to_async(api.post)("Voicebot/", {"name": "Desk"})
        await sync_to_async(create_member)(api.account, "player", "a-long-password-123")
        await sync_to_async(client.login)(username="player", password="a-long-password-123")
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        socket = WebsocketCommunicator(application, f"/ws/playground/{bot.json()['id']}/",
                                       headers=[(b"cookie", cookie), (b"host", b"testserver"),
                                              (b"origin", b"http://127.0.0.1:8000")])
        assert (await socket.connect())[0]
        for junk in (self.DEEP, "not json"):
            await socket.send_to(text_data=junk)
            assert (await socket.receive_json_from(timeout=5))["type"] == "error"
        await socket.send_json_to({"type": "new"})
        assert (await socket.receive_json_from(timeout=5))["type"] == "new"
        await socket.disconnect()

    async def test_a_plivo_stream_skips_junk_frames_and_keeps_the_call(self, client, api, settings):
        from urllib.parse import urlsplit
        from xml.etree import ElementTree

        from asgiref.sync import sync_to_async
        from channels.testing import WebsocketCommunicator

        from config.asgi import application

        settings.PLIVO_VERIFY_SIGNATURES = False
        settings.ANTHROPIC_API_KEY = ""
        bot = (await sync_to_async(api.post)("Voicebot/", {"name": "Desk", "welcome_message": "Hi"})).json()
        call_uuid = str(uuid.uuid4())
        answer = await sync_to_async(client.post)(
            f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/inbound_call",
            {"CallUUID": call_uuid, "From": "14155550100", "To": "14155550199", "Direction": "inbound"})
        url = urlsplit(ElementTree.fromstring(answer.content).find("Stream").text)
        socket = WebsocketCommunicator(application, f"{url.path}?{url.query}")
        assert (await socket.connect())[0]
        await socket.send_to(text_data=self.DEEP)
        await socket.send_json_to({"event": "start", "start": {"callId": call_uuid, "streamId": "s-1"}})
        assert json.loads(await socket.receive_from(timeout=5))["event"] == "playAudio"
        await socket.disconnect()


@pytest.mark.parametrize("raw, safe", [
    ("invoice\u202efdp.exe.txt", "invoicefdp.exe.txt"),
    ("report\u2067\u200f.txt", "report.txt"),
    ("C:\\Users\\ann\\notes.txt", "notes.txt"),
    ("../../etc/passwd", "passwd"),
    ("tab\there\nnew.md", "tab here new.md"),
    ("\u202e", "document"),
    ("a" * 300 + ".txt", "a" * 255),
])
def test_file_names_lose_folders_and_invisible_characters(raw, safe):
    from voicebots.knowledge.uploads import safe_file_name

    assert safe_file_name(raw) == safe


def test_a_nul_character_in_the_query_is_a_400(api):
    bot = api.post("Voicebot/", {"name": "Bot"}).json()
    campaign = api.post("Campaign/", {"name": "C", "voicebot_id": bot["id"], "caller_ids": ["+14155550100"],
                                      "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2025-12-31T00:00:00Z"}).json()
    for path in (f"Campaign/{campaign['id']}/contacts?state=%00", "Voicebot/?limit=1%00", "Call/?voicebot_id=%00"):
        assert "NUL" in assert_clear_error(api.get(path), 400)["error"], path


def test_a_call_list_filtered_by_a_malformed_bot_id_is_a_400(api):
    assert "voicebot_id" in assert_clear_error(api.get("Call/?voicebot_id=not-a-uuid"), 400)["details"]
