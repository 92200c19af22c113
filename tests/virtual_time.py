"""An asyncio event loop on virtual time, for tests of real-time code: a call's 10 s of silence pass in the
milliseconds its code takes to run, and give the same timings however loaded the machine is.

The loop's clock (`loop.time()`, which `asyncio.sleep`, `asyncio.timeout` and `call_later` use) stands still while
there is anything to do, and jumps to the next timer when there is nothing: no callback ready, no socket readable,
no executor job running (`run_in_executor`, `asyncio.to_thread`, DNS lookups) and no byte sent by one of its
sockets still on its way to the peer. So code and I/O take no virtual time, and waiting takes no real time.

Its limit: peers outside the loop. A vendor fake on a thread of its own, another process, or a thread that
calls back through `call_soon_threadsafe` may still be working when the clock jumps. Tests on virtual time run
their fakes in the test's own loop (`async with FakeVendor() ...`).

Select it for a test (or a module, with `pytestmark`) with `@pytest.mark.virtual_time`; in such a module, a test
that talks to a thread or process of its own (a fake started with `start_in_thread`, Django's database threads)
stays on a standard loop with `@pytest.mark.real_time`.
"""
from __future__ import annotations

import asyncio
import fcntl
import selectors
import struct
import termios

import pytest

START = 1000.0  # virtual seconds at a loop's start: any value works, none is special
OUTSIDE_POLL_S = 0.001  # how often an idle loop looks again while bytes are on their way or a job runs


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual_now = START
        self._jobs_running = 0
        super().__init__(selector=_IdleClockSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def run_in_executor(self, executor, func, *args):
        future = super().run_in_executor(executor, func, *args)
        self._jobs_running += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _future) -> None:
        self._jobs_running -= 1

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    def _busy_outside(self, selector: _IdleClockSelector) -> bool:
        """An executor job still running, or bytes one of the loop's sockets sent that its peer has not yet got
        (TCP: not acknowledged; Unix sockets: not yet read)."""
        return self._jobs_running > 0 or any(_bytes_in_flight(fd) for fd in selector.get_map())


def _bytes_in_flight(fd: int) -> bool:
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0] > 0  # SIOCOUTQ
    except OSError:  # not a connected socket (a listening one, say)
        return False


class _IdleClockSelector(selectors.DefaultSelector):
    """The loop's selector: where a real loop would sleep until its next timer, this one moves the clock there."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None):
        events = super().select(0)
        if events or timeout == 0:
            return events
        while self._loop._busy_outside(self):
            events = super().select(OUTSIDE_POLL_S)
            if events:
                return events
        # A peer that took the last of our bytes after the look above has made our socket writable meanwhile:
        # look once more, now that nothing is on its way, before moving the clock past it.
        events = super().select(0)
        if events:
            return events
        if timeout is None:  # no timer at all: only I/O can wake the loop, as in a real one
            return super().select(None)
        self._loop._advance(timeout)
        return []


# --- pytest plugin (loaded by tests/conftest.py) ------------------------------------------------------------

def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "virtual_time: run the async test on a VirtualTimeLoop (tests/virtual_time.py)")
    config.addinivalue_line("markers", "real_time: run the async test on a standard loop, even in a virtual_time module")


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config, item):
    """pytest-asyncio's loop for each async test: virtual time where marked, a standard loop elsewhere."""
    if item.get_closest_marker("virtual_time") and not item.get_closest_marker("real_time"):
        return {"virtual_time": VirtualTimeLoop}
    return {"asyncio": asyncio.new_event_loop}
