"""Call statistics for the overview: hourly rows rolled up from calls and turns, and their sums over a period.

One SQL query computes the rows of any set of hours from the calls and their turns (`_HOUR_ROWS`). The beat
task `refresh` stores the rows of every hour with a call that changed since its last run; the overview reads
the stored rows, and computes the hours since the last refresh live (a few hours of calls at most), so a call
that just ended shows at once. The work of a 30-day overview is then a few thousand rows, not a million turns.
Latency percentiles come from per-hour histograms (20 ms buckets up to 3 s, 250 ms beyond).
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models.functions import Trunc
from django.utils import timezone

from voicebots.calls.models import Call

from .models import HourlyCallStats, StatsRefresh

COUNTS = ("calls", "answered", "unanswered", "failed", "voicemail", "seconds", "turns", "interrupted", "tool_calls",
          "tool_errors", "replies", "latency_sum", "stt_sum", "llm_sum", "tts_sum", "platform_sum")
FINE_BUCKET_MS, FINE_UP_TO_MS, COARSE_BUCKET_MS = 20, 3000, 250
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.get_fixed_timezone(0))

_HOUR_ROWS = f"""
WITH c AS (
    SELECT account_id, voicebot_id, coalesce(voicebot_id::text, '') AS bot, date_trunc('hour', created_at) AS hour,
           status, answered_at, coalesce(duration_seconds, 0) AS seconds, end_reason
    FROM calls_call
    WHERE account_id = %(account)s AND created_at >= %(start)s AND created_at < %(end)s
), per_call AS (
    SELECT account_id, voicebot_id, bot, hour, count(*) AS calls,
           count(*) FILTER (WHERE answered_at IS NOT NULL AND status <> 'voicemail') AS answered,
           count(*) FILTER (WHERE status IN ('busy', 'no-answer', 'canceled')) AS unanswered,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'voicemail') AS voicemail,
           sum(seconds) AS seconds
    FROM c GROUP BY 1, 2, 3, 4
), t AS (
    SELECT coalesce(call.voicebot_id::text, '') AS bot, date_trunc('hour', call.created_at) AS hour, ct.interrupted,
           jsonb_array_length(ct.tool_calls) AS tools,
           CASE WHEN ct.tool_calls = '[]'::jsonb THEN 0 ELSE
               (SELECT count(*) FROM jsonb_array_elements(ct.tool_calls) AS e WHERE e->>'is_error' = 'true') END
               AS tool_errors,
           CASE WHEN ct.caller_text <> '' THEN (ct.timings->>'latency_ms')::float END AS latency,
           coalesce((ct.timings->>'stt_ms')::float, 0) AS stt, coalesce((ct.timings->>'llm_ms')::float, 0) AS llm,
           coalesce((ct.timings->>'tts_ms')::float, 0) AS tts,
           coalesce((ct.timings->>'platform_ms')::float, 0) AS platform
    FROM calls_callturn AS ct JOIN calls_call AS call ON call.id = ct.call_id
    WHERE call.account_id = %(account)s AND call.created_at >= %(start)s AND call.created_at < %(end)s
), per_turn AS (
    SELECT bot, hour, count(*) AS turns, count(*) FILTER (WHERE interrupted) AS interrupted,
           sum(tools) AS tool_calls, sum(tool_errors) AS tool_errors, count(latency) AS replies,
           coalesce(sum(latency), 0) AS latency_sum,
           coalesce(sum(stt) FILTER (WHERE latency IS NOT NULL), 0) AS stt_sum,
           coalesce(sum(llm) FILTER (WHERE latency IS NOT NULL), 0) AS llm_sum,
           coalesce(sum(tts) FILTER (WHERE latency IS NOT NULL), 0) AS tts_sum,
           coalesce(sum(platform) FILTER (WHERE latency IS NOT NULL), 0) AS platform_sum
    FROM t GROUP BY 1, 2
), histogram AS (
    SELECT bot, hour, jsonb_object_agg(bucket, n) AS latency_histogram FROM (
        SELECT bot, hour, count(*) AS n,
               (CASE WHEN latency < {FINE_UP_TO_MS}
                     THEN floor(greatest(latency, 0) / {FINE_BUCKET_MS}) * {FINE_BUCKET_MS}
                     ELSE {FINE_UP_TO_MS} + floor((latency - {FINE_UP_TO_MS}) / {COARSE_BUCKET_MS}) * {COARSE_BUCKET_MS}
                END)::int AS bucket
        FROM t WHERE latency IS NOT NULL GROUP BY 1, 2, 4) AS buckets
    GROUP BY 1, 2
), reasons AS (
    SELECT bot, hour, jsonb_object_agg(end_reason, n) AS end_reasons FROM (
        SELECT bot, hour, end_reason, count(*) AS n FROM c WHERE end_reason <> '' GROUP BY 1, 2, 3) AS r
    GROUP BY 1, 2
)
SELECT p.account_id, p.voicebot_id, p.hour, p.calls, p.answered, p.unanswered, p.failed, p.voicemail, p.seconds,
       coalesce(pt.turns, 0), coalesce(pt.interrupted, 0), coalesce(pt.tool_calls, 0), coalesce(pt.tool_errors, 0),
       coalesce(pt.replies, 0), coalesce(pt.latency_sum, 0), coalesce(pt.stt_sum, 0), coalesce(pt.llm_sum, 0),
       coalesce(pt.tts_sum, 0), coalesce(pt.platform_sum, 0),
       coalesce(h.latency_histogram, '{{}}'::jsonb), coalesce(r.end_reasons, '{{}}'::jsonb)
