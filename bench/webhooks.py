"""Benchmark of post-call webhooks: how soon `call.ended` and `call.analyzed` reach a receiver after
hang-up, and how fast a backlog of deliveries drains.

    .venv/bin/python -m bench.webhooks [--quick]

The production path runs: calls are ended with calls.services.finalize (what the stream's end and Plivo's
hangup callback call), which records the deliveries and queues the analysis; a Celery worker with 2
processes (prefork, as `manage.py run` starts it) sends and analyzes; the receiver is a real HTTP server on
127.0.0.1 and the model is the fake Anthropic API (tests/fakes), answering after LLM_DELAY_S. This process
plays beat (the webhook sweep every 5 s).

1. Latency: calls with four turns end one every CALL_GAP_S; for each, hang-up (finalize committed) to the
   receiver having `call.ended`, and to it having `call.analyzed` (summary, success verdict and extraction).
2. Drain: 1,000 events (one transaction each, as calls ending would make them) to one endpoint answering in
   50 ms: from the first event to the last delivery written down, and the proof that none was sent twice.

It runs in its own database, `voicebots_bench` (see bench/knowledge.py), and its own Redis.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT_NAME = "bench-webhooks"
WORKER_PROCESSES = 2
LLM_DELAY_S = 0.35
CALL_GAP_S = 0.5
ENDPOINT_DELAY_S = 0.05
TARGET_ENDED_P95_S = 1.0
TARGET_ANALYZED_P95_S = 5.0
TARGET_DRAIN_S = 30.0
ANSWER = {"summary": "The caller booked a cleaning for Monday at nine.", "success": True,
          "success_reason": "An appointment was booked.", "data": {"date": "2026-05-04", "time": "09:00"}}
SCHEMA = {"type": "object", "properties": {"date": {"type": "string"}, "time": {"type": "string"}},
          "required": ["date"]}


def start_worker(env: dict, logs: str) -> subprocess.Popen:
    log = open(os.path.join(logs, "worker.log"), "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", str(WORKER_PROCESSES),
         "-l", "warning", "-n", "bench-webhooks@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_worker(worker: subprocess.Popen, logs: str, timeout_s: float = 60) -> None:
    from config.celery import app

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"The worker exited; see {logs}/worker.log.")
        if app.control.ping(timeout=0.5):
            return
    raise RuntimeError(f"The worker did not start in {timeout_s:.0f} s; see {logs}/worker.log.")


def wait(condition, timeout_s: float, beat) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        beat()
        time.sleep(0.05)
    return False


class Beat:
    """The webhook sweep every 5 s, as beat runs it."""

    def __init__(self) -> None:
        self.next = time.monotonic() + 5

    def __call__(self) -> None:
        from voicebots.webhooks.tasks import sweep

        if time.monotonic() >= self.next:
            sweep.delay()
            self.next += 5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def arrivals(receiver, path: str) -> list[tuple[str, str, str, float]]:
    """(webhook-id, type, data id, monotonic arrival) of each request to `path`."""
    out = []
    for request in list(receiver.requests):
        if request.path == path:
            body = json.loads(request.body)
            out.append((request.headers["webhook-id"], body["type"], str(body["data"].get("id")), request.received_at))
    return out


def latency_phase(account, receiver, calls_count: int, beat) -> dict:
    from voicebots.bots.models import Voicebot
    from voicebots.calls import services as calls
    from voicebots.calls.models import Call, CallTurn
    from voicebots.webhooks import services as webhooks

    webhooks.create_endpoint(account, url=receiver.url_for("/calls"), events=["call.ended", "call.analyzed"])
    bot = Voicebot.objects.create(account=account, name="Front desk", prompt="You book dental appointments.",
                                  analysis={"summary": True, "success_criteria": "An appointment is booked.",
                                            "extraction_schema": SCHEMA})
    hung_up: dict[str, float] = {}
    for n in range(calls_count):
        call = Call.objects.create(account=account, voicebot=bot, status="in-progress", from_number="+14155550123")
        CallTurn.objects.bulk_create([
            CallTurn(call=call, index=i, caller_text=caller, bot_text=agent) for i, (caller, agent) in enumerate([
                ("Hi, I'd like to book a cleaning.", "Of course. Which day suits you?"),
                ("Monday morning if you can.", "Monday at nine is free. Shall I book it?"),
                ("Yes please.", "Done: Monday at nine. Anything else?"), ("No, thanks. Bye.", "Goodbye!")])])
        started = time.monotonic()
        calls.finalize(call, reason="The caller hung up.")  # commits; then the tasks are queued
        hung_up[str(call.id)] = started
        next_at = started + CALL_GAP_S
        while time.monotonic() < next_at:
            beat()
            time.sleep(0.01)

    def all_arrived():
        kinds = Counter(kind for _, kind, _, _ in arrivals(receiver, "/calls"))
        return kinds["call.ended"] >= calls_count and kinds["call.analyzed"] >= calls_count
    wait(all_arrived, 120, beat)
    first: dict[tuple[str, str], float] = {}
    for _, kind, call_id, at in arrivals(receiver, "/calls"):
        first.setdefault((kind, call_id), at)
    ended = [first[("call.ended", c)] - t for c, t in hung_up.items() if ("call.ended", c) in first]
    analyzed = [first[("call.analyzed", c)] - t for c, t in hung_up.items() if ("call.analyzed", c) in first]
    done = Call.objects.filter(pk__in=hung_up, analysis__status="done").count()
    return {"calls": calls_count, "ended_s": ended, "analyzed_s": analyzed, "analyses_done": done}


def drain_phase(account, receiver, count: int, beat) -> dict:
    from voicebots.webhooks import services as webhooks
    from voicebots.webhooks.models import WebhookDelivery

    from tests.fakes.http_handler import Reply

    receiver.reply("/drain", Reply.json({"ok": True}, delay_s=ENDPOINT_DELAY_S))
    endpoint, _ = webhooks.create_endpoint(account, url=receiver.url_for("/drain"), events=["campaign.completed"])
    started = time.monotonic()
    for n in range(count):
        webhooks.emit(account.id, "campaign.completed", lambda n=n: {"id": f"campaign-{n}"})
    recorded = time.monotonic() - started
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    drained = wait(lambda: deliveries.filter(status="delivered").count() == count, 180, beat)
    seconds = time.monotonic() - started
    time.sleep(1)  # anything sent twice would arrive now
    ids = Counter(webhook_id for webhook_id, _, _, _ in arrivals(receiver, "/drain"))
    return {"count": count, "drained": drained, "seconds": seconds, "recorded_s": recorded,
            "delivered": deliveries.filter(status="delivered").count(), "requests": sum(ids.values()),
            "sent_twice": sum(1 for n in ids.values() if n > 1),
            "attempts": sum(deliveries.values_list("attempts", flat=True))}


def report(results: dict) -> str:
    from django.conf import settings

    lat, drain = results["latency"], results["drain"]
    ended_p95, analyzed_p95 = percentile(lat["ended_s"], 95), percentile(lat["analyzed_s"], 95)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"
    lines = [
        f"Webhooks benchmark ({results['scale']}): {os.cpu_count()} CPUs, load average {results['load']}; a Celery "
        f"worker with {WORKER_PROCESSES} processes (prefork); LLM answers after {LLM_DELAY_S * 1000:.0f} ms; "
        f"at most {settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT} deliveries in flight per endpoint",
        f"1. {lat['calls']} calls ended {CALL_GAP_S:g} s apart (4 turns, summary + success + extraction); "
        f"{lat['analyses_done']} analyses done",
        f"   hang-up to call.ended at the receiver (s): p50 {percentile(lat['ended_s'], 50):.3f}, "
        f"p95 {ended_p95:.3f}, max {max(lat['ended_s']):.3f}",
        f"   hang-up to call.analyzed at the receiver (s): p50 {percentile(lat['analyzed_s'], 50):.3f}, "
        f"p95 {analyzed_p95:.3f}, max {max(lat['analyzed_s']):.3f}",
        f"2. {drain['count']:,} deliveries to one endpoint answering in {ENDPOINT_DELAY_S * 1000:.0f} ms: "
        f"{drain['delivered']:,} delivered in {drain['seconds']:.1f} s (recording the events took "
        f"{drain['recorded_s']:.1f} s of it); {drain['requests']:,} requests received, {drain['attempts']:,} "
        f"attempts, {drain['sent_twice']} sent twice",
        "Targets (from the issue)",
        f"   {'call.ended p95 <= ' + format(TARGET_ENDED_P95_S, 'g') + ' s':<34}{ended_p95:>8.3f} s  "
        f"{verdict(ended_p95 <= TARGET_ENDED_P95_S)}",
        f"   {'call.analyzed p95 <= ' + format(TARGET_ANALYZED_P95_S, 'g') + ' s':<34}{analyzed_p95:>8.3f} s  "
        f"{verdict(analyzed_p95 <= TARGET_ANALYZED_P95_S)}",
        f"   {'1,000 deliveries drain <= ' + format(TARGET_DRAIN_S, 'g') + ' s':<34}{drain['seconds']:>8.1f} s  "
        f"{verdict(drain['drained'] and drain['seconds'] <= TARGET_DRAIN_S)}",
        f"   {'none sent twice once delivered':<34}{drain['sent_twice']:>8}    {verdict(drain['sent_twice'] == 0)}",
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 calls instead of 60 (the drain stays 1,000)")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench-webhooks-")
    from bench.campaigns import use_own_redis

    redis = use_own_redis(work)
    os.environ.update({"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
                       "CELERY_TASK_ALWAYS_EAGER": "false", "LOG_LEVEL": "WARNING", "DEBUG": "false"})
    from bench.knowledge import use_bench_database

    use_bench_database()
    from tests.fakes.anthropic_server import DEFAULT_API_KEY, FakeAnthropic, Text, Turn
    from tests.fakes.http_handler import FunctionHandlerFake
    from voicebots.accounts.models import Account
    from voicebots.accounts.services import create_account

    Account.objects.filter(name=ACCOUNT_NAME).delete()
    model = FakeAnthropic().start_in_thread()
    text = json.dumps(ANSWER)
    model.default_turn = Turn([Text(text[:20], text[20:])], first_token_delay_s=LLM_DELAY_S)
    receiver = FunctionHandlerFake().start_in_thread()
    env = {**os.environ, "ANTHROPIC_API_KEY": DEFAULT_API_KEY, "ANTHROPIC_BASE_URL": model.url}
    worker = start_worker(env, work)
    results = {"scale": "quick" if args.quick else "full", "logs": work}
    try:
        wait_for_worker(worker, work)
        account, _ = create_account(ACCOUNT_NAME)
        beat = Beat()
        results["latency"] = latency_phase(account, receiver, 20 if args.quick else 60, beat)
        results["drain"] = drain_phase(account, receiver, 1000, beat)
        results["load"] = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        receiver.stop()
        model.stop()
        redis.shutdown(nosave=True)
    print(report(results))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
