"""An asyncio event loop on virtual time, for tests of real-time code: a call's 10 s of silence pass in the
milliseconds its code takes to run, and give the same timings however loaded the machine is.

The loop's clock (`loop.time()`, which `asyncio.sleep`, `asyncio.timeout` and `call_later` use) stands still while
there is anything to do, and jumps to the next timer when there is nothing: no callback ready, no socket readable,
no job of a thread pool waiting or running (`run_in_executor`, `asyncio.to_thread`, DNS lookups, and work code
hands a `ThreadPoolExecutor` itself, such as a recording's writes) and no byte sent by one of its sockets still on
its way to the peer. So code and I/O take no virtual time, and waiting takes no real time.

Its limit: peers outside the loop. Another process, a thread that calls back through `call_soon_threadsafe`, or
a fake on a thread of its own that does not tell OUTSIDE_WORK when it is serving (the function handler fake does)
may still be working when the clock jumps. Tests on virtual time run their vendor fakes in the test's own loop
(`async with FakeVendor() ...`).

Select it for a test (or a module, with `pytestmark`) with `@pytest.mark.virtual_time`; in such a module, a test
that talks to a thread or process of its own (a vendor fake started with `start_in_thread`, a server process)
stays on a standard loop with `@pytest.mark.real_time`.
"""
from __future__ import annotations

import asyncio
import fcntl
import select
import selectors
import socket
import struct
import termios
import threading
from concurrent.futures import ThreadPoolExecutor, thread
from contextlib import contextmanager
from typing import Iterator

import pytest

START = 1000.0  # virtual seconds at a loop's start: any value works, none is special
OUTSIDE_POLL_S = 0.001  # how often an idle loop looks again while bytes are on their way or a job runs


class OutsideWork:
    """Work of other threads that the virtual clock waits for. It counts the jobs of every `ThreadPoolExecutor` in
    the process from `submit` until they have run (a loop cannot see a job handed to a pool directly and awaited
    through `asyncio.wrap_future`, such as a recording's writes), and what a fake serving from a thread of its
    own marks: each request it serves (`with OUTSIDE_WORK.busy(): ...`) and its sockets (`watch`), where bytes
    not yet read or a connection not yet accepted are work about to start, and bytes not yet delivered (held by
    Nagle's algorithm, say) an answer still on its way. (A job dropped by
    `shutdown(cancel_futures=True)` never runs and would stop the clock: nothing here does that.)"""

    def __init__(self) -> None:
        self._outstanding = 0  # jobs submitted and not yet run, and requests a thread fake is serving
        self._lock = threading.Lock()
        self._watched: set[socket.socket] = set()
        self._submit = None

    def install(self) -> None:
        if self._submit is not None:
            return
        submit = self._submit = ThreadPoolExecutor.submit
        run = thread._WorkItem.run
        outside = self

        def counted_submit(executor, fn, /, *args, **kwargs):
            outside.started()  # before the job can start (and end)
            try:
                return submit(executor, fn, *args, **kwargs)
            except BaseException:
                outside.finished()
                raise

        def counted_run(work_item) -> None:
            # Counted until the job's future has run its callbacks: an awaiting loop's is a write to its
            # self-pipe, and until that write the loop would see neither the job nor its result.
            try:
                run(work_item)
            finally:
                outside.finished()

        ThreadPoolExecutor.submit = counted_submit
        thread._WorkItem.run = counted_run

    def started(self) -> None:
        with self._lock:
            self._outstanding += 1

    def finished(self) -> None:
        with self._lock:
            self._outstanding -= 1

    @contextmanager
    def busy(self) -> Iterator[None]:
        self.started()
        try:
            yield
        finally:
            self.finished()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._watched.add(sock)

    def unwatch(self, sock: socket.socket) -> None:
        with self._lock:
            self._watched.discard(sock)

    def pending(self) -> bool:
        """A job or request under way, or a watched socket with bytes to read or still on their way out."""
        if self._outstanding:
            return True
        with self._lock:
            watched = [sock for sock in self._watched if sock.fileno() >= 0]
        try:
            return bool(watched) and (bool(select.select(watched, [], [], 0)[0])
                                      or any(_bytes_in_flight(sock.fileno()) for sock in watched))
        except (OSError, ValueError):  # closed meanwhile: its work is over
            return False


OUTSIDE_WORK = OutsideWork()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual_now = START
        OUTSIDE_WORK.install()
        super().__init__(selector=_IdleClockSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    def _busy_outside(self, selector: _IdleClockSelector) -> bool:
        """Work of other threads (OUTSIDE_WORK), or bytes one of the loop's sockets sent that its peer has not yet
        got (TCP: not yet sent; Unix sockets: not yet read)."""
        return OUTSIDE_WORK.pending() or any(
            _bytes_in_flight(fd, waiting_to_write=bool(key.events & selectors.EVENT_WRITE))
            for fd, key in selector.get_map().items())


SIOCOUTQNSD = 0x894B  # Linux: bytes of a TCP socket not yet sent


def _bytes_in_flight(fd: int, *, waiting_to_write: bool = False) -> bool:
    """Bytes not yet handed to the peer. On TCP, those not yet sent: once sent on loopback they are in the peer's
    buffer, and counting those not yet acknowledged (SIOCOUTQ) would wait out the peer's delayed ACK, up to 40 ms
    each time. But a loop `waiting_to_write` on the socket (its buffer full) waits for those ACKs: they make
    room. On a Unix socket, the bytes the peer has not read."""
    requests = (termios.TIOCOUTQ,) if waiting_to_write else (SIOCOUTQNSD, termios.TIOCOUTQ)  # TIOCOUTQ: SIOCOUTQ
    for request in requests:
        try:
            return struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0] > 0
        except OSError:  # not TCP (SIOCOUTQNSD), or not a connected socket at all (a listening one, say)
            continue
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
