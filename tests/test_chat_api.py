"""The chat API over the real conversation engine, the real Anthropic and OpenAI SDKs and their fake servers."""
import json

import pytest
from asgiref.sync import async_to_sync

from voicebots.chats.models import ChatSession, ChatTurn
from voicebots.functions.runner import verify_signature
from tests.fakes import openai_server
from tests.fakes.anthropic_server import Text, ToolUse, Turn
from tests.fakes.http_handler import Reply

FAQ = b"# Smile Dental\n\n## Parking\nFree parking is behind the building, entrance on Elm Street."


@pytest.fixture
def bot(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        document = api.upload("Knowledgebase/", "faq.md", FAQ).json()
    return api.post("Voicebot/", {"name": "Desk", "prompt": "You are the Smile Dental receptionist.",
                                  "knowledgebase_ids": [document["id"]]}).json()


def read_stream(response) -> str:
    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])
    return async_to_sync(collect)().decode()


def system_text(request) -> str:
    return " ".join(block["text"] for block in request.body["system"])


def test_chat_answers_from_the_document(api, bot, fake_anthropic):
    fake_anthropic.script(Turn([Text("Parking is free, ", "behind the building.")]))
    response = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Where can I park?"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["response"] == "Parking is free, behind the building."
    assert body["api_id"] and body["session_id"]
    assert body["passages"] and "Elm Street" in body["passages"][0]["text"]
    sent = fake_anthropic.requests[0]
    assert "Elm Street" in system_text(sent)  # the retrieved passage reached the model
    assert "Smile Dental receptionist" in system_text(sent)
    assert sent.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent.body["thinking"] == {"type": "disabled"}
    assert sent.body["messages"][-1]["content"] == "Where can I park?" or \
        sent.body["messages"][-1]["content"][-1]["text"] == "Where can I park?"
    turn = ChatTurn.objects.get(session_id=body["session_id"])
    assert turn.assistant_text == body["response"] and turn.timings["total_ms"] > 0
    assert turn.timings["retrieval_ms"] is not None and turn.timings["first_token_ms"] is not None


def test_a_session_continues_across_messages(api, bot, fake_anthropic):
    fake_anthropic.script(Turn([Text("Hi Ann!")]), Turn([Text("Your name is Ann.")]))
    first = api.post(f"Voicebot/{bot['id']}/chat", {"message": "I am Ann."}).json()
    second = api.post(f"Voicebot/{bot['id']}/chat/", {"message": "What is my name?",
                                                      "session_id": first["session_id"]}).json()
    assert second["session_id"] == first["session_id"]
    history = json.dumps(fake_anthropic.requests[1].body["messages"])
    assert "I am Ann." in history and "Hi Ann!" in history and "What is my name?" in history
    assert ChatTurn.objects.filter(session_id=first["session_id"]).count() == 2


def test_the_bot_calls_a_function_with_user_and_fixed_parameters(api, bot, fake_anthropic, function_handler):
    function_handler.reply("/book", Reply.json({"booked": True, "slot": "10:00"}))
    function = api.post("Function/", {
        "name": "book_appointment", "description": "Books a slot", "handler_url": function_handler.url_for("/book"),
        "userParameters": [{"name": "time", "type": "string", "required": True}],
        "fixedParameters": [{"name": "clinic_id", "value": "c-42"}],
    }).json()
    api.patch(f"Voicebot/{bot['id']}", {"function_ids": [function["id"]]})
    fake_anthropic.script(
        Turn([Text("Let me book that."), ToolUse("book_appointment", {"time": "10:00"})], stop_reason="tool_use"),
        Turn([Text("You are booked at 10:00.")]),
    )
    body = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Book me at ten"}).json()
    assert body["response"].endswith("You are booked at 10:00.")
    call = function_handler.requests[0]
    payload = call.json()
    assert payload["function"] == "book_appointment"
    assert payload["parameters"] == {"time": "10:00", "clinic_id": "c-42"}
    assert payload["voicebot_id"] == bot["id"] and payload["session_id"] == body["session_id"]
    assert payload["call"] is None
    headers = {k.lower(): v for k, v in call.headers.items()}
    assert verify_signature(api.account.webhook_secret, headers["x-voicebots-timestamp"], call.body,
                            headers["x-voicebots-signature"])
    tools = fake_anthropic.requests[0].body["tools"]
    assert tools[0]["name"] == "book_appointment"
    assert "clinic_id" not in json.dumps(tools)  # fixed parameters are never shown to the model
    tool_result = fake_anthropic.requests[1].body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and "10:00" in json.dumps(tool_result["content"])
    assert body["tool_calls"][0]["name"] == "book_appointment" and not body["tool_calls"][0]["is_error"]