FROM per_call AS p
LEFT JOIN per_turn AS pt ON pt.hour = p.hour AND pt.bot = p.bot
LEFT JOIN histogram AS h ON h.hour = p.hour AND h.bot = p.bot
LEFT JOIN reasons AS r ON r.hour = p.hour AND r.bot = p.bot
"""
_COLUMNS = ("account_id", "voicebot_id", "hour", *COUNTS, "latency_histogram", "end_reasons")


def hour_rows(account_id, start: datetime, end: datetime) -> list[dict]:
    """The statistics of each (bot, hour) of `account_id`'s calls started in [start, end)."""
    with connection.cursor() as cursor:
        cursor.execute(_HOUR_ROWS, {"account": account_id, "start": start, "end": end})
        rows = [dict(zip(_COLUMNS, row)) for row in cursor.fetchall()]
    for row in rows:  # Django has psycopg hand JSON over as text
        for name in ("latency_histogram", "end_reasons"):
            if isinstance(row[name], str):
                row[name] = json.loads(row[name])
    return rows


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


MAX_SPAN = timedelta(days=2)  # a backfill is computed two days at a time


def _spans(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours merged into [start, end) spans of consecutive hours (at most MAX_SPAN long)."""
    spans: list[list[datetime]] = []
    for hour in sorted(hours):
        if spans and spans[-1][1] == hour and hour - spans[-1][0] < MAX_SPAN:
            spans[-1][1] = hour + timedelta(hours=1)
        else:
            spans.append([hour, hour + timedelta(hours=1)])
    return [(start, end) for start, end in spans]


@transaction.atomic
def refresh() -> int:
    """Recompute the stored hours that have a call created or changed since the last refresh; returns how
    many hours were written. The first refresh rolls up the whole history."""
    state = StatsRefresh.objects.select_for_update().first() or StatsRefresh(refreshed_at=EPOCH)
    started = timezone.now()
    dirty = (Call.objects.filter(updated_at__gte=state.refreshed_at).annotate(hour=Trunc("created_at", "hour"))
             .order_by().values_list("account_id", "hour").distinct())  # no ordering: distinct hours, not calls
    by_account: dict = defaultdict(list)
    for account_id, hour in dirty:
        by_account[account_id].append(hour)
    written = 0
    for account_id, hours in by_account.items():
        for start, end in _spans(hours):
            HourlyCallStats.objects.filter(account_id=account_id, hour__gte=start, hour__lt=end).delete()
            rows = [HourlyCallStats(**row) for row in hour_rows(account_id, start, end)]
            HourlyCallStats.objects.bulk_create(rows, batch_size=1000)
            written += len(rows)
    state.refreshed_at = started
    state.save()
    return written


@dataclass
class Point:
    """One point of the overview's charts (an hour or a day), or the whole period."""

    at: datetime | None
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    histogram: dict = field(default_factory=lambda: defaultdict(int))

    def add(self, counts: dict, histogram: dict) -> None:
        for name in COUNTS:
            self.counts[name] += counts.get(name) or 0
        for bucket, n in histogram.items():
            self.histogram[int(bucket)] += int(n)

    def percentile(self, q: float) -> float | None:
        total = sum(self.histogram.values())
        if not total:
            return None
        rank, seen = q * total, 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen >= rank:
                width = FINE_BUCKET_MS if bucket < FINE_UP_TO_MS else COARSE_BUCKET_MS
                return bucket + width / 2
        return None

    def mean(self, name: str) -> float | None:
        replies = self.counts["replies"]
        return self.counts[f"{name}_sum"] / replies if replies else None


@dataclass
class Overview:
    points: list[Point]
    total: Point
    end_reasons: list[tuple[str, int]]
    live_from: datetime


def overview(account, *, start: datetime, end: datetime, voicebot_id=None, step: str = "day") -> Overview:
    """The account's calls started in [start, end) (of one bot, if given), per `step` ("hour" or "day")."""
    state = StatsRefresh.objects.first()
    live_from = max(start, _hour(state.refreshed_at) if state else start)
    points: dict[datetime, Point] = {}
    reasons: dict[str, int] = defaultdict(int)

    def point(at: datetime) -> Point:
        at = at if step == "hour" else at.replace(hour=0)
        return points.setdefault(at, Point(at))

    bot_filter = "AND voicebot_id = %(bot)s" if voicebot_id else ""
    params = {"account": account.pk, "start": start, "end": min(end, live_from), "bot": voicebot_id, "step": step}
    table = HourlyCallStats._meta.db_table
    sums = ", ".join(f"sum({name})" for name in COUNTS)
    where = f"account_id = %(account)s AND hour >= %(start)s AND hour < %(end)s {bot_filter}"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT date_trunc(%(step)s, hour) AS at, {sums} FROM {table} WHERE {where} GROUP BY 1", params)
        for at, *values in cursor.fetchall():
            point(at).add(dict(zip(COUNTS, values)), {})
        cursor.execute(f"SELECT date_trunc(%(step)s, hour), key::int, sum(value::int) FROM {table}, "
                       f"jsonb_each_text(latency_histogram) WHERE {where} GROUP BY 1, 2", params)
        for at, bucket, n in cursor.fetchall():
            point(at).add({}, {bucket: n})
        cursor.execute(f"SELECT key, sum(value::int) FROM {table}, jsonb_each_text(end_reasons) WHERE {where} "
                       f"GROUP BY 1", params)
        for reason, n in cursor.fetchall():
            reasons[reason] += n
    if live_from < end:
        for row in hour_rows(account.pk, live_from, end):
            if voicebot_id and str(row["voicebot_id"]) != str(voicebot_id):
                continue
            point(row["hour"]).add(row, row["latency_histogram"])
            for reason, n in row["end_reasons"].items():
                reasons[reason] += n
    total = Point(None)
    for each in points.values():
        total.add(each.counts, each.histogram)
    ordered = [points[at] for at in sorted(points)]
    return Overview(ordered, total, sorted(reasons.items(), key=lambda item: -item[1])[:8], live_from)
