"""Benchmark of the console and of recording: pages over a large call history, and what recording costs a call.

    .venv/bin/python -m bench.console [--quick] [--reseed] [--skip-calls]

Console: one account holds 100,000 calls over 60 days (five bots, ten turns each: 1,000,000 turns with
timings, tool calls and transcripts), written with COPY into the benchmark database (`voicebots_bench`) once
and reused by later runs (`--reseed` writes them again). The hourly statistics are rolled up as the beat task
does, then 200 calls arrive after that refresh, so the overview also counts live hours. The pages are timed
through the Django test client as a signed-in member: the 30-day overview, the first page of the call list
(unfiltered, and searching the transcripts), and the page of a 30-minute call with its recording (cold: the
waveform is computed from the WAV; warm: it is kept), plus the first 64 KB of its audio by `Range`.

Recording: the recorder alone, fed 60 calls of one minute of phone audio on a virtual clock (CPU of this
process, writer thread included); and 60 concurrent live calls through the real server and vendor fakes
(bench.calls' harness), recording off and on in the same run, comparing the server's CPU per call-minute.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.calls import percentile
from bench.knowledge import use_bench_database

ACCOUNT = "bench-console"
CALLS, TURNS_PER_CALL, DAYS, BOTS = 100_000, 10, 60, 5
LATE_CALLS = 200
TARGETS = {"overview_p95_ms": 300, "list_p95_ms": 300, "call_page_ms": 1000, "recording_cpu_s_per_call_minute": 0.1}
QUESTIONS = ["What time do you open tomorrow?", "Can I book a cleaning for Monday?", "Where can I park my car?",
             "Do you take my insurance?", "How much is a whitening?", "Can I move my appointment to Friday?",
             "Is the doctor in on Saturday?", "I have a toothache, can someone see me today?"]
ANSWERS = ["We open at nine.", "You are booked for Monday at ten.", "Free parking is behind the building.",
           "Yes, we take most plans.", "Whitening is two hundred dollars.", "Done, Friday at three.",
           "Saturdays we open until one.", "Yes, come at four today."]
REASONS = ["The caller hung up.", "The bot ended the call.", "The call's audio stream closed.", "Nobody answered.",
           "An answering machine picked up.", "The line was busy."]


def _timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


# --- Seeding --------------------------------------------------------------------------------------------

def seeded_account(reseed: bool):
    from voicebots.accounts.models import Account
    from voicebots.calls.models import Call

    account = Account.objects.filter(name=ACCOUNT).first()
    if account is not None and not reseed and Call.objects.filter(account=account).count() >= CALLS:
        print(f"  reusing {CALLS:,} calls of account {ACCOUNT!r}", flush=True)
        return account
    if account is not None:
        print("  deleting the previous seed ...", flush=True)
        account.delete()
    return seed()


def seed():
    from django.db import connection

    from voicebots.accounts.services import create_account
    from voicebots.bots.models import Voicebot
    from voicebots.calls.models import Call, CallTurn

    account, _ = create_account(ACCOUNT)
    bots = [Voicebot.objects.create(account=account, name=f"Desk {n}") for n in range(BOTS)]
    random.seed(7)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    call_columns = [f.column for f in Call._meta.concrete_fields]
    turn_columns = [f.column for f in CallTurn._meta.concrete_fields if f.column != "id"]
    calls = []
    with connection.cursor() as cursor:
        with cursor.connection.cursor().copy(
                f"COPY calls_call ({', '.join(call_columns)}) FROM STDIN") as copy:
            for n in range(CALLS):
                created = now - timedelta(seconds=random.random() * DAYS * 86400 + 3600)
                status = random.choices(["completed", "failed", "voicemail", "no-answer", "busy"],
                                        [88, 3, 4, 3, 2])[0]
                duration = random.randint(30, 300) if status == "completed" else 0
                row = {"id": uuid.uuid4(), "account_id": account.id, "voicebot_id": bots[n % BOTS].id,
                       "direction": "outbound" if n % 3 == 0 else "inbound", "status": status,
                       "call_uuid": str(uuid.uuid4()), "request_uuid": "", "stream_id": "",
                       "from_number": "+14155550100",
                       "to_number": f"+1415555{n % 10000:04d}", "variables": "{}",
                       "answered_at": created if status == "completed" else None, "stream_started_at": created,
                       "ended_at": created + timedelta(seconds=duration), "duration_seconds": duration,
                       "hangup_cause": "", "end_reason": random.choice(REASONS), "history": "[]", "analysis": None,
                       "created_at": created, "updated_at": created + timedelta(seconds=duration)}
                copy.write_row([row[column] for column in call_columns])
                calls.append((row["id"], created, status == "completed"))
        print(f"  {CALLS:,} calls written in {time.perf_counter() - started:.0f} s", flush=True)
        with cursor.connection.cursor().copy(
                f"COPY calls_callturn ({', '.join(turn_columns)}) FROM STDIN") as copy:
            for call_id, created, answered in calls:
                for index in range(TURNS_PER_CALL if answered else 1):
                    question = random.randrange(len(QUESTIONS))
                    latency = max(250.0, random.gauss(650, 140))
                    stt, llm, tts = 150 + random.random() * 40, latency * 0.55, 85 + random.random() * 20
                    tools = []
                    if index == 3 and question == 1:
                        tools = [{"id": "t", "name": "book_visit", "input": {"day": "Monday"},
                                  "result": "timeout" if random.random() < 0.1 else '{"booked": true}',
                                  "is_error": random.random() < 0.1, "duration_ms": 400.0}]
                    row = {"call_id": call_id, "index": index,
                           "caller_text": "" if index == 0 else QUESTIONS[question],
                           "bot_text": "Hello, Smile Dental!" if index == 0 else ANSWERS[question],
                           "interrupted": random.random() < 0.05, "tool_calls": json.dumps(tools),
                           "timings": json.dumps({} if index == 0 else {
                               "latency_ms": round(latency, 1), "stt_ms": round(stt, 1), "llm_ms": round(llm, 1),
                               "tts_ms": round(tts, 1), "platform_ms": round(latency - stt - llm - tts, 1)}),
                           "passages": "[]", "speech_ended_at": created + timedelta(seconds=10 * index),
                           "created_at": created + timedelta(seconds=10 * index + 2)}
                    copy.write_row([row[column] for column in turn_columns])
        cursor.execute("ANALYZE calls_call")
        cursor.execute("ANALYZE calls_callturn")
    print(f"  {CALLS:,} calls and their turns written in {time.perf_counter() - started:.0f} s", flush=True)
    return account


def late_calls(account) -> None:
    """Calls that arrive after the statistics were rolled up: the overview counts them live."""
    from voicebots.calls.models import Call, CallTurn

    bot = account.voicebots.first()
    now = datetime.now(timezone.utc)
    for n in range(LATE_CALLS):
        call = Call.objects.create(account=account, voicebot=bot, status="completed", duration_seconds=60,
                                   answered_at=now, end_reason="The caller hung up.")
        CallTurn.objects.bulk_create([CallTurn(call=call, index=i, caller_text="Hi?" if i else "", bot_text="Hello.",
                                               timings={"latency_ms": 600.0, "stt_ms": 150.0, "llm_ms": 350.0,
                                                        "tts_ms": 90.0, "platform_ms": 10.0} if i else {})
                                      for i in range(5)])


def long_recorded_call(account):
    """A 30-minute call with 180 turns and its recording (a real WAV in the recordings storage)."""
    import numpy as np

    from voicebots.calls.models import Call, CallTurn
    from voicebots.recordings import services, wav
    from voicebots.recordings.models import Recording

    bot = account.voicebots.first()
    now = datetime.now(timezone.utc)
    call = Call.objects.create(account=account, voicebot=bot, status="completed", duration_seconds=1800,
                               answered_at=now - timedelta(minutes=31), end_reason="The caller hung up.")
    recording = services.begin(call, bot)
    seconds = 1800
    t = np.arange(8000 * 10) / 8000
    ten_seconds = np.zeros((8000 * 10, 2), dtype=np.int16)  # the caller for 3 s, the bot for 3 s, each 10 s
    ten_seconds[8000:32000, 0] = (6000 * np.sin(2 * np.pi * 220 * t[8000:32000])).astype(np.int16)
    ten_seconds[40000:64000, 1] = (6000 * np.sin(2 * np.pi * 330 * t[40000:64000])).astype(np.int16)
    path = services.local_file(recording)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.tile(ten_seconds, (seconds // 10, 1)).tobytes()
    path.write_bytes(wav.header(len(data)) + data)
    Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.READY, size_bytes=len(data) + 44,
                                                     duration_ms=seconds * 1000, started_at=now - timedelta(minutes=31))
    CallTurn.objects.bulk_create([CallTurn(
        call=call, index=i, caller_text=QUESTIONS[i % len(QUESTIONS)] if i else "", bot_text=ANSWERS[i % len(ANSWERS)],
        timings={"latency_ms": 640.0, "stt_ms": 150.0, "llm_ms": 380.0, "tts_ms": 90.0, "platform_ms": 20.0,
                 "last_audio_sent_at_ms": 3600.0} if i else {},
        speech_ended_at=now - timedelta(minutes=31) + timedelta(seconds=10 * i + 4),
        tool_calls=([{"name": "book_visit", "input": {"day": "Monday"}, "result": "ok", "is_error": False}]
                    if i % 20 == 5 else [])) for i in range(180)])
    return call


# --- Console pages --------------------------------------------------------------------------------------

def bench_console(quick: bool, reseed: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from voicebots.accounts.models import Membership
    from voicebots.console import stats

    print("Console pages over 100,000 calls and 1,000,000 turns", flush=True)
    account = seeded_account(reseed)
    started = time.perf_counter()
    stats.refresh()
    print(f"  hourly statistics brought up to date in {time.perf_counter() - started:.1f} s", flush=True)
    late_calls(account)
    call = long_recorded_call(account)
    user, _ = get_user_model().objects.get_or_create(username="bench-console", defaults={"is_staff": True})
    Membership.objects.get_or_create(user=user, account=account)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    base = f"/console/{account.auth_id}"
    repeats = 10 if quick else 30

    def get(path, **extra):
        response = client.get(path, **extra)
        assert response.status_code in (200, 206), (path, response.status_code)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        return response

    figures = {}
    for name, path in [("overview_30d", f"{base}/?period=30d"), ("overview_30d_one_bot",
                       f"{base}/?period=30d&bot={account.voicebots.first().id}"),
                       ("calls_first_page", f"{base}/calls/"), ("calls_search", f"{base}/calls/?text=insurance"),
                       ("calls_failed_last_week", f"{base}/calls/?status=failed&since="
                        f"{(datetime.now(timezone.utc) - timedelta(days=7)).date().isoformat()}")]:
        get(path)  # one warm-up request
        times = _timed(lambda: get(path), repeats)
        figures[name] = {"p50_ms": round(percentile(times, 0.5), 1), "p95_ms": round(percentile(times, 0.95), 1)}
        print(f"  {name}: p50 {figures[name]['p50_ms']} ms, p95 {figures[name]['p95_ms']} ms", flush=True)
    call_page = f"{base}/calls/{call.id}/"
    figures["call_page_cold_ms"] = round(_timed(lambda: get(call_page), 1)[0], 1)
    warm = _timed(lambda: get(call_page), repeats)
    figures["call_page_warm_p95_ms"] = round(percentile(warm, 0.95), 1)
    peaks = get(f"{call_page}peaks")
    started = time.perf_counter()
    first_audio = get(f"{call_page}audio", HTTP_RANGE="bytes=0-65535")
    figures["audio_first_64kb_ms"] = round((time.perf_counter() - started) * 1000, 1)
    figures["audio_first_response"] = f"{first_audio.status_code} {first_audio['Content-Range']}"
    figures["waveform_bytes"] = len(peaks.content)
    print(f"  30-minute call page (180 turns): first open {figures['call_page_cold_ms']} ms (waveform computed from "
          f"the 57 MB WAV), then p95 {figures['call_page_warm_p95_ms']} ms; waveform {len(peaks.content):,} bytes; "
          f"first 64 KB of audio in {figures['audio_first_64kb_ms']} ms ({figures['audio_first_response']})",
          flush=True)
    return figures


# --- Recording's cost -----------------------------------------------------------------------------------

def bench_recorder(calls: int = 60, seconds: int = 60) -> dict:
    """The recorder alone: `calls` calls of `seconds` of phone audio each way, fed as on a call, on a virtual
    clock; the CPU this process spends (the writer thread included) per call-minute."""
    from voicebots.recordings.recorder import StereoRecorder, shared_writer

    frame = bytes(range(0, 160))
    with tempfile.TemporaryDirectory() as folder:
        clocks = [[0.0] for _ in range(calls)]
        recorders = [StereoRecorder(Path(folder) / f"{n}.wav", clock=lambda c=clocks[n]: c[0]) for n in range(calls)]
        cpu_started = time.process_time()
        for tick in range(seconds * 50):  # every 20 ms: a caller frame and a bot frame for every call
            for n, recorder in enumerate(recorders):
                clocks[n][0] += 0.02
                recorder.caller_audio(frame)
                recorder.bot_audio(frame)
            if tick % 50 == 49:  # a second went by: in real time the writer had it to catch up
                shared_writer().submit(lambda: None).result()

        async def close_all():
            return await asyncio.gather(*(recorder.close() for recorder in recorders))

        results = asyncio.run(close_all())
        shared_writer().submit(lambda: None).result()
        cpu = time.process_time() - cpu_started
    assert all(result.error is None and abs(result.duration_s - seconds) < 1 for result in results)
    per_minute = cpu / (calls * seconds / 60)
    print(f"  recorder alone: {per_minute * 1000:.1f} ms of CPU per call-minute ({calls} calls of {seconds} s, "
          f"audio both ways)", flush=True)
    return {"recorder_cpu_ms_per_call_minute": round(per_minute * 1000, 2)}


def bench_live_calls(level: int, rounds: int) -> dict:
    """`level` concurrent live calls through the server, recording off then on, `rounds` times."""
    from voicebots.calls.models import Call
    from voicebots.recordings.models import Recording

    from bench.calls import Server, Vendors, delete_previous_runs, make_bot, run_calls

    delete_previous_runs()
    vendors = Vendors()
    server = Server(vendors)
    rows = []
    try:
        for round_ in range(rounds):
            for record in (False, True):
                bot = make_bot(f"recording-{'on' if record else 'off'}-{round_}")
                bot.record_calls = record
                bot.save(update_fields=["record_calls"])
                cpu_before = server.cpu_seconds()
                results = asyncio.run(run_calls(server, bot, level, utterances=2, stagger_s=min(0.05, 3.0 / level)))
                cpu = server.cpu_seconds() - cpu_before
                time.sleep(1.0)
                ids = [call_uuid for call_uuid, _ in results]
                calls = Call.objects.filter(call_uuid__in=ids).exclude(answered_at=None).exclude(ended_at=None)
                call_minutes = sum((c.ended_at - c.answered_at).total_seconds() for c in calls) / 60
                recorded = Recording.objects.filter(call__call_uuid__in=ids, status=Recording.Status.READY).count()
                row = {"recording": record, "calls": len(results), "recorded": recorded,
                       "call_minutes": round(call_minutes, 1),
                       "server_cpu_s_per_call_minute": round(cpu / call_minutes, 4) if call_minutes else None}
                rows.append(row)
                print(f"  {level} live calls, recording {'on ' if record else 'off'}: server CPU "
                      f"{row['server_cpu_s_per_call_minute']} s per call-minute over {row['call_minutes']} "
                      f"call-minutes ({recorded} recordings)", flush=True)
    finally:
        server.stop()
        vendors.stop()
    off = [r["server_cpu_s_per_call_minute"] for r in rows if not r["recording"]]
    on = [r["server_cpu_s_per_call_minute"] for r in rows if r["recording"]]
    added = (sum(on) / len(on)) - (sum(off) / len(off))
    print(f"  recording added {added:.4f} CPU-s per call-minute at {level} calls (mean of {rounds} rounds)", flush=True)
    return {"live": rows, "added_cpu_s_per_call_minute": round(added, 4)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, one round of live calls")
    parser.add_argument("--reseed", action="store_true", help="write the 100,000 calls again")
    parser.add_argument("--skip-calls", action="store_true", help="no live calls (the recorder alone is measured)")
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per simulated call's answer request otherwise
    use_bench_database()
    figures = bench_console(args.quick, args.reseed)
    print("Recording's cost", flush=True)
    figures.update(bench_recorder())
    if not args.skip_calls:
        figures.update(bench_live_calls(60, 1 if args.quick else 2))
    checks = [("overview, 30 days, p95", figures["overview_30d"]["p95_ms"], TARGETS["overview_p95_ms"], "ms"),
              ("call list, first page, p95", figures["calls_first_page"]["p95_ms"], TARGETS["list_p95_ms"], "ms"),
              ("30-minute call page, first open", figures["call_page_cold_ms"], TARGETS["call_page_ms"], "ms"),
              ("recording, CPU-s per call-minute (recorder alone)",
               figures["recorder_cpu_ms_per_call_minute"] / 1000, TARGETS["recording_cpu_s_per_call_minute"], "s")]
    if "added_cpu_s_per_call_minute" in figures:
        checks.append(("recording, CPU-s per call-minute added at 60 live calls",
                       figures["added_cpu_s_per_call_minute"], TARGETS["recording_cpu_s_per_call_minute"], "s"))
    for name, value, target, unit in checks:
        verdict = "PASS" if value is not None and value <= target else "MISS"
        print(f"  {verdict} {name}: {value} {unit} (target <= {target} {unit})")
    return figures


if __name__ == "__main__":
    main()
