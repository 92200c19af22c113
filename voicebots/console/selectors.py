"""The console's queries. Every one is scoped to one account."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery
from django.utils import timezone

from voicebots.calls.models import Call, CallEvent, CallTurn

PAGE_SIZE = 25


@dataclass(frozen=True)
class CallFilters:
    voicebot: str = ""
    direction: str = ""
    status: str = ""
    since: date | None = None
    until: date | None = None
    text: str = ""


def calls(account, filters: CallFilters, page: int) -> tuple[list[Call], bool]:
    """One page of the account's calls, newest first, and whether there is a next page."""
    queryset = Call.objects.filter(account=account)
    if filters.voicebot:
        queryset = queryset.filter(voicebot_id=filters.voicebot)
    if filters.direction:
        queryset = queryset.filter(direction=filters.direction)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.since:
        queryset = queryset.filter(created_at__gte=_start_of(filters.since))
    if filters.until:
        queryset = queryset.filter(created_at__lt=_start_of(filters.until + timedelta(days=1)))
    if filters.text:
        # The GIN index on the turns' text (calls migration console_transcript_search) serves this.
        matching = (CallTurn.objects.annotate(text=SearchVector("caller_text", "bot_text", config="simple"))
                    .filter(call=OuterRef("pk"), text=SearchQuery(filters.text, config="simple",
                                                                  search_type="websearch")))
        queryset = queryset.filter(Exists(matching))
    offset = (page - 1) * PAGE_SIZE
    # A subquery per shown call, not a join grouped over all of the account's calls.
    turn_count = CallTurn.objects.filter(call=OuterRef("pk")).order_by().values("call").annotate(n=Count("*"))
    rows = list(queryset.select_related("voicebot", "recording").annotate(turn_count=Subquery(turn_count.values("n")))
                .order_by("-created_at")[offset:offset + PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def call(account, call_id) -> Call | None:
    try:
        pk = uuid.UUID(str(call_id))
    except ValueError:
        return None
    return (Call.objects.filter(account=account, pk=pk).select_related("voicebot", "recording")
            .prefetch_related(Prefetch("turns", CallTurn.objects.order_by("index")),
                              Prefetch("events", CallEvent.objects.order_by("created_at", "id")))
            .first())
