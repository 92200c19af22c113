"""Calls left behind by a web process that died (SIGKILL, a crash, a lost machine) are marked ended.

A live call's record says which web process carries it (`Call.web_process`); a live web process keeps its
heartbeat key in Redis (registry.py). A call still `in-progress` whose process has no heartbeat any more is an
orphan: its turns are already written (each is stored as the call goes), so what is missing is the end. The
reaper writes it, with the reason and a `process_lost` event, and asks Plivo to hang up in case the line is
still open. Plivo's hangup callback may still add the cause and duration later.

A Redis that restarted has lost every heartbeat until the processes publish again (one interval): an orphan is
reaped only if its process is still missing when the reaper looks again after that interval.
"""
from __future__ import annotations

import logging
import time

import redis

from voicebots.calls import services as calls
from voicebots.calls.models import Call

from . import process, registry

logger = logging.getLogger(__name__)

REASON = ("The web process carrying this call ({web_process}) stopped without ending it (killed or crashed); "
          "the reaper marked the call ended. Its turns up to then are kept.")


def _orphans(alive: set[str]) -> list[Call]:
    return list(Call.objects.select_related("account").filter(status=Call.Status.IN_PROGRESS)
                .exclude(web_process="").exclude(web_process__in=alive))


def reap_orphaned_calls() -> int:
    """Mark ended the calls whose web process is gone; returns how many."""
    try:
        suspects = _orphans(registry.alive_process_ids())
        if not suspects:
            return 0
        time.sleep(process.heartbeat_interval_s() + 1)
        orphans = [call for call in _orphans(registry.alive_process_ids()) if call.pk in {s.pk for s in suspects}]
    except redis.RedisError as error:  # unsure who is alive: reap nothing
        logger.warning("The reaper cannot see the web processes: %s", error)
        return 0
    for call in orphans:
        _reap(call)
    return len(orphans)


def _reap(call: Call) -> None:
    from voicebots.telephony.rest import hang_up_call

    logger.warning("Call %s lost its web process %s; marking it ended", call.id, call.web_process)
    calls.record_event(call, "process_lost", web_process=call.web_process)
    calls.finalize(call, reason=REASON.format(web_process=call.web_process))
    hang_up_call(call)  # if the line is somehow still up, it is not left open (and billed) with nobody on it
