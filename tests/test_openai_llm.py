"""The conversation engine through the real `openai` SDK (OpenAICompatibleLLM) against the local fake of an
OpenAI-compatible server: streaming, tool calls, stop reasons, errors and retries, cancellation, and the
non-streaming completion. No database."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.anthropic_server import Text as AnthropicText
from tests.fakes.anthropic_server import Turn as AnthropicTurn
from tests.fakes.openai_server import FakeOpenAI, Reasoning, Text, ToolUse, Turn
from tests.test_conversation_engine import BOOK_TOOL, RecordingSink, StubRetriever, StubTools, make_config
from voicebots.conversation import ConversationEngine, LLMError, Message, Passage, ToolCall, ToolResult
from voicebots.conversation.engine import REFUSAL_FALLBACK, TOOLS_EXHAUSTED
from voicebots.providers.anthropic_llm import AnthropicLLM
from voicebots.providers.openai_format import max_tokens_field
from voicebots.providers.openai_llm import OpenAICompatibleLLM

MODEL = "llama3.2:3b"  # a local server's model name: any id is passed through


@pytest.fixture
async def fake():
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def llm(fake):
    client = OpenAICompatibleLLM(fake.api_key, fake.url, retry_delay_s=0.01)
    yield client
    await client.aclose()


def config(**overrides):
    return make_config(model=MODEL, **overrides)


async def test_text_streams_with_the_request_in_openai_format(fake, llm):
    fake.script(Turn([Text("Hel", "lo, ", "how can I help?")]))
    passages = [Passage("Open 12-23h daily.", 0.9, "hours.pdf", 2, "kb-1")]
    sink = RecordingSink()

    result = await ConversationEngine(llm, retriever=StubRetriever(passages)).run_turn(
        config(context={"caller": "+15551234567"}), [], "Hi", sink)

    assert sink.texts() == ["Hel", "lo, ", "how can I help?"]
    assert result.text == "Hello, how can I help?" and result.stop_reason == "end_turn"
    assert result.history == [Message.user("Hi"), Message.assistant("Hello, how can I help?")]
    assert result.usage == {"input_tokens": 56, "output_tokens": 9, "cache_read_input_tokens": 64}
    request = fake.chat_requests[0]
    assert request.headers["authorization"] == f"Bearer {fake.api_key}"
    body = request.body
    assert body["model"] == MODEL and body["stream"] is True and body["max_tokens"] == 1024
    assert body["stream_options"] == {"include_usage": True}
    system, user = body["messages"]
    assert system["role"] == "system" and system["content"].startswith("You answer calls for Trattoria.\n\n")
    assert "[1] (hours.pdf, page 2)\nOpen 12-23h daily." in system["content"]
    assert "- caller: +15551234567" in system["content"]
    assert user == {"role": "user", "content": "Hi"}
    assert [tool["function"]["name"] for tool in body["tools"]] == ["book_table", "opening_hours"]
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "book_table", "description": "Book a table.", "parameters": dict(BOOK_TOOL.input_schema)}}
    assert "tool_choice" not in body


async def test_tool_call_split_over_chunks_runs_and_its_result_goes_back(fake, llm):
    tool = ToolUse("book_table", {"date": "2025-01-02", "party_size": 4}, fragment_size=4)
    fake.script(Turn([Text("Let me book that."), tool]), Turn([Text("You're booked!")]))
    tools = StubTools()
    sink = RecordingSink()

    result = await ConversationEngine(llm, tool_runner=tools).run_turn(config(), [], "Table for 4", sink)

    call = ToolCall(tool.id, "book_table", {"date": "2025-01-02", "party_size": 4})
    assert tools.calls == [call]
    second = fake.chat_requests[1].body["messages"]
    assert second[1:] == [
        {"role": "user", "content": "Table for 4"},
        {"role": "assistant", "content": "Let me book that.", "tool_calls": [{
            "id": tool.id, "type": "function",
            "function": {"name": "book_table", "arguments": json.dumps({"date": "2025-01-02", "party_size": 4})}}]},
        {"role": "tool", "tool_call_id": tool.id, "content": '{"booked":true}'},
    ]
    assert result.text == "Let me book that. You're booked!"
    assert result.history == [Message.user("Table for 4"), Message.assistant("Let me book that.", tool_calls=[call]),
                              Message.user(tool_results=[ToolResult(tool.id, '{"booked":true}')]),
                              Message.assistant("You're booked!")]


async def test_parallel_tool_calls_and_a_failing_one(fake, llm):
    class HalfBroken:
        async def run(self, call: ToolCall) -> ToolResult:
            if call.name == "opening_hours":
                raise RuntimeError("boom")
            return ToolResult(call.id, "booked")

    first, second = ToolUse("book_table", {"date": "2025-01-02"}), ToolUse("opening_hours", {})
    fake.script(Turn([first, second]), Turn([Text("Booked; hours unknown.")]))

    result = await ConversationEngine(llm, tool_runner=HalfBroken()).run_turn(config(), [], "Book", RecordingSink())

    sent = fake.chat_requests[1].body["messages"]
    assert [call["id"] for call in sent[2]["tool_calls"]] == [first.id, second.id]
    assert sent[3] == {"role": "tool", "tool_call_id": first.id, "content": "booked"}
    assert sent[4]["tool_call_id"] == second.id and sent[4]["content"].startswith("Error: ")
    assert sent[2]["content"] is None  # no text before the calls
    assert [record.result.is_error for record in result.tool_calls] == [False, True]


async def test_tools_are_switched_off_after_the_cap(fake, llm):
    fake.script(Turn([ToolUse("opening_hours", {})]), Turn([ToolUse("opening_hours", {})]),
                Turn([Text("We open at noon.")]))

    result = await ConversationEngine(llm, tool_runner=StubTools()).run_turn(config(max_tool_rounds=1), [],
                                                                              "Hours?", RecordingSink())

    last = fake.chat_requests[2].body
    assert last["tool_choice"] == "none"
    assert last["messages"][-1]["content"] == "Error: " + TOOLS_EXHAUSTED
    assert result.text == "We open at noon."


async def test_reasoning_is_not_spoken_and_not_sent_back(fake, llm):
    fake.script(Turn([Reasoning("The caller wants ", "the hours."), Text("We open at noon.")]))
    sink = RecordingSink()

    result = await ConversationEngine(llm).run_turn(config(), [], "Hours?", sink)

    assert sink.texts() == ["We open at noon."]
    assert result.history[-1] == Message.assistant("We open at noon.")


async def test_a_tool_call_without_an_id_from_a_local_server_gets_one(fake, llm):
    fake.script(Turn([ToolUse("opening_hours", {}, id="")], finish_reason="stop"), Turn([Text("Noon.")]))
    tools = StubTools()

    await ConversationEngine(llm, tool_runner=tools).run_turn(config(), [], "Hours?", RecordingSink())

    assert tools.calls[0].id.startswith("call_0_")  # and `stop` after a tool call still means: use the tool
    assert fake.chat_requests[1].body["messages"][-1]["tool_call_id"] == tools.calls[0].id


@pytest.mark.parametrize(("finish", "expected"), [("length", "max_tokens"), ("content_filter", "refusal")])
async def test_finish_reasons_map_to_the_projects_stop_reasons(fake, llm, finish, expected):
    fake.script(Turn([Text("We open at", " noon and")], finish_reason=finish))

    result = await ConversationEngine(llm).run_turn(config(), [], "Hours?", RecordingSink())

    assert result.stop_reason == expected
    if expected == "refusal":
        assert result.text.endswith(REFUSAL_FALLBACK) and result.history == []


async def test_bad_api_key_is_a_clear_error_and_not_retried(fake):
    llm = OpenAICompatibleLLM("wrong-key", fake.url, retry_delay_s=0.01)
    sink = RecordingSink()
    with pytest.raises(LLMError) as caught:
        await ConversationEngine(llm).run_turn(config(), [], "Hi", sink)
    await llm.aclose()

    assert caught.value.status == 401 and caught.value.message == "The language model rejected the API key."
    assert len(fake.chat_requests) == 1 and sink.names()[-1] == "error"


async def test_server_error_is_retried_once(fake, llm):
    fake.script(Turn(status=500), Turn([Text("Recovered.")]))

    result = await ConversationEngine(llm).run_turn(config(), [], "Hi", RecordingSink())

    assert result.text == "Recovered." and len(fake.chat_requests) == 2


async def test_rate_limited_twice_raises(fake, llm):
    fake.script(Turn(status=429), Turn(status=429), Turn([Text("never")]))

    with pytest.raises(LLMError) as caught:
        await ConversationEngine(llm).run_turn(config(), [], "Hi", RecordingSink())

    assert caught.value.status == 429 and "rate limited" in caught.value.message
    assert len(fake.chat_requests) == 2


async def test_unknown_model_is_named_in_the_error(fake, llm):
    fake.script(Turn(status=404))

    with pytest.raises(LLMError) as caught:
        await ConversationEngine(llm).run_turn(config(), [], "Hi", RecordingSink())

    assert caught.value.message.startswith("The language model was not found: The model does not exist")


async def test_mid_stream_error_after_text_is_not_retried(fake, llm):
    fake.script(Turn([Text("Hel", "lo")], error_after=1))
    sink = RecordingSink()

    with pytest.raises(LLMError) as caught:
        await ConversationEngine(llm).run_turn(config(), [], "Hi", sink)

    assert "stopped with an error" in caught.value.message and sink.texts() == ["Hel"]
    assert len(fake.chat_requests) == 1


async def test_mid_stream_error_before_any_text_is_retried(fake, llm):
    fake.script(Turn([Text("lost")], error_after=0), Turn([Text("Fine.")]))

    result = await ConversationEngine(llm).run_turn(config(), [], "Hi", RecordingSink())

    assert result.text == "Fine." and len(fake.chat_requests) == 2


async def test_a_slow_server_times_out_with_a_clear_error(fake):
    llm = OpenAICompatibleLLM(fake.api_key, fake.url, timeout_s=0.2, total_budget_s=0.3, retry_delay_s=0.01)
    fake.script(*[Turn([Text("late")], first_token_delay_s=1.0)] * 2)

    with pytest.raises(LLMError) as caught:
        await ConversationEngine(llm).run_turn(config(), [], "Hi", RecordingSink())
    await llm.aclose()

    assert caught.value.message == "The language model did not answer in time."


async def test_cancelling_a_turn_closes_the_stream_promptly(fake, llm):
    fake.script(Turn([Text(*["word "] * 60)], delay_s=0.05))
    sink = RecordingSink()
    task = asyncio.create_task(ConversationEngine(llm).run_turn(config(), [], "Talk", sink))
    await asyncio.wait_for(sink.first_text.wait(), 2)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 1
    while not fake.disconnects and time.monotonic() < deadline:
        await asyncio.sleep(0.01)

    assert fake.disconnects and fake.disconnects[0].at - cancelled_at < 0.2
    assert fake.disconnects[0].events_sent < 20


async def test_a_local_server_without_a_key(fake):
    fake.api_key = None  # accepts anything, like `ollama serve`
    llm = OpenAICompatibleLLM("unused", fake.url)

    result = await ConversationEngine(llm).run_turn(config(), [], "Hi", RecordingSink())
    await llm.aclose()

    assert result.text == "Hello."


async def test_complete_answers_a_whole_reply_without_tools(fake, llm):
    fake.script(Turn([Text("The caller booked ", "a table.")]))

    completion = await llm.complete(model=MODEL, system="Summarise the call.",
                                    messages=[Message.user("Transcript: ...")], max_tokens=300)

    assert completion.text == "The caller booked a table." and completion.stop_reason == "end_turn"
    assert completion.usage["output_tokens"] == 9
    body = fake.chat_requests[0].body
    assert "stream" not in body and "tools" not in body and body["max_tokens"] == 300
    assert body["messages"] == [{"role": "system", "content": "Summarise the call."},
                                {"role": "user", "content": "Transcript: ..."}]


async def test_complete_retries_once_then_turns_failures_into_llm_errors(fake, llm):
    fake.script(Turn(status=500), Turn([Text("Recovered.")]), Turn(status=500), Turn(status=503))

    assert (await llm.complete(model=MODEL, system="s", messages=[Message.user("u")], max_tokens=10)).text == (
        "Recovered.")
    with pytest.raises(LLMError) as caught:
        await llm.complete(model=MODEL, system="s", messages=[Message.user("u")], max_tokens=10)

    assert caught.value.status == 503 and caught.value.retryable and len(fake.chat_requests) == 4


async def test_anthropic_complete_answers_a_whole_reply():
    async with FakeAnthropic() as fake:
        fake.script(AnthropicTurn([AnthropicText("A short ", "summary.")]))
        llm = AnthropicLLM(fake.api_key, fake.url)
        completion = await llm.complete(model="claude-haiku-5-5", system="Summarise.",
                                        messages=[Message.user("Transcript")], max_tokens=200)
        await llm.aclose()

    assert completion.text == "A short summary." and completion.stop_reason == "end_turn"
    assert completion.usage["cache_read_input_tokens"] == 2048
    body = fake.requests[0].body
    assert "stream" not in body and body["max_tokens"] == 200 and body["thinking"] == {"type": "disabled"}


def test_openai_itself_gets_max_completion_tokens_other_servers_max_tokens():
    assert max_tokens_field("https://api.openai.com/v1") == "max_completion_tokens"
    assert max_tokens_field("http://127.0.0.1:11434/v1") == "max_tokens"
    assert max_tokens_field("https://api.groq.com/openai/v1") == "max_tokens"
