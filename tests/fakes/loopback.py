"""What the vendor fakes share: a server on a free port of 127.0.0.1, `async with`, and a clean close.

    class FakeVendor(LoopbackServer):
        async def _listen(self):  # a started asyncio or websockets server
            return await serve(self._handle, "127.0.0.1", 0)

HTTP fakes on raw asyncio streams derive from `StreamLoopbackServer` and implement `_serve_request`.
"""
from __future__ import annotations

import asyncio
from typing import Any, Self


class LoopbackServer:
    port = 0
    _server: Any = None

    async def _listen(self) -> Any:
        raise NotImplementedError

    async def start(self) -> Self:
        self._server = await self._listen()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

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


class StreamLoopbackServer(LoopbackServer):
    """An HTTP/1.1 fake on asyncio streams, keep-alive included; closing the fake cancels open connections."""

    def __init__(self) -> None:
        self._connections: set[asyncio.Task[None]] = set()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve_connection, "127.0.0.1", 0)

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection should close."""
        raise NotImplementedError

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
