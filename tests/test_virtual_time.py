"""The virtual-time loop (tests/virtual_time.py): waiting takes no real time, code and I/O take no virtual time,
and the clock never jumps while a socket's bytes, a thread pool's job or a thread fake's request are still on
their way."""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets
from websockets.asyncio.server import serve

from tests.fakes.http_handler import FunctionHandlerFake, Reply
from tests.virtual_time import OUTSIDE_WORK, START, VirtualTimeLoop

pytestmark = pytest.mark.virtual_time


async def test_the_marked_tests_run_on_it():
    assert isinstance(asyncio.get_running_loop(), VirtualTimeLoop)


async def test_ten_seconds_of_waiting_take_no_real_time():
    loop = asyncio.get_running_loop()
    started, real_start = loop.time(), time.monotonic()
    await asyncio.sleep(10)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5):
            await asyncio.Event().wait()
    assert loop.time() - started == pytest.approx(15, abs=1e-6)
    assert time.monotonic() - real_start < 1


async def test_timers_fire_in_order_at_their_virtual_times():
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    for name, delay in (("c", 3.0), ("a", 0.02), ("b", 1.5)):
        loop.call_later(delay, lambda n=name: fired.append((n, loop.time() - START)))
    await asyncio.sleep(4)
    assert [name for name, _ in fired] == ["a", "b", "c"]
    assert [at for _, at in fired] == pytest.approx([0.02, 1.5, 3.0], abs=1e-6)


async def test_a_websocket_exchange_takes_no_virtual_time():
    """A server in the loop answering after heavy work: a 0.1 s timeout on the client still sees the answer."""
    async def slow_echo(connection):
        async for message in connection:
            deadline = time.monotonic() + 0.2  # 0.2 s of real CPU work
            while time.monotonic() < deadline:
                pass
            await connection.send(message)

    async with serve(slow_echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with websockets.connect(f"ws://127.0.0.1:{port}") as client:
            loop = asyncio.get_running_loop()
            before = loop.time()
            for n in range(3):
                await client.send(f"ping {n}")
                async with asyncio.timeout(0.1):
                    assert await client.recv() == f"ping {n}"
            assert loop.time() == before


async def test_an_executor_job_takes_no_virtual_time():
    loop = asyncio.get_running_loop()
    before = loop.time()
    async with asyncio.timeout(0.01):
        assert await asyncio.to_thread(lambda: time.sleep(0.2) or "done") == "done"
    assert loop.time() == before


async def test_a_job_handed_to_a_thread_pool_directly_takes_no_virtual_time():
    """As a recording's writer does: `submit`, then `asyncio.wrap_future`; the loop never sees the job."""
    loop = asyncio.get_running_loop()
    before = loop.time()
    with ThreadPoolExecutor(1) as pool:
        async with asyncio.timeout(0.01):
            assert await asyncio.wrap_future(pool.submit(lambda: time.sleep(0.2) or "written")) == "written"
    assert loop.time() == before


async def test_a_job_counts_until_its_future_has_run_its_callbacks():
    """An awaiting loop learns of a job's end through a callback of its future (a write to the loop's
    self-pipe). Were the job over before that callback ran, a worker thread stalled between the two (the cores
    taken, the GIL elsewhere) would let the clock jump past a timeout the result was about to beat."""
    seen = []
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(time.sleep, 0.05)
        future.add_done_callback(lambda _future: seen.append(OUTSIDE_WORK.pending()))  # as wrap_future's
    assert seen == [True] and not OUTSIDE_WORK.pending()


async def test_a_request_to_a_function_handler_on_its_own_thread_takes_no_virtual_time():
    """The function handler fake serves from a thread and tells OUTSIDE_WORK: a 0.05 s timeout still sees an
    answer that takes 0.2 s of real time."""
    with FunctionHandlerFake() as handler:
        handler.reply("/slow", Reply.json({"ok": True}, delay_s=0.2))
        async with httpx.AsyncClient() as client:
            loop = asyncio.get_running_loop()
            before = loop.time()
            for _ in range(2):  # a new connection, then the same one kept alive
                async with asyncio.timeout(0.05):
                    assert (await client.post(handler.url_for("/slow"))).json() == {"ok": True}
            assert loop.time() == before


async def test_the_clock_waits_for_bytes_still_on_their_way_to_an_outside_peer():
    """A peer on a thread that reads only after 0.3 s (real): until it has read, the loop does not jump to the
    timeout's deadline, though it has nothing else to do."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    received = []

    def slow_reader() -> None:
        connection, _ = server.accept()
        with connection:
            time.sleep(0.3)  # the kernel's buffers fill up meanwhile
            while chunk := connection.recv(1 << 20):
                received.append(len(chunk))

    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    loop = asyncio.get_running_loop()
    _, writer = await asyncio.open_connection(*server.getsockname())
    before, real_start = loop.time(), time.monotonic()
    writer.write(b"x" * 32_000_000)  # more than the buffers hold: the rest waits in the transport
    async with asyncio.timeout(10):
        await writer.drain()
    writer.close()
    await writer.wait_closed()
    assert loop.time() == before and time.monotonic() - real_start >= 0.25
    await asyncio.to_thread(reader.join, 10)
    server.close()
    assert sum(received) == 32_000_000


def run_scenario() -> list[float]:
    """A small real-time dialogue: its timestamps depend on virtual time only."""
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        stamps: list[float] = []
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def talker() -> None:
            for n in range(50):
                await queue.put(n)
                await asyncio.sleep(0.02)

        async def listener() -> None:
            while True:
                try:
                    async with asyncio.timeout(0.5):
                        n = await queue.get()
                except TimeoutError:
                    stamps.append(loop.time())
                    return
                sum(range(20_000 * (n % 5)))  # uneven CPU work per item
                stamps.append(loop.time())

        await asyncio.gather(talker(), listener())
        return stamps

    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def test_the_same_scenario_gives_the_same_times_under_load():
    quiet = run_scenario()
    burners = [threading.Thread(target=lambda: sum(range(30_000_000)), daemon=True) for _ in range(2)]
    for burner in burners:
        burner.start()
    loaded = run_scenario()
    for burner in burners:
        burner.join()
    assert loaded == quiet
    assert quiet[-1] - quiet[0] == pytest.approx(0.98 + 0.5, abs=1e-6)  # 49 gaps of 20 ms, then the timeout
