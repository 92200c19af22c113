"""Benchmark of browser calls (the voice playground): their turn latency beside a phone call's, and 20 at once.

    .venv/bin/python -m bench.browser [--quick] [--sessions 20]

Set-up as in bench.calls: Daphne serving the real ASGI app (two processes, a separate process group) on the
benchmark database, the vendor fakes in a process of their own, delayed like the real services (STT final 150 ms
after speech ends, first token 350 ms, first TTS audio 90 ms). Browser callers are `BrowserCallSimulator`s: the
page's protocol over real WebSockets (a signed-in session's cookie, 20 ms of 16 kHz 16-bit PCM every 20 ms, the
bot's audio played in real time, checkpoints acknowledged when played), not real browsers. Phone callers are
`PlivoCallSimulator`s. Both say the same espeak-ng question, in their own format, and measure alike.

Figures:
- turn latency, the caller's end of speech to the first bot audio at the caller, for phone and browser calls
  in the same run (one call at a time, alternating); target: the browser's p50 within 30 ms of the phone's;
- 20 concurrent browser calls (2 questions each): every turn's latency; target: none slower than 1.2 s.
"""
from __future__ import annotations

import argparse
import asyncio
import os

from bench.calls import (
    QUESTION,
    VENDOR_DELAYS_MS,
    Server,
    Vendors,
    answered,
    delete_previous_runs,
    make_bot,
    percentile,
    server_turns,
)
from bench.knowledge import use_bench_database

TARGETS = {"browser_minus_phone_p50_ms": 30, "concurrent_max_turn_ms": 1200}
PASSWORD = "bench-browser-password-1"
GAP_S = 3.0  # quiet after each question: the answer plays meanwhile


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def caller_audio(audio_format, utterances: int) -> bytes:
    from bench.speech import spoken

    return (spoken(QUESTION, audio_format=audio_format) + audio_format.silence(int(GAP_S * 1000))) * utterances


class BrowserSessions:
    """Signed-in members of the bot's account, one session cookie each (a member's calls count against the
    account's limit of browser calls at once, which the benchmark's server raises to the number it needs)."""

    def __init__(self, bot) -> None:
        self.bot = bot

    def cookie(self, index: int) -> str:
        from django.contrib.auth import get_user_model
        from django.test import Client

        from voicebots.accounts.services import create_member

        username = f"bench-browser-{self.bot.id.hex[:8]}-{index}"
        if not get_user_model().objects.filter(username=username).exists():
            create_member(self.bot.account, username, PASSWORD)
        client = Client()
        assert client.login(username=username, password=PASSWORD)
        return f"sessionid={client.cookies['sessionid'].value}"


async def browser_calls(server: Server, bot, count: int, utterances: int, stagger_s: float):
    from voicebots.voice.audio import PCM16_16K
    from voicebots.web.voice_simulator import BrowserCallSimulator

    audio = caller_audio(PCM16_16K, utterances)
    sessions = BrowserSessions(bot)
    cookies = [await asyncio.to_thread(sessions.cookie, index) for index in range(count)]
    url = server.url.replace("http://", "ws://") + f"/ws/voice/{bot.id}/"

    async def one(index: int):
        await asyncio.sleep(index * stagger_s)
        simulator = BrowserCallSimulator(url, cookie=cookies[index], origin=server.url, caller_audio=audio,
                                         linger_s=1.0, max_duration_s=90)
        result = await simulator.run()
        return result.call_id, result

    return await asyncio.gather(*(one(index) for index in range(count)))


async def phone_call(server: Server, bot, utterances: int):
    from voicebots.telephony.simulator import PlivoCallSimulator
    from voicebots.voice.audio import MULAW_8K

    call_uuid, url = await asyncio.to_thread(answered, server, bot)
    simulator = PlivoCallSimulator(url, caller_audio=caller_audio(MULAW_8K, utterances), call_id=call_uuid,
                                   linger_s=1.0, max_duration_s=90)
    return call_uuid, await simulator.run()


def latencies(results) -> list[float]:
    return [turn.latency_ms for _, result in results for turn in result.turns if turn.latency_ms is not None]


def unanswered(results) -> int:
    return sum(1 for _, result in results for turn in result.turns if turn.latency_ms is None)


def web_turns(call_ids: list[str]) -> list[dict]:
    """The server's records of the browser callers' turns (not the greetings)."""
    import time

    from voicebots.calls.models import CallTurn

    time.sleep(1.0)  # the last turn is written once its audio is acknowledged
    return list(CallTurn.objects.filter(call_id__in=call_ids).exclude(caller_text="")
                .values_list("timings", flat=True))


def summary(values: list[float]) -> dict:
    rounded = lambda value: None if value is None else round(value, 1)  # noqa: E731
    return {"p50_ms": rounded(percentile(values, 0.5)), "p95_ms": rounded(percentile(values, 0.95)),
            "max_ms": rounded(max(values) if values else None), "turns": len(values)}


