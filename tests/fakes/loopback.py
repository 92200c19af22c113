"""What the vendor fakes share: a server on a free port of 127.0.0.1, `async with`, and a clean close; or, for
sync callers (Django's test client, a server in another process, Playwright), a daemon thread with its own loop:
`fake = FakeVendor().start_in_thread()` ... `fake.stop()`.

    class FakeVendor(LoopbackServer):
        async def _listen(self):  # a started asyncio or websockets server
            return await serve(self._handle, "127.0.0.1", 0)

WebSocket fakes derive from `WebSocketLoopbackServer` (implement `_handle` and `_check_request`); HTTP fakes
on raw asyncio streams from `StreamLoopbackServer` (implement `_serve_request`).
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

DISCONNECT_POLL_S = 0.01


class LoopbackServer:
    port = 0
    _server: Any = None
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def _listen(self) -> Any:
        raise NotImplementedError

    async def start(self) -> Self:
        self._server = await self._listen()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def start_in_thread(self) -> Self:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"fake-{type(self).__name__}", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        """Close a fake started with `start_in_thread`, and its thread."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = self._thread = None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._close_connections()
            await self._server.wait_closed()
            self._server = None

    async def _close_connections(self) -> None:
        """WebSocket servers close their own connections."""

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class WebSocketLoopbackServer(LoopbackServer):
    """A WebSocket fake: `_check_request` may refuse the handshake; `_handle` serves a connection and keeps
    it in `_open` while it lasts."""

    def __init__(self) -> None:
        self._open: set[ServerConnection] = set()

    async def _listen(self) -> Server:
        return await serve(self._handle, "127.0.0.1", 0, process_request=self._check_request)

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        raise NotImplementedError

    @staticmethod
    def _handshake(connection: ServerConnection) -> tuple[str, dict[str, str], dict[str, str]]:
        """Path, query and headers (lower-case names) of the connection's opening request."""
        request = connection.request
        assert request is not None
        parts = urlsplit(request.path)
        return parts.path, dict(parse_qsl(parts.query)), {name.lower(): value
                                                          for name, value in request.headers.raw_items()}

    async def drop(self, code: int = 1011, reason: str = "Internal server error") -> None:
        """Close every open connection abruptly (a vendor-side failure)."""
        for connection in list(self._open):
            await connection.close(code, reason)


class StreamLoopbackServer(LoopbackServer):
    """An HTTP/1.1 fake on asyncio streams, keep-alive included; closing the fake cancels open connections."""

    def __init__(self) -> None:
        self._connections: set[asyncio.Task[None]] = set()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve_connection, "127.0.0.1", 0)

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request (see `_read_request`); False when the connection should close."""
        raise NotImplementedError

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
        """Method, target, headers (lower-case names) and body of the next request; None at the end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {name.strip().lower(): value.strip()
                   for name, value in (line.split(":", 1) for line in header_lines if ":" in line)}
        return method, target, headers, await reader.readexactly(int(headers.get("content-length", "0")))

    def _on_connection_lost(self) -> None:
        """The client went away mid-request."""

    async def _close_connections(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            self._on_connection_lost()
        except asyncio.CancelledError:
            pass  # the fake is closing
        finally:
            self._connections.discard(task)
            writer.close()


class ClientGone(Exception):
    """The client closed the connection while a response was streaming."""


def client_gone(reader: asyncio.StreamReader) -> bool:
    # A closed (FIN) connection shows as EOF, a reset one as an exception; the client sends nothing
    # else while a response streams, so neither check consumes a byte of a next request.
    return reader.at_eof() or reader.exception() is not None


async def sleep_unless_gone(reader: asyncio.StreamReader, seconds: float) -> None:
    """Sleep, noticing promptly if the client closes (raises ClientGone; nothing is consumed)."""
    loop = asyncio.get_running_loop()  # its clock, not time.monotonic(): the same on a virtual-time loop
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        if client_gone(reader):
            raise ClientGone("closed")
        await asyncio.sleep(min(DISCONNECT_POLL_S, left))
