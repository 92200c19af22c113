"""Benchmark of live phone calls: turn latency, greeting latency, and how many calls one machine carries.

    .venv/bin/python -m bench.calls [--quick] [--levels 10,50] [--no-recording]

Everything runs on this machine, as in production but with the vendors replaced by the test fakes on
127.0.0.1, delayed like the real services: the speech-to-text final comes 150 ms after speech ends, the
model's first token 350 ms after the request, the first TTS audio 90 ms after the first text. The server
is Daphne serving the real ASGI app (a separate process); callers are `PlivoCallSimulator`s speaking
Plivo's protocol over real WebSockets, in this process, together with the fakes.

Figures:
- turn latency: the caller's end of speech to the first `playAudio`, as the caller sees it, p50/p95; and
  the platform's own share (that latency minus the fakes' delays), from the server's per-turn records;
- greeting: `start` to the first `playAudio`, on a bot's first call (synthesized), then p50 over short calls
  that only hear it (cached);
- capacity: concurrent calls at rising levels; the platform's share p95, audible gaps (audio arriving
  after the caller's playback ran dry mid-segment), and the server's CPU per call.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.knowledge import use_bench_database

ROOT = Path(__file__).resolve().parent.parent
# The STT final 150 ms after speech ends: Deepgram's endpointing set to 100 ms, plus 50 ms of its own.
STT_ENDPOINTING_MS = 100
STT_FINAL_DELAY_S = 0.15
LLM_FIRST_TOKEN_S = 0.35
TTS_FIRST_AUDIO_S = 0.09
VENDOR_DELAYS_MS = (STT_FINAL_DELAY_S + LLM_FIRST_TOKEN_S + TTS_FIRST_AUDIO_S) * 1000
REPLY = ("We open at nine. ", "Anything else?")
QUESTION = "What time do you open tomorrow?"
TARGETS = {"platform_p95_one_call_ms": 20, "total_p50_ms": 700, "greeting_ms": 300, "capacity_calls": 100,
           "capacity_platform_p95_ms": 50}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Vendors:
    """The three fakes in a process of their own (so they do not compete with the callers for one
    interpreter), delayed like the real services."""

    def __init__(self, command: tuple[str, ...] = ("bench.calls", "--serve-vendors"), *, stdin=None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, stdin=stdin,
                                        stdout=subprocess.PIPE, text=True)
        self.urls = json.loads(self.process.stdout.readline())

    def environment(self) -> dict[str, str]:
        return {
            "ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": self.urls["llm"],
            "DEEPGRAM_API_KEY": "test-key", "DEEPGRAM_BASE_URL": self.urls["stt"],
            "CARTESIA_API_KEY": "test-key", "CARTESIA_BASE_URL": self.urls["tts"],
            "STT_ENDPOINTING_MS": str(STT_ENDPOINTING_MS),
        }

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def serve_vendors() -> None:
    """Run the fakes until terminated; print their URLs as one JSON line first."""
    from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
    from tests.fakes.cartesia_server import FakeCartesia
    from tests.fakes.deepgram_server import FakeDeepgram

    async def run() -> None:
        llm = FakeAnthropic()
        llm.default_turn = Turn([Text(*REPLY)], first_token_delay_s=LLM_FIRST_TOKEN_S)
        stt = FakeDeepgram([QUESTION] * 100_000, final_delay_s=STT_FINAL_DELAY_S - STT_ENDPOINTING_MS / 1000)
        tts = FakeCartesia(first_chunk_delay_s=TTS_FIRST_AUDIO_S)
        await start_fakes(llm, stt, tts)
        await asyncio.Event().wait()

    asyncio.run(run())


async def start_fakes(llm, stt, tts) -> None:
    """Start the three fakes and print their URLs as one JSON line (what `Vendors` reads)."""
    for fake in (llm, stt, tts):
        await fake.start()
    print(json.dumps({"llm": llm.url, "stt": stt.ws_url.replace("ws://", "http://"), "tts": tts.http_url}),
          flush=True)


class Server:
    """The product's web server (config/webserver.py: web processes on one socket) on the benchmark
    database, pointed at the fakes."""

    def __init__(self, vendors: Vendors, processes: int | None = None,
                 environment: dict[str, str] | None = None) -> None:
        from django.conf import settings

        from config.webserver import WEB_PROCESSES_DEFAULT, listening_socket, web_process_command

        self.processes_count = processes or WEB_PROCESSES_DEFAULT
        sock = listening_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **vendors.environment(), "DATABASE_URL": settings.DATABASE_URL,
               "REDIS_URL": settings.REDIS_URL, "PUBLIC_BASE_URL": self.url, "PLIVO_VERIFY_SIGNATURES": "false",
               "LOG_LEVEL": os.environ.get("BENCH_SERVER_LOG_LEVEL", "ERROR"), "DEBUG": "false",
               "SECRET_KEY": settings.SECRET_KEY,
               # What the processes carry is measured here: the answer URL's capacity check stays out of the way.
               "MAX_CALLS_PER_PROCESS": "10000", **(environment or {})}
        self.log = tempfile.TemporaryFile()
        self.processes = [subprocess.Popen(web_process_command(sock), cwd=ROOT, env=env, pass_fds=(sock.fileno(),),
                                           stdout=subprocess.DEVNULL, stderr=self.log)
                          for _ in range(self.processes_count)]
        sock.close()  # the children hold it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.log.seek(0)
        raise RuntimeError("The server did not start: " + self.log.read(2000).decode(errors="replace"))

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(process.pid) for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def make_bot(name: str, account_name: str | None = None, record_calls: bool = True):
    """A receptionist bot in an account of its own (by default one `delete_previous_runs` cleans up)."""
    from voicebots.accounts.services import create_account
    from voicebots.bots.models import Voicebot

    account, _ = create_account(account_name or f"bench-calls {name}")
    return Voicebot.objects.create(account=account, name=name, prompt="You are a clinic receptionist.",
                                   welcome_message="Hello, Smile Dental, how can I help?", record_calls=record_calls)


def delete_previous_runs() -> None:
    from voicebots.accounts.models import Account

    Account.objects.filter(name__startswith="bench-calls").delete()


def caller_audio(utterances: int, gap_s: float) -> bytes:
    """The question spoken (espeak-ng), so that the voice detector hears speech and the timeline's end of
    speech is real, then `gap_s` of silence for the answer; `utterances` times."""
    from bench.speech import spoken
    from tests.fakes.deepgram_server import silence

    return (spoken(QUESTION) + silence(int(gap_s * 1000))) * utterances


def answered(server: Server, bot) -> tuple[str, str]:
    """Plivo's answer request for a new call: its CallUUID and the stream URL of the answer XML."""
    from voicebots.telephony.management.commands.simulate_call import answer

    call_uuid = str(uuid.uuid4())
    return call_uuid, answer(bot, server.url, {"CallUUID": call_uuid, "From": "14155550100", "To": "14155550199",
                                               "Direction": "inbound", "CallStatus": "in-progress"})


