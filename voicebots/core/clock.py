"""The call's one clock: the running event loop's time.

Every moment a call stamps or compares (the voice pipeline, the vendor adapters, the transports, the recorder)
is read here, so that it agrees with the clock its own waits (`asyncio.sleep`, `asyncio.timeout`, `call_later`)
run on. On a standard loop that is `time.monotonic()`; on the tests' virtual-time loop (tests/virtual_time.py)
it is the virtual clock, and a call's seconds of silence pass without real waiting.
"""
from __future__ import annotations

import asyncio
import time


def now() -> float:
    """Seconds on the running loop's clock; `time.monotonic()` outside a loop (the same clock as a standard one)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
