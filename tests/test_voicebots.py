import uuid

import pytest

from voicebots.bots.models import Voicebot


def create_function(api, name="book"):
    response = api.post("Function/", {"name": name, "handler_url": "https://hooks.example.com/book"})
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def create_document(api, text=b"Opening hours: 9 to 5."):
    response = api.upload("Knowledgebase/", "hours.txt", text)
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_create_with_only_a_name_fills_in_defaults(api, settings):
    response = api.post("Voicebot/", {"name": "Reception"})
    assert response.status_code == 201
    bot = response.json()
    assert bot["name"] == "Reception"
    assert bot["answer_llm"] == {"provider": "anthropic", "model": "claude-haiku-5-5"}
    assert bot["tts"]["provider"] == "cartesia" and bot["tts"]["voice"]
    assert bot["stt"] == {"provider": "deepgram", "language": "en"}
    assert bot["callTimeout"] == 30 and bot["max_call_duration"] == 1800
    assert bot["knowledgebase_ids"] == [] and bot["function_ids"] == []
    uuid.UUID(bot["id"])
    assert bot["created_at"] and bot["updated_at"]


def test_full_create_round_trips(api):
    function_id = create_function(api)
    document_id = create_document(api)
    payload = {
        "name": "Dental", "prompt": "You are a receptionist.", "welcome_message": "Hello, Smile Dental!",
        "answer_llm": {"provider": "anthropic", "model": "claude-sonnet-5-5"},
        "tts": {"provider": "deepgram", "voice": "Luna"},
        "stt": {"provider": "deepgram", "language": "fr"},
        "callTimeout": 12, "max_call_duration": 600,
        "function_ids": [function_id], "knowledgebase_ids": [document_id],
    }
    created = api.post("Voicebot/", payload).json()
    fetched = api.get(f"Voicebot/{created['id']}/").json()
    for body in (created, fetched):
        assert body["tts"] == {"provider": "deepgram", "voice": "luna"}
        assert body["stt"]["language"] == "fr"
        assert body["callTimeout"] == 12
        assert body["function_ids"] == [function_id]
        assert body["knowledgebase_ids"] == [document_id]
        assert body["welcome_message"] == "Hello, Smile Dental!"


def test_urls_are_absolute_and_built_from_the_public_base_url(api, settings):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    bot = api.post("Voicebot/", {"name": "Urls"}).json()
    auth_id = api.account.auth_id
    assert bot["inbound_call_url"] == f"https://bots.example.com/v1/Account/{auth_id}/Voicebot/{bot['id']}/inbound_call"
    assert bot["websocket_url"].startswith(f"wss://bots.example.com/v1/Account/{auth_id}/Voicebot/{bot['id']}/connect?token=")
    secret = Voicebot.objects.get(pk=bot["id"]).stream_secret
    assert bot["websocket_url"].endswith(secret)


def test_rotating_the_stream_secret_changes_the_websocket_url(api):
    bot = api.post("Voicebot/", {"name": "Rotate"}).json()
    Voicebot.objects.get(pk=bot["id"]).rotate_stream_secret()
    assert api.get(f"Voicebot/{bot['id']}").json()["websocket_url"] != bot["websocket_url"]


@pytest.mark.parametrize("alias,model", [
    ("claude 3.5 haiku", "claude-haiku-5-5"),
    ("claude 3.5 Sonnet", "claude-sonnet-5-5"),
    ("Claude 3.5 Opus", "claude-opus-5-5"),
    ("claude-haiku-4-5", "claude-haiku-4-5"),
])
def test_legacy_model_names_are_aliases(api, alias, model):
    bot = api.post("Voicebot/", {"name": "A", "answer_llm": {"provider": "anthropic", "model": alias}}).json()
    assert bot["answer_llm"]["model"] == model


@pytest.mark.parametrize("payload,field,fragment", [
    ({}, "name", "required"),
    ({"name": ""}, "name", "blank"),
    ({"name": 5.5, "callTimeout": "soon"}, "callTimeout", "integer"),
    ({"name": "A", "callTimeout": 0}, "callTimeout", "greater than or equal"),
    ({"name": "A", "answer_llm": {"provider": "mistral", "model": "large"}}, "answer_llm.provider",
     "supported: anthropic, openai"),
    ({"name": "A", "answer_llm": {"provider": "openai", "model": "my model; drop"}}, "answer_llm.model", "model id"),
    ({"name": "A", "answer_llm": {"provider": "anthropic", "model": "gpt-4o"}}, "answer_llm.model", "claude-haiku-5-5"),
    ({"name": "A", "answer_llm": "claude"}, "answer_llm", "JSON object"),
    ({"name": "A", "tts": {"provider": "elevenlabs", "voice": "x"}}, "tts.provider", "cartesia, deepgram"),
    ({"name": "A", "tts": {"provider": "deepgram", "voice": "bob"}}, "tts.voice", "asteria"),
    ({"name": "A", "tts": {"provider": "cartesia"}}, "tts.voice", "required"),
    ({"name": "A", "stt": {"provider": "deepgram", "language": "xx"}}, "stt.language", "supported"),
    ({"name": "A", "knowledgebase_ids": ["not-a-uuid"]}, "knowledgebase_ids[0]", "UUID"),
    ({"name": "A", "function_ids": "abc"}, "function_ids", "list"),
    ({"name": "A", "call_timeout": 5}, "call_timeout", "Unknown field"),
])
def test_invalid_input_is_a_400_with_field_details(api, payload, field, fragment):
    response = api.post("Voicebot/", payload)
    assert response.status_code == 400, response.json()
    details = response.json()["details"]
    assert field in details, details
    assert any(fragment in message for message in details[field]), details[field]
    assert Voicebot.objects.count() == 0


