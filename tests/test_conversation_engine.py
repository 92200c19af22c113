"""The conversation engine through the real Anthropic SDK (AnthropicLLM) against the local fake API.

No database and no Django: run with `-p no:django`.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.fakes.anthropic_server import FakeAnthropic, Text, Thinking, ToolUse, Turn
from tests.fakes.http_handler import FunctionHandlerFake, Reply
from voicebots.conversation import (
    BaseEventSink,
    BotConfig,
    ConversationEngine,
    LLMError,
    Message,
    Passage,
    Reasoning,
    ToolCall,
    ToolResult,
    TurnResult,
    history_from_json,
    history_to_json,
    tool_spec_from_parameters,
)
from voicebots.conversation.engine import REFUSAL_FALLBACK, TOOL_LIMIT_FALLBACK, TOOLS_EXHAUSTED
from voicebots.conversation.history import (
    append_user_text,
    opening_history,
    starts_exchange,
    trim_to_budget,
    with_interrupted_turn,
)
from voicebots.conversation.prompt import retrieval_query
from voicebots.functions.runner import FunctionConfig, FunctionRunner, FunctionToolRunner
from voicebots.providers.anthropic_llm import AnthropicLLM

BOOK_TOOL = tool_spec_from_parameters("book_table", "Book a table.", [
    {"name": "date", "type": "string", "description": "YYYY-MM-DD", "required": True},
    {"name": "party_size", "type": "integer", "description": "Guests", "required": True},
])
HOURS_TOOL = tool_spec_from_parameters("opening_hours", "Opening hours.", [])


def make_config(**overrides: Any) -> BotConfig:
    values: dict[str, Any] = {"bot_id": "bot-1", "name": "Trattoria", "prompt": "You answer calls for Trattoria.",
                              "model": "claude-haiku-5-5", "tools": [BOOK_TOOL, HOURS_TOOL]}
    return BotConfig(**{**values, **overrides})


class RecordingSink(BaseEventSink):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.first_text = asyncio.Event()

    def texts(self) -> list[str]:
        return [value for name, value in self.events if name == "text"]

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def on_retrieval(self, passages: list[Passage], ms: float) -> None:
        self.events.append(("retrieval", passages))

    async def on_first_token(self, ms: float) -> None:
        self.events.append(("first_token", ms))

    async def on_text(self, text: str) -> None:
        self.events.append(("text", text))
        self.first_text.set()

    async def on_tool_started(self, call: ToolCall) -> None:
        self.events.append(("tool_started", call))

    async def on_tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        self.events.append(("tool_finished", result))

    async def on_turn_done(self, result: TurnResult) -> None:
        self.events.append(("done", result))

    async def on_error(self, error: LLMError) -> None:
        self.events.append(("error", error))


class StubTools:
    def __init__(self, content: str = '{"booked":true}') -> None:
        self.calls: list[ToolCall] = []
        self.content = content

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        return ToolResult(call.id, self.content)


class StubRetriever:
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self.queries: list[tuple[str, str]] = []

    async def retrieve(self, query: str, *, bot_id: str) -> list[Passage]:
        self.queries.append((query, bot_id))
        return self.passages


@pytest.fixture
async def fake():
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def llm(fake):
    client = AnthropicLLM(fake.api_key, fake.url, retry_delay_s=0.01)
    yield client
    await client.aclose()


# --- Streaming ---------------------------------------------------------------------------------------


async def test_text_streams_to_the_sink_in_order(fake, llm):
    fake.script(Turn([Text("Hel", "lo, ", "how can I help?")]))
    sink = RecordingSink()

    result = await ConversationEngine(llm).run_turn(make_config(), [], "Hi", sink)

    assert sink.texts() == ["Hel", "lo, ", "how can I help?"]
    assert sink.names() == ["retrieval", "first_token", "text", "text", "text", "done"]
    assert result.text == "Hello, how can I help?"
    assert result.stop_reason == "end_turn"
    assert result.history == [Message.user("Hi"), Message.assistant("Hello, how can I help?")]
    assert result.usage["cache_read_input_tokens"] == 2048
    timings = result.timings
    assert timings["llm_request_sent_ms"] <= timings["first_token_ms"] <= timings["total_ms"]


async def test_request_has_cached_prompt_knowledge_context_tools_and_no_thinking(fake, llm):
    passages = [Passage("Open 12-23h daily.", 0.91, "hours.pdf", 2, "kb-1"),
                Passage("Parking behind the building.", 0.55, "faq.md", None, "kb-2")]
    retriever = StubRetriever(passages)
    config = make_config(context={"date": "2025-01-02", "caller": "+15551234567"})

    result = await ConversationEngine(llm, retriever=retriever).run_turn(config, [], "When are you open?",
                                                                         RecordingSink())

    assert retriever.queries == [("When are you open?", "bot-1")]
    assert result.passages == passages
    body = fake.requests[0].body
    assert body["system"][0] == {"type": "text", "text": "You answer calls for Trattoria.",
                                 "cache_control": {"type": "ephemeral"}}
    changing = body["system"][1]
    assert "cache_control" not in changing
    assert "[1] (hours.pdf, page 2)\nOpen 12-23h daily." in changing["text"]
    assert "[2] (faq.md)\nParking behind the building." in changing["text"]
    assert "- date: 2025-01-02" in changing["text"] and "- caller: +15551234567" in changing["text"]
    assert [tool["name"] for tool in body["tools"]] == ["book_table", "opening_hours"]
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][0]["input_schema"]["required"] == ["date", "party_size"]
    assert body["thinking"] == {"type": "disabled"}
    assert body["stream"] is True and body["model"] == "claude-haiku-5-5"
    headers = fake.requests[0].headers
    assert headers["authorization"] == "Bearer test-key" and "anthropic-version" in headers


async def test_thinking_block_before_text_is_not_spoken(fake, llm):
    fake.script(Turn([Thinking("The caller wants ", "the hours."), Text("We open at noon.")]))
    sink = RecordingSink()

    result = await ConversationEngine(llm).run_turn(make_config(), [], "Hours?", sink)

    assert sink.texts() == ["We open at noon."]
    assert result.history[-1] == Message.assistant("We open at noon.")


async def test_thinking_is_sent_back_unchanged_in_a_tool_round(fake, llm):
    tool = ToolUse("opening_hours", {})
    fake.script(Turn([Thinking("Hours are ", "in the tool."), tool], stop_reason="tool_use"),
                Turn([Text("Noon.")]))

    await ConversationEngine(llm, tool_runner=StubTools()).run_turn(make_config(thinking_enabled=True), [], "Hours?",
                                                                    RecordingSink())

    assert fake.requests[0].body["thinking"] == {"type": "adaptive"}
    assistant = fake.requests[1].body["messages"][1]["content"]
    assert assistant == [{"type": "thinking", "thinking": "Hours are in the tool.", "signature": "sig-fake"},
                         {"type": "tool_use", "id": tool.id, "name": "opening_hours", "input": {}}]


# --- Tools -------------------------------------------------------------------------------------------


async def test_tool_round_sends_tool_use_and_result_back(fake, llm):
    tool = ToolUse("book_table", {"date": "2025-01-02", "party_size": 4}, fragment_size=5)
    fake.script(Turn([Text("Let me book that."), tool], stop_reason="tool_use"), Turn([Text("You're booked!")]))
    tools = StubTools()
    sink = RecordingSink()

    result = await ConversationEngine(llm, tool_runner=tools).run_turn(make_config(), [], "Table for 4", sink)

    assert tools.calls == [ToolCall(tool.id, "book_table", {"date": "2025-01-02", "party_size": 4})]
    second = fake.requests[1].body["messages"]
    assert second == [
        {"role": "user", "content": "Table for 4"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me book that."},
            {"type": "tool_use", "id": tool.id, "name": "book_table",
             "input": {"date": "2025-01-02", "party_size": 4}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": '{"booked":true}'}]},
    ]
    assert result.text == "Let me book that. You're booked!"
    assert sink.texts() == ["Let me book that.", " You're booked!"]
    assert [record.call.name for record in result.tool_calls] == ["book_table"]
    call = ToolCall(tool.id, "book_table", {"date": "2025-01-02", "party_size": 4})
    assert result.history == [Message.user("Table for 4"), Message.assistant("Let me book that.", tool_calls=[call]),
                              Message.user(tool_results=[ToolResult(tool.id, '{"booked":true}')]),
                              Message.assistant("You're booked!")]
    assert sink.names().count("tool_started") == sink.names().count("tool_finished") == 1


async def test_two_tools_run_concurrently_over_real_webhooks(fake, llm):
    with FunctionHandlerFake() as handler:
        handler.reply("/book", Reply.json({"booked": True}, delay_s=0.3))
        handler.reply("/hours", Reply.json({"open": "12-23"}, delay_s=0.3))
        functions = [FunctionConfig("book_table", "Book.", handler.url_for("/book")),
                     FunctionConfig("opening_hours", "Hours.", handler.url_for("/hours"))]
        runner = FunctionRunner("secret", allow_private=True, allow_http=True)
        tools = FunctionToolRunner(runner, functions, voicebot_id="bot-1", session_id="s-1")
        first, second = ToolUse("book_table", {"date": "2025-01-02"}), ToolUse("opening_hours", {})
        fake.script(Turn([first, second], stop_reason="tool_use"), Turn([Text("Done.")]))

        result = await ConversationEngine(llm, tool_runner=tools).run_turn(make_config(), [], "Book", RecordingSink())
        await runner.aclose()

    assert sorted(request.path for request in handler.requests) == ["/book", "/hours"]
    assert result.timings["tools_ms"] < 550
    results = fake.requests[1].body["messages"][-1]["content"]
    assert [block["tool_use_id"] for block in results] == [first.id, second.id]
    assert results[0]["content"] == '{"booked":true}' and "is_error" not in results[0]


async def test_failing_tool_becomes_an_error_result(fake, llm):
    class BrokenTools:
        async def run(self, call: ToolCall) -> ToolResult:
            raise RuntimeError("boom")

    tool = ToolUse("book_table", {"date": "2025-01-02"})
    fake.script(Turn([tool], stop_reason="tool_use"), Turn([Text("Sorry, booking is down.")]))

    result = await ConversationEngine(llm, tool_runner=BrokenTools()).run_turn(make_config(), [], "Book",
                                                                              RecordingSink())

    block = fake.requests[1].body["messages"][-1]["content"][0]
    assert block["is_error"] is True and block["tool_use_id"] == tool.id
    assert result.tool_calls[0].result.is_error


async def test_tool_rounds_are_capped_then_tools_are_switched_off(fake, llm):
    fake.script(Turn([ToolUse("opening_hours", {})], stop_reason="tool_use"),
                Turn([ToolUse("opening_hours", {})], stop_reason="tool_use"),
                Turn([Text("We open at noon.")]))
    tools = StubTools()

    result = await ConversationEngine(llm, tool_runner=tools).run_turn(make_config(max_tool_rounds=1), [], "Hours?",
                                                                       RecordingSink())

    assert len(tools.calls) == 1
    last = fake.requests[2].body
    assert last["tool_choice"] == {"type": "none"}
    exhausted = last["messages"][-1]["content"][0]
    assert exhausted["is_error"] is True and exhausted["content"] == TOOLS_EXHAUSTED
    assert "tool_choice" not in fake.requests[0].body
    assert result.stop_reason == "end_turn" and result.text == "We open at noon."


async def test_model_that_ignores_the_tool_cap_gets_a_clear_stop(fake, llm):
    fake.script(*[Turn([ToolUse("opening_hours", {})], stop_reason="tool_use") for _ in range(3)])

    result = await ConversationEngine(llm, tool_runner=StubTools()).run_turn(
        make_config(max_tool_rounds=1), [], "Hours?", RecordingSink())

    assert result.stop_reason == "tool_limit"
    assert result.text == TOOL_LIMIT_FALLBACK
    assert result.history[-1] == Message.assistant(TOOL_LIMIT_FALLBACK)
    assert starts_exchange(result.history[0])


# --- Stop reasons and errors -------------------------------------------------------------------------


async def test_max_tokens_keeps_the_partial_text(fake, llm):
    fake.script(Turn([Text("We open at", " noon and")], stop_reason="max_tokens"))

    result = await ConversationEngine(llm).run_turn(make_config(), [], "Hours?", RecordingSink())

    assert result.stop_reason == "max_tokens"
    assert result.text == "We open at noon and"
    assert result.history[-1] == Message.assistant("We open at noon and")


async def test_refusal_speaks_a_fallback_and_drops_the_exchange(fake, llm):
    prior = [Message.user("Hi"), Message.assistant("Hello!")]
    fake.script(Turn([], stop_reason="refusal"))
    sink = RecordingSink()

    result = await ConversationEngine(llm).run_turn(make_config(), prior, "Something harmful", sink)

    assert result.stop_reason == "refusal"
    assert result.text == REFUSAL_FALLBACK and sink.texts() == [REFUSAL_FALLBACK]
    assert result.history == prior


async def test_pause_turn_is_continued(fake, llm):
    fake.script(Turn([Text("Checking")], stop_reason="pause_turn"), Turn([Text("done.")]))

    result = await ConversationEngine(llm).run_turn(make_config(), [], "Go", RecordingSink())

    assert fake.requests[1].body["messages"][-1] == {"role": "assistant", "content": "Checking"}
    assert result.text == "Checking done." and result.stop_reason == "end_turn"


async def test_mid_stream_error_after_text_raises_llm_error(fake, llm):
    fake.script(Turn([Text("Hel", "lo")], error_after=1))
    sink = RecordingSink()

    with pytest.raises(LLMError) as caught:
        await ConversationEngine(llm).run_turn(make_config(), [], "Hi", sink)

    assert "Overloaded" in caught.value.message
    assert sink.texts() == ["Hel"] and sink.names()[-1] == "error"
    assert len(fake.requests) == 1  # never retried once text reached the caller


async def test_mid_stream_overload_before_any_text_is_retried(fake, llm):
    fake.script(Turn([Text("lost")], error_after=0), Turn([Text("Fine.")]))

    result = await ConversationEngine(llm).run_turn(make_config(), [], "Hi", RecordingSink())

    assert result.text == "Fine." and len(fake.requests) == 2


async def test_server_error_is_retried_once(fake, llm):
    fake.script(Turn(status=500), Turn([Text("Recovered.")]))

    result = await ConversationEngine(llm).run_turn(make_config(), [], "Hi", RecordingSink())

    assert result.text == "Recovered." and len(fake.requests) == 2


async def test_rate_limited_twice_raises_llm_error(fake, llm):
    fake.script(Turn(status=429), Turn(status=429), Turn([Text("never")]))
    sink = RecordingSink()

    with pytest.raises(LLMError) as caught:
        await ConversationEngine(llm).run_turn(make_config(), [], "Hi", sink)

    assert caught.value.status == 429 and "rate limited" in caught.value.message
    assert len(fake.requests) == 2
    assert sink.names()[-1] == "error"


async def test_bad_api_key_is_not_retried(fake):
    llm = AnthropicLLM("wrong-key", fake.url, retry_delay_s=0.01)
    with pytest.raises(LLMError) as caught:
        await ConversationEngine(llm).run_turn(make_config(), [], "Hi", RecordingSink())
    await llm.aclose()

    assert caught.value.status == 401 and len(fake.requests) == 1


# --- History -----------------------------------------------------------------------------------------


async def test_second_turn_continues_the_first(fake, llm):
    fake.script(Turn([Text("Hello!")]), Turn([Text("Fine, thanks.")]))
    engine = ConversationEngine(llm)

    first = await engine.run_turn(make_config(), [], "Hi", RecordingSink())
    second = await engine.run_turn(make_config(), first.history, "How are you?", RecordingSink())

    assert fake.requests[1].body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]
    assert len(second.history) == 4
    assert len(first.history) == 2  # the input history is not modified


def _tool_exchange(number: int) -> list[Message]:
    tool_id = f"toolu_{number}"
    return [
        Message.user(f"question {number} " + "x" * 400),
        Message.assistant("checking", tool_calls=[ToolCall(tool_id, "lookup", {"n": number})]),
        Message.user(tool_results=[ToolResult(tool_id, "y" * 400)]),
        Message.assistant(f"answer {number}"),
    ]


def test_trimming_drops_whole_exchanges_and_keeps_tool_pairs():
    history = [message for number in range(6) for message in _tool_exchange(number)]

    trimmed = trim_to_budget(history, 700)

    assert 0 < len(trimmed) < len(history) and len(trimmed) % 4 == 0
    assert trimmed == history[-len(trimmed):]
    assert trimmed[0].role == "user" and not trimmed[0].tool_results
    for index, message in enumerate(trimmed):
        for result in message.tool_results:
            assert result.call_id in [call.id for call in trimmed[index - 1].tool_calls]


def test_trimming_keeps_the_newest_exchange_even_over_budget_and_drops_a_leading_assistant():
    history = [Message.assistant("stray"), *_tool_exchange(1)]

    assert trim_to_budget(history, 10) == _tool_exchange(1)
    assert trim_to_budget(history, 100_000) == _tool_exchange(1)
    assert trim_to_budget([], 100) == []


def test_history_helpers_keep_roles_valid():
    opening = opening_history("Welcome to Trattoria!")
    assert opening[0].role == "user" and opening[1] == Message.assistant("Welcome to Trattoria!")

    messages = [Message.user("Hi")]
    append_user_text(messages, "anyone there?")
    assert messages == [Message.user("Hi\nanyone there?")]

    results = [Message.user(tool_results=[ToolResult("t1", "ok")])]
    append_user_text(results, "and?")
    assert results == [Message.user("and?", tool_results=[ToolResult("t1", "ok")])]

    interrupted = with_interrupted_turn(opening, "Do you have", "We have tables at")
    assert interrupted[-2:] == [Message.user("Do you have"), Message.assistant("We have tables at")]


def test_retrieval_query_adds_the_last_thing_the_assistant_asked():
    history = [Message.user("Hi"), Message.assistant("Hello! We have two plans. Which plan interests you?")]

    assert retrieval_query(history, "The premium one") == "The premium one\nWhich plan interests you?"
    assert retrieval_query([], "Hours?") == "Hours?"


def test_tool_spec_from_user_parameters():
    spec = tool_spec_from_parameters("quote", "Get a quote.", [
        {"name": "amount", "type": "number", "description": "Euros", "required": True},
        {"name": "express", "type": "boolean", "description": "", "required": False},
        {"name": "odd", "type": "date"},
    ])

    assert spec.input_schema == {"type": "object", "required": ["amount"], "properties": {
        "amount": {"type": "number", "description": "Euros"}, "express": {"type": "boolean"},
        "odd": {"type": "string"}}}


# --- Cancellation and threads ------------------------------------------------------------------------


class StalledSink(RecordingSink):
    """Blocks on the first text, like a caller whose audio output is backed up."""

    async def on_text(self, text: str) -> None:
        await super().on_text(text)
        await asyncio.Event().wait()


@pytest.mark.parametrize("sink_class", [RecordingSink, StalledSink], ids=["reading-stream", "inside-sink"])
async def test_cancelling_a_turn_closes_the_stream_promptly(fake, llm, sink_class):
    fake.script(Turn([Text(*["word "] * 60)], delay_s=0.05))
    sink = sink_class()
    task = asyncio.create_task(ConversationEngine(llm).run_turn(make_config(), [], "Talk", sink))
    await asyncio.wait_for(sink.first_text.wait(), 2)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    disconnect = await fake.wait_for_disconnect(1.0)

    assert disconnect is not None
    assert disconnect.at - cancelled_at < 0.2
    assert disconnect.events_sent < 20


async def test_fake_runs_in_a_background_thread():
    fake = FakeAnthropic().start_in_thread()
    try:
        fake.script(Turn([Text("From ", "a thread.")]))
        llm = AnthropicLLM(fake.api_key, fake.url)
        result = await ConversationEngine(llm).run_turn(make_config(), [], "Hi", RecordingSink())
        await llm.aclose()
    finally:
        fake.stop()

    assert result.text == "From a thread." and len(fake.requests) == 1


# --- Stored histories ----------------------------------------------------------------------------------


def test_history_round_trips_through_json():
    call = ToolCall("c1", "lookup", {"n": 1})
    history = [Message.user("Hi"),
               Message.assistant("Checking.", tool_calls=[call],
                                 reasoning=[Reasoning("anthropic", "think", {"type": "thinking", "signature": "s"})]),
               Message.user(tool_results=[ToolResult("c1", "found", is_error=True)]),
               Message.assistant("Done.")]

    stored = json.loads(json.dumps(history_to_json(history)))

    assert stored[0] == {"role": "user", "content": "Hi"}  # plain messages look as they always did
    assert stored[2]["tool_results"] == [{"call_id": "c1", "content": "found", "is_error": True}]
    assert history_from_json(stored) == history


def test_histories_stored_in_anthropic_format_still_load():
    stored = [
        {"role": "user", "content": "Book for four"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "They want a table.", "signature": "sig-1"},
            {"type": "text", "text": "Let me book that."},
            {"type": "tool_use", "id": "toolu_1", "name": "book_table", "input": {"party_size": 4}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "booked"}]},
            {"type": "text", "text": "thanks"}, {"type": "text", "text": "and parking?"}]},
        {"role": "assistant", "content": "You're booked."},
        {"role": "system", "content": "not a message of ours"},
        "garbage",
    ]

    history = history_from_json(stored)

    assert history == [
        Message.user("Book for four"),
        Message.assistant("Let me book that.", tool_calls=[ToolCall("toolu_1", "book_table", {"party_size": 4})],
                          reasoning=[Reasoning("anthropic", "They want a table.",
                                               {"type": "thinking", "signature": "sig-1"})]),
        Message.user("thanks\nand parking?", tool_results=[ToolResult("toolu_1", "booked")]),
        Message.assistant("You're booked."),
    ]
    assert history_from_json(None) == [] and history_from_json({"role": "user"}) == []


async def test_a_converted_history_is_sent_back_to_anthropic_in_its_own_format(fake, llm):
    stored = [{"role": "user", "content": "Book"},
              {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "book_table",
                                                 "input": {}}]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": ""}]},
              {"role": "assistant", "content": "Booked."}]

    await ConversationEngine(llm).run_turn(make_config(), history_from_json(stored), "Thanks", RecordingSink())

    sent = fake.requests[0].body["messages"]
    assert sent[:2] == stored[:2] and sent[3:] == [stored[3], {"role": "user", "content": "Thanks"}]
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "(empty)"}]
