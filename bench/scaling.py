"""Benchmark of scaling out: calls spread over 1 web process against 2, on this machine.

    .venv/bin/python -m bench.scaling [--quick] [--levels 20,40,60] [--processes 1,2]

For each number of web processes, concurrent calls at rising levels (callers are `PlivoCallSimulator`s speaking
Plivo's protocol, the vendors the test fakes delayed like the real services, as in bench.calls): the largest
level where every caller turn is answered and the turn p95 (the caller's end of speech to the first audio back,
as the caller hears it) stays within 1.2 s. At each level it also measures what a call costs the server: CPU
(ms per call-second) and memory (the web processes' resident memory above their idle size, per call), from
which the README's estimate of 1,000 and 10,000 concurrent calls is made. Capacity checks at the answer URL are
off here (MAX_CALLS_PER_PROCESS very large): what is measured is what the processes carry.

Last, what live control costs a call: joining and leaving its group on the Channels layer (Redis), timed.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from pathlib import Path

from bench.calls import (STT_FINAL_DELAY_S, LLM_FIRST_TOKEN_S, TTS_FIRST_AUDIO_S, Server, Vendors,
                         delete_previous_runs, make_bot, percentile, run_calls, server_turns, summarize)
from bench.knowledge import use_bench_database

TURN_P95_TARGET_MS = 1200
NO_CAPACITY_LIMIT = {"MAX_CALLS_PER_PROCESS": "10000"}
LEVELS = [10, 20, 40, 60, 80, 100, 120, 150]
QUICK_LEVELS = [10, 30, 60]


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MemoryPeak:
    """The web processes' resident memory, sampled every 0.2 s while calls run; the peak of the sum."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak = server, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, sum(resident_mb(p.pid) for p in self.server.processes))

    def __enter__(self) -> "MemoryPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def within_target(row: dict) -> bool:
    return (row["total_p95_ms"] is not None and row["total_p95_ms"] <= TURN_P95_TARGET_MS and row["unanswered"] == 0
            and row["dropped_by_server"] == 0)


def run_level(server: Server, vendors: Vendors, level: int, idle_mb: float) -> dict:
    bot = make_bot(f"scaling-{server.processes_count}-{level}")
    cpu_before, started = server.cpu_seconds(), time.monotonic()
    with MemoryPeak(server) as memory:
        results = asyncio.run(run_calls(server, bot, level, utterances=2, stagger_s=min(0.05, 3.0 / level)))
    elapsed, cpu = time.monotonic() - started, server.cpu_seconds() - cpu_before
    row = summarize(results, server_turns([call_uuid for call_uuid, _ in results]))
    row.pop("greeting_ms")
    call_seconds = level * elapsed  # every call lasts about the whole run (staggered by at most 3 s)
    row.update(level=level, server_cpu_ms_per_call_second=round(cpu * 1000 / call_seconds, 2),
               server_cpu_cores=round(cpu / elapsed, 2), peak_memory_mb=round(memory.peak, 1),
               memory_mb_per_call=round(max(memory.peak - idle_mb, 0) / level, 2))
    return row


def bench_processes(vendors: Vendors, processes: int, levels: list[int]) -> dict:
    server = Server(vendors, processes=processes, environment=NO_CAPACITY_LIMIT)
    try:
        asyncio.run(run_calls(server, make_bot(f"scaling-warmup-{processes}"), 2, utterances=1, stagger_s=0))
        time.sleep(1.0)
        idle_mb = sum(resident_mb(p.pid) for p in server.processes)
        print(f"  {processes} web process(es), idle after warm-up: {idle_mb:.0f} MB resident", flush=True)
        rows = []
        for level in levels:
            row = run_level(server, vendors, level, idle_mb)
            rows.append(row)
            print(f"    {level:>4} calls: turn p50 {_ms(row['total_p50_ms'])}, p95 {_ms(row['total_p95_ms'])}, "
                  f"unanswered {row['unanswered']}, dropped {row['dropped_by_server']}, server CPU "
                  f"{row['server_cpu_cores']} cores ({row['server_cpu_ms_per_call_second']} ms per call-second), "
                  f"memory {row['peak_memory_mb']} MB ({row['memory_mb_per_call']} MB per call), "
                  f"late caller frames {row['simulator_late_frames']}", flush=True)
            if not within_target(row):
                break
    finally:
        server.stop()
    passing = [row["level"] for row in rows if within_target(row)]
    return {"processes": processes, "idle_mb": round(idle_mb, 1), "rows": rows,
            "max_calls": max(passing, default=0)}


async def group_costs(rounds: int) -> dict:
    """Joining and leaving a call's group on the Channels layer, as each live call does once."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel()
    joins, leaves = [], []
    for index in range(rounds):
        started = time.perf_counter()
        await layer.group_add(f"call.bench-{index}", channel)
        joins.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await layer.group_discard(f"call.bench-{index}", channel)
        leaves.append((time.perf_counter() - started) * 1000)
    return {"join_p50_ms": round(percentile(joins, 0.5), 3), "join_p95_ms": round(percentile(joins, 0.95), 3),
            "leave_p50_ms": round(percentile(leaves, 0.5), 3), "leave_p95_ms": round(percentile(leaves, 0.95), 3)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer levels")
    parser.add_argument("--levels", type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--processes", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2])
    args = parser.parse_args(argv)
    use_bench_database()
    delete_previous_runs()
    levels = args.levels or (QUICK_LEVELS if args.quick else LEVELS)
    print(f"Scaling out over web processes (fakes delayed: STT final {STT_FINAL_DELAY_S * 1000:.0f} ms, first "
          f"token {LLM_FIRST_TOKEN_S * 1000:.0f} ms, first TTS audio {TTS_FIRST_AUDIO_S * 1000:.0f} ms); "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    vendors = Vendors()
    try:
        runs = [bench_processes(vendors, processes, levels) for processes in args.processes]
    finally:
        vendors.stop()
    live = asyncio.run(group_costs(200))
    print(f"  live control per call: group join p50 {live['join_p50_ms']} ms (p95 {live['join_p95_ms']}), leave "
          f"p50 {live['leave_p50_ms']} ms (p95 {live['leave_p95_ms']})")
    for run in runs:
        print(f"  {run['processes']} web process(es): {run['max_calls']} concurrent calls with every turn answered "
              f"and turn p95 <= {TURN_P95_TARGET_MS} ms")
    print(f"  load average {os.getloadavg()[0]:.2f} at the end")
    return {"runs": runs, "live_control": live}


if __name__ == "__main__":
    main()