@pytest.mark.parametrize("provider", ["openai", "openapi", "OpenAI"])
def test_an_openai_compatible_model_takes_any_model_id(api, provider, settings):
    settings.OPENAI_MODEL = "llama3.2:3b"
    named = api.post("Voicebot/", {"name": "A", "answer_llm": {"provider": provider,
                                                               "model": "meta-llama/Llama-3.1-8B-Instruct"}})
    default = api.post("Voicebot/", {"name": "B", "answer_llm": {"provider": provider}})

    assert named.status_code == 201, named.json()
    assert named.json()["answer_llm"] == {"provider": "openai", "model": "meta-llama/Llama-3.1-8B-Instruct"}
    assert default.json()["answer_llm"] == {"provider": "openai", "model": "llama3.2:3b"}


def test_patching_the_provider_starts_from_its_defaults(api, settings):
    settings.OPENAI_MODEL = "gpt-4.1-mini"
    bot = api.post("Voicebot/", {"name": "A", "answer_llm": {"provider": "anthropic", "model": "claude-opus-5-5"},
                                 "tts": {"provider": "deepgram", "voice": "zeus"}}).json()

    assert api.patch(f"Voicebot/{bot['id']}/", {"answer_llm": {"provider": "openai"}}).status_code == 204
    assert api.get(f"Voicebot/{bot['id']}/").json()["answer_llm"] == {"provider": "openai", "model": "gpt-4.1-mini"}
    switched_voice = api.patch(f"Voicebot/{bot['id']}/", {"tts": {"provider": "cartesia"}})
    assert switched_voice.status_code == 400 and "required" in switched_voice.json()["details"]["tts.voice"][0]
    assert api.patch(f"Voicebot/{bot['id']}/", {"answer_llm": {"model": "qwen2.5:7b"}}).status_code == 204
    assert api.get(f"Voicebot/{bot['id']}/").json()["answer_llm"] == {"provider": "openai", "model": "qwen2.5:7b"}


def test_ids_of_another_account_or_unknown_are_a_400_naming_them(api, other_api):
    theirs = create_function(other_api)
    unknown = str(uuid.uuid4())
    response = api.post("Voicebot/", {"name": "A", "function_ids": [theirs, unknown]})
    assert response.status_code == 400
    message = response.json()["details"]["function_ids"][0]
    assert theirs in message and unknown in message
    their_doc = create_document(other_api)
    response = api.post("Voicebot/", {"name": "A", "knowledgebase_ids": [their_doc]})
    assert their_doc in response.json()["details"]["knowledgebase_ids"][0]


def test_patch_changes_only_what_is_sent_and_answers_204(api):
    bot = api.post("Voicebot/", {"name": "Before", "prompt": "Keep me",
                                 "tts": {"provider": "deepgram", "voice": "zeus"}}).json()
    response = api.patch(f"Voicebot/{bot['id']}/", {"name": "After", "tts": {"voice": "athena"}})
    assert response.status_code == 204
    assert response.content == b""
    after = api.get(f"Voicebot/{bot['id']}/").json()
    assert after["name"] == "After" and after["prompt"] == "Keep me"
    assert after["tts"] == {"provider": "deepgram", "voice": "athena"}


def test_patch_with_bad_values_changes_nothing(api):
    bot = api.post("Voicebot/", {"name": "Stable"}).json()
    response = api.patch(f"Voicebot/{bot['id']}/", {"name": "Changed", "stt": {"language": "klingon"}})
    assert response.status_code == 400
    assert api.get(f"Voicebot/{bot['id']}/").json()["name"] == "Stable"


def test_patch_attaches_and_detaches_functions_and_documents(api):
    bot = api.post("Voicebot/", {"name": "Tools"}).json()
    function_id, document_id = create_function(api), create_document(api)
    api.patch(f"Voicebot/{bot['id']}", {"function_ids": [function_id], "knowledgebase_ids": [document_id]})
    fetched = api.get(f"Voicebot/{bot['id']}").json()
    assert fetched["function_ids"] == [function_id] and fetched["knowledgebase_ids"] == [document_id]
    api.patch(f"Voicebot/{bot['id']}", {"function_ids": []})
    fetched = api.get(f"Voicebot/{bot['id']}").json()
    assert fetched["function_ids"] == [] and fetched["knowledgebase_ids"] == [document_id]


def test_delete_answers_204_then_the_bot_is_gone(api):
    bot = api.post("Voicebot/", {"name": "Doomed"}).json()
    assert api.delete(f"Voicebot/{bot['id']}/").status_code == 204
    assert api.get(f"Voicebot/{bot['id']}/").status_code == 404
    assert api.delete(f"Voicebot/{bot['id']}/").status_code == 404


@pytest.mark.parametrize("resource,payload", [
    ("Voicebot", {"name": "Private"}),
    ("Function", {"name": "private_fn", "handler_url": "https://example.com/hook"}),
])
def test_another_accounts_objects_are_404_for_every_method(api, other_api, resource, payload):
    theirs = other_api.post(f"{resource}/", payload).json()["id"]
    assert api.get(f"{resource}/{theirs}/").status_code == 404
    assert api.patch(f"{resource}/{theirs}/", {"name": "hijacked"}).status_code == 404
    assert api.delete(f"{resource}/{theirs}/").status_code == 404
    listed = api.get(f"{resource}/").json()
    assert theirs not in [item["id"] for item in listed[resource.lower() + "s"]]
    assert other_api.get(f"{resource}/{theirs}/").json()["name"] == payload["name"]
