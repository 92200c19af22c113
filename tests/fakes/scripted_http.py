"""What the scripted HTTP fakes of LLM vendors share (FakeAnthropic, FakeOpenAI): a queue of scripted turns
fed from any thread, every request recorded, JSON answers, and a chunked SSE stream paced like a model (a time
to first token, a delay between events) that records a client going away mid-stream. Each vendor's fake keeps
only its wire format: which events a turn becomes, its error bodies, its paths and headers.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, Iterable, TypeVar

from tests.fakes.loopback import DISCONNECT_POLL_S, ClientGone, StreamLoopbackServer, client_gone, sleep_unless_gone

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable", 529: "Overloaded"}
TurnT = TypeVar("TurnT")


@dataclass(init=False)
class Text:
    fragments: tuple[str, ...]

    def __init__(self, *fragments: str) -> None:
        self.fragments = fragments


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float


@dataclass
class Disconnect:
    request_index: int
    events_sent: int
    at: float
    error: str


@dataclass
class Event:
    """One SSE event as sent. `content`: a delta of the answer (the first one waits the time to first token);
    `paced=False`: sent at once, without the delay between events."""

    data: bytes
    content: bool = False
    paced: bool = True


class ScriptedHTTPServer(StreamLoopbackServer, Generic[TurnT]):
    """Subclasses set `request_id_header` and `request_id_width`, and serve requests with `_next_request`,
    `_next_turn`, `_send_json` and `_send_stream`."""

    request_id_header = "request-id"
    request_id_width = 6

    def __init__(self, default_turn: TurnT) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self.default_turn = default_turn
        self._script: deque[TurnT] = deque()  # deque: safe to feed from another thread
        self._request_ids = itertools.count(1)

    def script(self, *turns: TurnT) -> None:
        self._script.extend(turns)

    async def wait_for_disconnect(self, timeout: float = 1.0) -> Disconnect | None:
        """The first recorded disconnect, waiting up to `timeout` (works from any event loop)."""
        deadline = time.monotonic() + timeout
        while not self.disconnects and time.monotonic() < deadline:
            await asyncio.sleep(DISCONNECT_POLL_S)
        return self.disconnects[0] if self.disconnects else None

    def _next_turn(self) -> TurnT:
        return self._script.popleft() if self._script else self.default_turn

    async def _next_request(self, reader: asyncio.StreamReader) -> tuple[RecordedRequest, bool] | None:
        """The next request, recorded (its path without the query, its JSON body parsed or else its text),
        and whether the connection stays open after it; None at the end of the connection."""
        request = await self._read_request(reader)
        if request is None:
            return None
        method, target, headers, raw_body = request
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body.decode("utf-8", "replace")
        recorded = RecordedRequest(method, target.split("?")[0], headers, body, time.monotonic())
        self.requests.append(recorded)
        return recorded, headers.get("connection", "").lower() != "close"

    def _request_id(self) -> str:
        return f"{self.request_id_header}: req_{next(self._request_ids):0{self.request_id_width}d}\r\n"

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, payload: dict[str, Any],
                         extra_headers: str = "") -> None:
        data = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
                     f"{self._request_id()}{extra_headers}content-length: {len(data)}\r\n\r\n".encode() + data)
        await writer.drain()

    async def _send_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, events: Iterable[Event],
                           *, content_type: str, delay_s: float, first_token_delay_s: float) -> bool:
        """Stream `events` as chunked SSE; False (and a recorded Disconnect) if the client went away."""
        sent = 0
        try:
            writer.write(f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncache-control: no-cache\r\n"
                         f"{self._request_id()}transfer-encoding: chunked\r\n\r\n".encode())
            waited_for_first_token = False
            for event in events:
                if event.content and first_token_delay_s and not waited_for_first_token:
                    waited_for_first_token = True
                    await sleep_unless_gone(reader, first_token_delay_s)
                if event.paced and delay_s and sent:
                    await sleep_unless_gone(reader, delay_s)
                writer.write(b"%x\r\n%s\r\n" % (len(event.data), event.data))
                await writer.drain()
                sent += 1
                if client_gone(reader):
                    raise ClientGone("closed")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except (ClientGone, ConnectionError) as exc:
            self.disconnects.append(Disconnect(len(self.requests) - 1, sent, time.monotonic(), repr(exc)))
            return False