def test_a_function_at_a_private_address_is_refused_and_the_bot_is_told(api, bot, fake_anthropic, settings):
    settings.FUNCTION_ALLOW_HTTP = True  # the address is what is refused here, not the scheme
    function = api.post("Function/", {"name": "internal", "handler_url": "http://127.0.0.1:9/admin"}).json()
    api.patch(f"Voicebot/{bot['id']}", {"function_ids": [function["id"]]})
    settings.FUNCTION_ALLOW_PRIVATE_ADDRESSES = False
    fake_anthropic.script(Turn([ToolUse("internal", {})], stop_reason="tool_use"),
                          Turn([Text("Sorry, that did not work.")]))
    body = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Do the thing"}).json()
    assert body["tool_calls"][0]["is_error"] is True
    assert fake_anthropic.requests[1].body["messages"][-1]["content"][0]["is_error"] is True
    assert body["response"] == "Sorry, that did not work."


def test_without_an_anthropic_key_the_chat_is_a_503_naming_it(api, bot, settings):
    settings.ANTHROPIC_API_KEY = ""
    response = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hello"})
    assert response.status_code == 503
    assert "ANTHROPIC_API_KEY" in response.json()["error"]
    streamed = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hello"}, HTTP_ACCEPT="text/event-stream")
    assert streamed.status_code == 503 and b"ANTHROPIC_API_KEY" in streamed.content


def test_an_llm_that_keeps_failing_is_reported_clearly(api, bot, fake_anthropic):
    fake_anthropic.script(Turn(status=500), Turn(status=500))
    response = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hello"})
    assert response.status_code == 502
    assert response.json()["error"].startswith("The language model did not answer")
    assert len(fake_anthropic.requests) == 2  # retried once
    assert ChatTurn.objects.get().error


def test_a_transient_llm_error_is_retried_once(api, bot, fake_anthropic):
    fake_anthropic.script(Turn(status=529), Turn([Text("Back again.")]))
    response = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hello"})
    assert response.status_code == 200 and response.json()["response"] == "Back again."


def test_chat_streams_server_sent_events(api, bot, fake_anthropic):
    fake_anthropic.script(Turn([Text("One, ", "two, ", "three.")]))
    response = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Count"}, HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    raw = read_stream(response)
    events = [(block.split("\n")[0][len("event: "):], json.loads(block.split("\n")[1][len("data: "):]))
              for block in raw.strip().split("\n\n")]
    names = [name for name, _ in events]
    assert names[0] == "retrieval" and names[-1] == "done"
    assert "".join(data["text"] for name, data in events if name == "text") == "One, two, three."
    assert events[-1][1]["response"] == "One, two, three." and events[-1][1]["session_id"]


@pytest.mark.parametrize("payload,field", [({}, "message"), ({"message": "   "}, "message"),
                                           ({"message": "hi", "session_id": "nope"}, "session_id"),
                                           ({"message": "hi", "extra": 1}, "extra")])
def test_bad_chat_requests_are_400(api, bot, fake_anthropic, payload, field):
    response = api.post(f"Voicebot/{bot['id']}/chat", payload)
    assert response.status_code == 400 and field in response.json()["details"]


def test_chat_and_sessions_are_isolated_between_accounts(api, other_api, bot, fake_anthropic):
    fake_anthropic.script(Turn([Text("Hello A.")]))
    session_id = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hi"}).json()["session_id"]
    assert other_api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hi"}).status_code == 404
    their_bot = other_api.post("Voicebot/", {"name": "B"}).json()
    response = other_api.post(f"Voicebot/{their_bot['id']}/chat", {"message": "Hi", "session_id": session_id})
    assert response.status_code == 404
    assert ChatSession.objects.filter(account=other_api.account).count() == 0
    assert len(fake_anthropic.requests) == 1