def bench_side_by_side(server: Server, calls: int, utterances: int) -> dict:
    """One call at a time, phone and browser alternating, on one bot."""
    bot = make_bot("side-by-side")
    phone, browser = [], []
    for _ in range(calls):
        phone.append(asyncio.run(phone_call(server, bot, utterances)))
        browser.extend(asyncio.run(browser_calls(server, bot, 1, utterances, 0)))
    phone_platform = [t["platform_ms"] for t in server_turns([cid for cid, _ in phone]) if t.get("platform_ms")]
    web_platform = [t["platform_ms"] for t in web_turns([cid for cid, _ in browser]) if t.get("platform_ms")]
    figures = {"phone": summary(latencies(phone)), "browser": summary(latencies(browser)),
               "phone_platform_p50_ms": percentile(phone_platform, 0.5),
               "browser_platform_p50_ms": percentile(web_platform, 0.5),
               "unanswered": unanswered(phone) + unanswered(browser)}
    if figures["phone"]["p50_ms"] is not None and figures["browser"]["p50_ms"] is not None:
        figures["browser_minus_phone_p50_ms"] = round(figures["browser"]["p50_ms"] - figures["phone"]["p50_ms"], 1)
    return figures


def bench_concurrent(server: Server, vendors: Vendors, sessions: int) -> dict:
    import time

    bot = make_bot(f"browser-{sessions}")
    cpu_before, harness_before, started = server.cpu_seconds(), vendors.cpu_seconds() + time.process_time(), \
        time.monotonic()
    results = asyncio.run(browser_calls(server, bot, sessions, utterances=2, stagger_s=min(0.1, 3.0 / sessions)))
    elapsed = time.monotonic() - started
    server_cpu = server.cpu_seconds() - cpu_before
    harness_cpu = vendors.cpu_seconds() + time.process_time() - harness_before
    values = latencies(results)
    platform = [t["platform_ms"] for t in web_turns([cid for cid, _ in results]) if t.get("platform_ms")]
    return {"sessions": sessions, **summary(values), "unanswered": unanswered(results),
            "platform_p95_ms": percentile(platform, 0.95),
            "audible_gaps": sum(r.playback_underruns for _, r in results),
            "late_caller_frames": sum(r.late_media_frames for _, r in results),
            "closed_by_server": sum(1 for _, r in results if r.closed_by_server),
            "server_cpu_ms_per_call_second": round(server_cpu * 1000 / (sessions * elapsed), 2),
            "server_cpu_cores": round(server_cpu / elapsed, 2), "harness_cpu_cores": round(harness_cpu / elapsed, 2)}


def delete_previous_members() -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username__startswith="bench-browser-").delete()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer side-by-side calls")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent browser calls (default 20)")
    parser.add_argument("--only", choices=("latency", "concurrent"), help="run one of the two parts")
    args = parser.parse_args(argv)
    use_bench_database()
    delete_previous_runs()
    delete_previous_members()
    vendors = Vendors()
    server = Server(vendors, environment={"BROWSER_CALLS_PER_ACCOUNT": str(max(args.sessions, 1)),
                                          "BROWSER_CALL_IDLE_SECONDS": "30"})
    try:
        print(f"Browser calls (fakes delayed: {VENDOR_DELAYS_MS:.0f} ms in all; load average {load_average()})",
              flush=True)
        side = concurrent = None
        if args.only != "concurrent":
            side = bench_side_by_side(server, calls=2 if args.quick else 4, utterances=3 if args.quick else 5)
            phone, browser = side["phone"], side["browser"]
            print(f"  one call at a time: phone p50 {phone['p50_ms']:.0f} ms (p95 {phone['p95_ms']:.0f}), browser "
                  f"p50 {browser['p50_ms']:.0f} ms (p95 {browser['p95_ms']:.0f}), {phone['turns']}+"
                  f"{browser['turns']} turns; platform share p50 phone {side['phone_platform_p50_ms']} ms, browser "
                  f"{side['browser_platform_p50_ms']} ms", flush=True)
        if args.only != "latency":
            concurrent = bench_concurrent(server, vendors, args.sessions)
            print(f"  {concurrent['sessions']} browser calls at once: turn p50 {concurrent['p50_ms']:.0f} ms, p95 "
                  f"{concurrent['p95_ms']:.0f} ms, max {concurrent['max_ms']:.0f} ms over {concurrent['turns']} "
                  f"turns; platform p95 {concurrent['platform_p95_ms']} ms; unanswered {concurrent['unanswered']}, "
                  f"gaps {concurrent['audible_gaps']}, late caller frames {concurrent['late_caller_frames']}; server "
                  f"CPU {concurrent['server_cpu_ms_per_call_second']} ms per call-second "
                  f"({concurrent['server_cpu_cores']} cores; callers and fakes {concurrent['harness_cpu_cores']}) "
                  f"(load average {load_average()})", flush=True)
    finally:
        server.stop()
        vendors.stop()
    checks = []
    if side is not None:
        checks.append(("browser p50 minus phone p50, one call", side.get("browser_minus_phone_p50_ms"),
                       TARGETS["browser_minus_phone_p50_ms"], side["unanswered"]))
    if concurrent is not None:
        checks.append((f"slowest turn, {args.sessions} browser calls at once", concurrent["max_ms"],
                       TARGETS["concurrent_max_turn_ms"], concurrent["unanswered"]))
    for name, value, target, missing in checks:
        verdict = "PASS" if value is not None and value <= target and not missing else "MISS"
        print(f"  {verdict} {name}: {value} ms (target <= {target} ms){f'; {missing} unanswered' if missing else ''}")
    return {"side_by_side": side, "concurrent": concurrent}


if __name__ == "__main__":
    main()
