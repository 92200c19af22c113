"""Benchmark of the conversation engine's own overhead per turn.

    .venv/bin/python -m bench.conversation [--quick]

The model is the Anthropic fake on 127.0.0.1 answering instantly, reached through the real SDK; a bot has
one function and one document, and knowledge retrieval is the real hybrid search on PostgreSQL (in the
benchmark database). Per turn it measures:
- user message -> request handed to the model (retrieval included, and without it),
- first model token received -> first text delivered to the caller's sink.
"""
from __future__ import annotations

import argparse
import asyncio
import time

from bench.knowledge import use_bench_database

TARGET_P95_MS = 10.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_bot():
    from django.core.files.base import ContentFile

    from voicebots.accounts.models import Account
    from voicebots.accounts.services import create_account
    from voicebots.bots.models import Voicebot
    from voicebots.functions.models import Function
    from voicebots.knowledge.models import Knowledgebase
    from voicebots.knowledge.processing import process

    Account.objects.filter(name__startswith="bench-conversation").delete()
    account, _ = create_account("bench-conversation")
    text = "\n\n".join(f"## Topic {i}\nThe clinic's policy number {i} says visits on day {i} cost {10 + i} dollars."
                       for i in range(40))
    document = Knowledgebase(account=account, name="faq.md", content_type="text/markdown", checksum="bench", size=0)
    document.file.save("faq.md", ContentFile(("# FAQ\n\n" + text).encode()), save=False)
    document.save()
    process(str(document.id), document.version)
    function = Function.objects.create(account=account, name="book_visit", handler_url="https://example.com/book",
                                       user_parameters=[{"name": "day", "type": "string", "required": True}])
    bot = Voicebot.objects.create(account=account, name="bench", prompt="You are a clinic receptionist. " * 40)
    bot.functions.set([function])
    bot.knowledgebases.set([document])
    return bot


class Stamps:
    """A sink and an LLM wrapper that stamp the moments the benchmark measures."""

    def __init__(self, llm) -> None:
        self.llm = llm
        self.reset()

    def reset(self) -> None:
        self.request_sent = self.first_token = self.first_text = None

    def stream(self, request):
        self.request_sent = time.perf_counter()
        return self._timed(self.llm.stream(request))

    async def _timed(self, events):
        from voicebots.conversation import TextDelta

        async for event in events:
            if isinstance(event, TextDelta) and self.first_token is None:
                self.first_token = time.perf_counter()
            yield event


async def run_turns(bot_runtime, turns: int, with_retrieval: bool) -> dict:
    from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
    from voicebots.conversation import BaseEventSink, ConversationEngine
    from voicebots.providers.anthropic_llm import AnthropicLLM

    class Sink(BaseEventSink):
        async def on_text(self, text: str) -> None:
            if stamps.first_text is None:
                stamps.first_text = time.perf_counter()

    async with FakeAnthropic() as fake:
        fake.default_turn = Turn([Text("Sure, ", "we can do that.")], ping=False)
        stamps = Stamps(AnthropicLLM(api_key="test-key", base_url=fake.url))
        parts = dict(bot_runtime.engine_parts)
        if not with_retrieval:
            parts["retriever"] = None
        engine = ConversationEngine(stamps, **parts)
        history, to_request, to_text = [], [], []
        for index in range(turns + 10):
            stamps.reset()
            started = time.perf_counter()
            result = await engine.run_turn(bot_runtime.config, history, f"What does policy {index % 40} say?", Sink())
            history = result.history
            if index >= 10:  # the first turns warm connections and caches
                to_request.append((stamps.request_sent - started) * 1000)
                to_text.append((stamps.first_text - stamps.first_token) * 1000)
    return {"message_to_request_p50_ms": percentile(to_request, 0.5), "message_to_request_p95_ms": percentile(to_request, 0.95),
            "token_to_text_p50_ms": percentile(to_text, 0.5), "token_to_text_p95_ms": percentile(to_text, 0.95)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    use_bench_database()
    from voicebots.chats.runtime import load_bot_runtime

    bot = make_bot()
    runtime = load_bot_runtime(bot, session_id="bench")
    turns = 50 if args.quick else 300
    figures = {}
    print(f"Conversation engine overhead over {turns} turns (fake model answering instantly, real SDK)")
    for label, with_retrieval in (("with retrieval", True), ("without retrieval", False)):
        figures[label] = result = asyncio.run(run_turns(runtime, turns, with_retrieval))
        print(f"  {label:18} message -> request p50 {result['message_to_request_p50_ms']:.2f} ms, p95 "
              f"{result['message_to_request_p95_ms']:.2f} ms; first token -> first text p50 "
              f"{result['token_to_text_p50_ms']:.3f} ms, p95 {result['token_to_text_p95_ms']:.3f} ms")
    engine_only = figures["without retrieval"]["message_to_request_p95_ms"] + figures["without retrieval"]["token_to_text_p95_ms"]
    with_knowledge = figures["with retrieval"]["message_to_request_p95_ms"] + figures["with retrieval"]["token_to_text_p95_ms"]
    for name, value in (("engine overhead p95, retrieval excluded", engine_only),
                        ("engine overhead p95, retrieval included", with_knowledge)):
        print(f"  {'PASS' if value <= TARGET_P95_MS else 'MISS'} {name}: {value:.2f} ms (target <= {TARGET_P95_MS} ms)")
    return figures


if __name__ == "__main__":
    main()
