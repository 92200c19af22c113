"""What the tests that drive whole calls through the ASGI app share (phone calls over Plivo's stream, browser
calls over the voice socket): the vendor fakes the call runs on, the consumer's database connections closed
after each test, and a peer that plays the far end of the socket.

A test module takes the fixtures by name, e.g. `vendors = calls.vendors` after `from tests import calls`
(pytest finds fixtures among a module's names).
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_server import FakeDeepgram

POLL_S = 0.02


@asynccontextmanager
async def vendor_fakes(settings: Any, **cartesia_options: Any) -> AsyncIterator[tuple[Any, Any, Any]]:
    """Anthropic, Deepgram and Cartesia fakes, with the settings pointing the call runtime at them."""
    async with FakeAnthropic() as llm, FakeDeepgram() as stt, FakeCartesia(**cartesia_options) as tts:
        settings.ANTHROPIC_API_KEY = settings.DEEPGRAM_API_KEY = settings.CARTESIA_API_KEY = "test-key"
        settings.ANTHROPIC_BASE_URL = llm.url
        settings.DEEPGRAM_BASE_URL = stt.ws_url.replace("ws://", "http://")
        settings.CARTESIA_BASE_URL = tts.http_url
        yield llm, stt, tts


@pytest.fixture
async def vendors(settings):
    async with vendor_fakes(settings) as fakes:
        yield fakes


@pytest.fixture(autouse=True)
async def _close_consumer_connections():
    """Consumers reach the database from asgiref's worker thread; close its connection after each test."""
    yield
    await sync_to_async(connections.close_all)()


class SocketPeer:
    """The far end of a call's socket: reads what the server sends in a task of its own (`_read`, per
    protocol) and lets the test wait for what it expects."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        raise NotImplementedError

    def _ended_early(self) -> str | None:
        """Why waiting longer is pointless (the socket closed), or None."""
        return None

    def _seen(self) -> str:
        """What was received, for a failure's message."""
        return ""

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if (ended := self._ended_early()) is not None and not condition():
                raise AssertionError(ended)
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; got {self._seen()}")
            await asyncio.sleep(POLL_S)