async def run_calls(server: Server, bot, count: int, utterances: int, stagger_s: float, linger_s: float = 1.0):
    from voicebots.telephony.simulator import PlivoCallSimulator

    audio = caller_audio(utterances, gap_s=3.0)
    calls = [answered(server, bot) for _ in range(count)]

    async def one(index: int, call_uuid: str, url: str):
        await asyncio.sleep(index * stagger_s)
        simulator = PlivoCallSimulator(url, caller_audio=audio, call_id=call_uuid, linger_s=linger_s,
                                       max_duration_s=90)
        return call_uuid, await simulator.run()

    return await asyncio.gather(*(one(i, call_uuid, url) for i, (call_uuid, url) in enumerate(calls)))


def server_turns(call_uuids: list[str]) -> list[dict]:
    """The server's records of the callers' turns (not the greetings) of these calls."""
    from voicebots.calls.models import CallTurn

    time.sleep(1.0)  # the last turn is written once its audio is acknowledged
    return list(CallTurn.objects.filter(call__call_uuid__in=call_uuids).exclude(caller_text="")
                .values_list("timings", flat=True))


def summarize(results, turns: list[dict]) -> dict:
    latencies = [t.latency_ms for _, r in results for t in r.turns if t.latency_ms is not None]
    unanswered = sum(1 for _, r in results for t in r.turns if t.latency_ms is None)
    platform = [t["platform_ms"] for t in turns if t.get("platform_ms") is not None]
    return {
        "calls": len(results), "turns": len(latencies), "unanswered": unanswered,
        "total_p50_ms": percentile(latencies, 0.5), "total_p95_ms": percentile(latencies, 0.95),
        "platform_p50_ms": percentile(platform, 0.5), "platform_p95_ms": percentile(platform, 0.95),
        "client_side_platform_p50_ms": (percentile(latencies, 0.5) or 0) - VENDOR_DELAYS_MS if latencies else None,
        "greeting_ms": [r.greeting_first_audio_ms for _, r in results],
        "audible_gaps": sum(r.playback_underruns for _, r in results),
        "simulator_late_frames": sum(r.late_media_frames for _, r in results),
        "dropped_by_server": sum(1 for _, r in results if r.closed_by_server),
    }


def bench_latency(server: Server, calls: int, greetings: int, record_calls: bool) -> dict:
    """One call at a time: turn latency and its platform share; the greeting on the bot's first call, then over
    `greetings` short calls that only hear it (cached)."""
    bot = make_bot("latency", record_calls=record_calls)
    results = []
    for _ in range(calls):
        results.extend(asyncio.run(run_calls(server, bot, 1, utterances=5, stagger_s=0)))
    summary = summarize(results, server_turns([cid for cid, _ in results]))
    summary["greeting_cold_ms"] = summary.pop("greeting_ms")[0]
    warm = [result.greeting_first_audio_ms for _ in range(greetings)
            for _, result in asyncio.run(run_calls(server, bot, 1, utterances=0, stagger_s=0, linger_s=0.5))]
    summary["greeting_warm_p50_ms"] = percentile([g for g in warm if g is not None], 0.5)
    summary["greeting_warm_calls"] = len(warm)
    return summary