def test_an_openai_compatible_bot_answers_from_knowledge_and_calls_a_function(api, bot, fake_openai, settings,
                                                                              function_handler):
    settings.ANTHROPIC_API_KEY = ""  # this bot does not need it
    function_handler.reply("/book", Reply.json({"booked": True, "slot": "10:00"}))
    function = api.post("Function/", {
        "name": "book_appointment", "description": "Books a slot", "handler_url": function_handler.url_for("/book"),
        "userParameters": [{"name": "time", "type": "string", "required": True}],
        "fixedParameters": [{"name": "clinic_id", "value": "c-42"}]}).json()
    assert api.patch(f"Voicebot/{bot['id']}", {"function_ids": [function["id"]], "answer_llm": {
        "provider": "openapi", "model": "llama3.2:3b"}}).status_code == 204
    fake_openai.script(
        openai_server.Turn([openai_server.Text("Let me book that.", ""),
                            openai_server.ToolUse("book_appointment", {"time": "10:00"})]),
        openai_server.Turn([openai_server.Text("You are booked ", "at 10:00. Parking is behind the building.")]),
        openai_server.Turn([openai_server.Text("Yes, at 10:00.")]))

    body = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Book me at ten; where do I park?"}).json()

    assert body["response"] == "Let me book that. You are booked at 10:00. Parking is behind the building."
    assert body["stop_reason"] == "end_turn" and body["tool_calls"][0]["name"] == "book_appointment"
    assert function_handler.requests[0].json()["parameters"] == {"time": "10:00", "clinic_id": "c-42"}
    first, second = fake_openai.chat_requests[0].body, fake_openai.chat_requests[1].body
    assert first["model"] == "llama3.2:3b" and first["stream"] is True
    assert "Elm Street" in first["messages"][0]["content"]  # the retrieved passage reached the model
    assert "clinic_id" not in json.dumps(first["tools"])  # fixed parameters are never shown to the model
    assert second["messages"][-1]["role"] == "tool" and "10:00" in second["messages"][-1]["content"]
    stored = ChatSession.objects.get(pk=body["session_id"]).history
    assert stored[1]["tool_calls"][0]["name"] == "book_appointment"
    assert stored[2]["tool_results"][0]["call_id"] == stored[1]["tool_calls"][0]["id"]

    again = api.post(f"Voicebot/{bot['id']}/chat", {"message": "At ten?", "session_id": body["session_id"]}).json()

    assert again["response"] == "Yes, at 10:00."
    sent = fake_openai.chat_requests[2].body["messages"]
    assert [message["role"] for message in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_an_openai_compatible_bot_streams_events(api, bot, fake_openai):
    api.patch(f"Voicebot/{bot['id']}", {"answer_llm": {"provider": "openai", "model": "gpt-4.1-mini"}})
    fake_openai.script(openai_server.Turn([openai_server.Text("Free ", "parking.")]))

    response = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Parking?"}, HTTP_ACCEPT="text/event-stream")

    events = read_stream(response)
    assert response.status_code == 200
    assert "event: text\ndata: {\"text\": \"Free \"}" in events and "event: done" in events


def test_without_the_openai_key_a_bot_on_openai_itself_is_a_503_naming_it(api, bot, settings):
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "", "https://api.openai.com/v1"
    api.patch(f"Voicebot/{bot['id']}", {"answer_llm": {"provider": "openai"}})

    response = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hello"})

    assert response.status_code == 503 and "OPENAI_API_KEY" in response.json()["error"]


def test_a_stored_bot_with_an_unknown_provider_is_a_503_not_another_vendor(api, bot, fake_anthropic):
    from voicebots.bots.models import Voicebot

    Voicebot.objects.filter(pk=bot["id"]).update(llm_provider="mystery")

    response = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hello"})

    assert response.status_code == 503
    assert response.json()["error"] == ('"mystery" is not a supported LLM provider; supported: anthropic, openai.')
    assert fake_anthropic.requests == []


def test_a_session_stored_in_the_older_anthropic_format_continues(api, bot, fake_anthropic):
    session = ChatSession.objects.create(account=api.account, voicebot_id=bot["id"], history=[
        {"role": "user", "content": "Book at ten"},
        {"role": "assistant", "content": [{"type": "text", "text": "Booking."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "book", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "booked"}]},
        {"role": "assistant", "content": "Done."}])
    fake_anthropic.script(Turn([Text("You're welcome.")]))

    body = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Thanks", "session_id": str(session.id)}).json()

    assert body["response"] == "You're welcome."
    sent = fake_anthropic.requests[0].body["messages"]
    assert sent[1]["content"][1] == {"type": "tool_use", "id": "toolu_1", "name": "book", "input": {}}
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "booked"}]
    session.refresh_from_db()
    assert session.history[2] == {"role": "user", "content": "", "tool_results": [
        {"call_id": "toolu_1", "content": "booked", "is_error": False}]}  # rewritten in the project's format
