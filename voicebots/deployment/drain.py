"""Stopping a web process without cutting its calls short.

On SIGTERM (config/web_process.py) the process drains: it tells the deployment it is draining (its heartbeat
says so, the answer URL no longer counts it, its health check answers 503 "draining"), lets its live calls
finish for up to DRAIN_TIMEOUT_S, then ends the ones still going politely: a short apology, then hang up,
with the reason on the record. New streams that still reach it are carried (a call already answered must
not meet a dead line) and ended the same way if the drain runs out.
"""
from __future__ import annotations

import asyncio
import logging
import time

from . import registry

logger = logging.getLogger(__name__)

GOODBYE = "I'm sorry, we have to end this call now. Please call us again. Goodbye!"
END_REASON = "Ended while its web process was shutting down (the drain timeout ran out)."
GOODBYE_WAIT_S = 15.0  # for the goodbyes to be heard and the calls to hang up
CHECK_S = 0.2


async def drain(timeout_s: float) -> int:
    """Let this process's calls finish for up to `timeout_s`, then end the rest; returns how many were ended."""
    from voicebots.calls import live

    registry.start_draining()
    logger.info("Draining: %s live call(s) may go on for up to %g s", len(live.carried()), timeout_s)
    await _until_no_calls(time.monotonic() + timeout_s)
    remaining = live.carried()
    if remaining:
        logger.warning("Drain timeout: ending %s live call(s) politely", len(remaining))
        deadline = time.monotonic() + GOODBYE_WAIT_S
        ending = asyncio.gather(*(call.end(GOODBYE, END_REASON) for call in remaining), return_exceptions=True)
        try:
            async with asyncio.timeout(GOODBYE_WAIT_S):  # a call that cannot even be told must not hold the stop
                await ending
        except TimeoutError:
            logger.warning("Ending the calls took longer than %g s", GOODBYE_WAIT_S)
        await _until_no_calls(deadline)
    if live.carried():
        logger.warning("%s call(s) did not end after their goodbye; they are cut off", len(live.carried()))
    return len(remaining)


async def _until_no_calls(deadline: float) -> None:
    from voicebots.calls import live

    while live.carried() and time.monotonic() < deadline:
        await asyncio.sleep(CHECK_S)