def bench_capacity(server: Server, vendors: Vendors, levels: list[int], record_calls: bool) -> list[dict]:
    rows = []
    for level in levels:
        bot = make_bot(f"capacity-{level}", record_calls=record_calls)
        cpu_before, started = server.cpu_seconds(), time.monotonic()
        harness_before = vendors.cpu_seconds() + time.process_time()
        results = asyncio.run(run_calls(server, bot, level, utterances=2, stagger_s=min(0.05, 3.0 / level)))
        elapsed, cpu = time.monotonic() - started, server.cpu_seconds() - cpu_before
        harness_cpu = vendors.cpu_seconds() + time.process_time() - harness_before
        row = summarize(results, server_turns([cid for cid, _ in results]))
        greetings = [g for g in row.pop("greeting_ms") if g is not None]
        row.update(level=level, greeting_p95_ms=percentile(greetings, 0.95),
                   server_cpu_ms_per_call_second=round(cpu * 1000 / (level * elapsed), 2),
                   server_cpu_cores=round(cpu / elapsed, 2), harness_cpu_cores=round(harness_cpu / elapsed, 2))
        rows.append(row)
        print(f"  {level:>4} calls: platform p95 {row['platform_p95_ms']} ms, total p95 {row['total_p95_ms']} ms, "
              f"gaps {row['audible_gaps']}, unanswered {row['unanswered']}, "
              f"server CPU {row['server_cpu_cores']} cores (callers and fakes {row['harness_cpu_cores']}), "
              f"late caller frames {row['simulator_late_frames']}", flush=True)
        if not ok_at_capacity(row):
            break
    return rows


def ok_at_capacity(row: dict) -> bool:
    """Within targets, with no late frames either way: none of the bot's audio late (gaps), and none of the
    callers' (a late caller means the machine is past what the figures can vouch for)."""
    return (row["platform_p95_ms"] is not None and row["platform_p95_ms"] <= TARGETS["capacity_platform_p95_ms"]
            and row["audible_gaps"] == 0 and row["simulator_late_frames"] == 0 and row["unanswered"] == 0
            and row["dropped_by_server"] == 0)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and capacity levels")
    parser.add_argument("--levels", type=lambda text: [int(n) for n in text.split(",")],
                        help="capacity levels to try, e.g. 50,100 (default: rising from 10)")
    parser.add_argument("--no-recording", action="store_true",
                        help="bots that do not record their calls (the pipeline alone)")
    parser.add_argument("--serve-vendors", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_vendors:
        return serve_vendors()
    use_bench_database()
    delete_previous_runs()
    vendors = Vendors()
    server = Server(vendors)
    try:
        print("Live calls (fakes delayed: STT final 150 ms, first token 350 ms, first TTS audio 90 ms)", flush=True)
        print(f"  bots record their calls: {'no' if args.no_recording else 'yes'}", flush=True)
        latency = bench_latency(server, calls=2 if args.quick else 4, greetings=10 if args.quick else 20,
                                record_calls=not args.no_recording)
        print(f"  one call: total p50 {latency['total_p50_ms']} ms, p95 {latency['total_p95_ms']} ms; platform share "
              f"p50 {latency['platform_p50_ms']} ms, p95 {latency['platform_p95_ms']} ms over {latency['turns']} turns")
        print(f"  greeting: first call {latency['greeting_cold_ms']:.0f} ms, later calls p50 "
              f"{latency['greeting_warm_p50_ms']:.1f} ms over {latency['greeting_warm_calls']}", flush=True)
        print("  capacity (2 caller turns per call):", flush=True)
        levels = args.levels or ([10, 50] if args.quick else [10, 25, 50, 75, 100, 125, 150])
        capacity = bench_capacity(server, vendors, levels, record_calls=not args.no_recording)
    finally:
        server.stop()
        vendors.stop()
    passing = [row["level"] for row in capacity if ok_at_capacity(row)]
    figures = {"latency": latency, "capacity": capacity, "max_calls_within_targets": max(passing, default=0)}
    checks = [
        ("platform share p95, one call", latency["platform_p95_ms"], TARGETS["platform_p95_one_call_ms"]),
        ("total p50, one call", latency["total_p50_ms"], TARGETS["total_p50_ms"]),
        ("greeting (cached)", latency["greeting_warm_p50_ms"], TARGETS["greeting_ms"]),
    ]
    for name, value, target in checks:
        verdict = "PASS" if value is not None and value <= target else "MISS"
        print(f"  {verdict} {name}: {value} ms (target <= {target} ms)")
    verdict = "PASS" if figures["max_calls_within_targets"] >= TARGETS["capacity_calls"] else "MISS"
    print(f"  {verdict} capacity: {figures['max_calls_within_targets']} concurrent calls with platform p95 <= "
          f"{TARGETS['capacity_platform_p95_ms']} ms and no late frames (target >= {TARGETS['capacity_calls']})")
    return figures


if __name__ == "__main__":
    main()
