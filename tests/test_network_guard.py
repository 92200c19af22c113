"""The test run's network guard (tests/network_guard.py): only loopback is reachable, from any thread, and a test
that reaches further fails even when the code under test swallowed the error."""
from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from tests import network_guard
from tests.network_guard import LookupBlocked, NetworkBlocked

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = "192.0.2.1"  # TEST-NET-1: documentation only, never routed


def refused_since_start() -> list[str]:
    """What the guard refused in this test so far, taken so that this test itself passes."""
    return network_guard.take_violations()


def test_a_connection_beyond_loopback_is_refused_and_recorded():
    with socket.socket() as sock, pytest.raises(NetworkBlocked, match="192.0.2.1 port 80"):
        sock.connect((OUTSIDE, 80))
    with socket.socket() as sock:
        assert sock.connect_ex((OUTSIDE, 443)) != 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(NetworkBlocked):
        sock.sendto(b"x", (OUTSIDE, 53))
    with socket.socket(socket.AF_INET6) as sock, pytest.raises(NetworkBlocked):
        sock.connect(("2001:db8::1", 80, 0, 0))
    refused = refused_since_start()
    assert len(refused) == 4 and all("allows only loopback" in line for line in refused), refused


def test_a_name_lookup_is_refused_from_a_thread_and_through_an_http_client():
    errors: list[BaseException] = []

    def look_up() -> None:
        try:
            socket.getaddrinfo("example.com", 443)
        except BaseException as error:  # noqa: BLE001 (handed to the test)
            errors.append(error)

    thread = threading.Thread(target=look_up, name="lookup")
    thread.start()
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], LookupBlocked)
    with pytest.raises(httpx.ConnectError):  # a client sees an offline machine, not a crash
        httpx.get("https://example.com/", timeout=2)
    refused = refused_since_start()
    assert len(refused) == 2 and "thread lookup" in refused[0] and "'example.com'" in refused[1], refused


async def test_asyncio_connections_and_lookups_are_guarded_too():
    loop = asyncio.get_running_loop()
    with pytest.raises(LookupBlocked):
        await loop.getaddrinfo("voicebots.example", 443)
    with pytest.raises(NetworkBlocked):
        await asyncio.open_connection(OUTSIDE, 80)
    assert len(refused_since_start()) == 2


async def test_loopback_and_unix_sockets_work(tmp_path):
    async def echo(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    for server in (await asyncio.start_server(echo, "127.0.0.1", 0),
                   await asyncio.start_unix_server(echo, str(tmp_path / "echo.sock"))):
        async with server:
            address = server.sockets[0].getsockname()
            if isinstance(address, tuple):
                reader, writer = await asyncio.open_connection("localhost", address[1])
            else:
                reader, writer = await asyncio.open_unix_connection(address)
            writer.write(b"hello\n")
            assert await reader.readline() == b"hello\n"
            writer.close()
    assert socket.getaddrinfo("127.0.0.1", 80) and socket.getaddrinfo("::1", 80)
    assert refused_since_start() == []


def test_a_test_that_swallows_the_error_still_fails(pytester, monkeypatch):
    """The guard as the suite uses it, in a pytest run of its own: the first test catches the refusal and would
    pass without the guard; the second reaches only loopback."""
    pytester.makepyfile(test_inner=textwrap.dedent(f"""
        import socket

        def test_swallows_the_error():
            try:
                socket.create_connection(("{OUTSIDE}", 80), timeout=1)
            except OSError:
                pass

        def test_loopback_only():
            with socket.socket() as server:
                server.bind(("127.0.0.1", 0))
                server.listen()
                socket.create_connection(server.getsockname(), timeout=1).close()
    """))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # the guard alone: no Django, no database
    result = pytester.run(sys.executable, "-m", "pytest", "-p", "tests.network_guard", "-p", "no:cacheprovider",
                          "-q", str(pytester.path / "test_inner.py"), timeout=60)
    output = result.stdout.str()
    assert result.ret == 1, output
    # The swallowing test's own code passed; the guard fails it at teardown; the loopback one is untouched.
    result.assert_outcomes(passed=2, errors=1)
    assert "ERROR test_inner.py::test_swallows_the_error" in output, output
    assert f"connect to {OUTSIDE} port 80" in output, output
