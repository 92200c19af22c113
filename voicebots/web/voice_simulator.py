"""A caller that speaks the voice playground's protocol to a running server, as the page does (voice_protocol.py):
`start`, then 20 ms of 16 kHz 16-bit PCM every 20 ms, the bot's audio played in real time, checkpoints answered
with `played` once playback reaches them, `clear` answered with `cleared`, and `hangup` at the end.

The caller is the phone simulator's (`CallerSimulator`: when to talk, the loudspeaker, the latencies), so a
browser call and a Plivo call are measured the same way. The socket needs a signed-in session's cookie and an
Origin the server allows. Benchmarks drive browser calls with it. No Django here.
"""
from __future__ import annotations

import asyncio
import json

import websockets

from voicebots.telephony.simulator import CallerSimulator

from .voice_protocol import AUDIO_FORMAT, BrowserCallCodec


HANG_UP_WAIT_S = 2.0


class _PagesSide:
    """The page's messages in the shape the caller sends them."""

    @staticmethod
    def media(frame: bytes, **_) -> bytes:
        return frame  # a binary message of PCM

    played = staticmethod(BrowserCallCodec.played)
    cleared = staticmethod(BrowserCallCodec.cleared)


class BrowserCallSimulator(CallerSimulator):
    """One simulated browser call over `socket_url` (ws://host/ws/voice/<bot id>/)."""

    audio_format = AUDIO_FORMAT

    def __init__(self, socket_url: str, *, cookie: str, origin: str, **options) -> None:
        if options.get("dtmf"):
            raise ValueError("A browser call has no keypad.")
        super().__init__(socket_url, **options)
        self.headers = {"Cookie": cookie, "Origin": origin}
        self.ended: dict | None = None  # the server's "end" event
        self._end_received: asyncio.Event | None = None

    def _connect(self):
        return websockets.connect(self.socket_url, max_size=2**22, open_timeout=10, additional_headers=self.headers)

    def _codec(self) -> _PagesSide:
        return _PagesSide()

    async def _begin(self, socket, codec) -> None:
        self._end_received = asyncio.Event()
        await socket.send(BrowserCallCodec.start())
        event = json.loads(await socket.recv())
        if event.get("type") != "ready":
            raise ConnectionError(f"The server did not start the call: {event}")
        self.call_id = event["call_id"]

    async def _hang_up(self, socket, codec) -> None:
        await socket.send(BrowserCallCodec.hangup())
        try:  # the server says why the call ended, then closes
            async with asyncio.timeout(HANG_UP_WAIT_S):
                await self._end_received.wait()
        except TimeoutError:
            pass

    def _interpret(self, codec, message) -> tuple[str, bytes | str | None]:
        if isinstance(message, bytes):
            return "audio", message
        event = json.loads(message)
        kind = event.get("type", "?")
        if kind == "checkpoint":
            return "checkpoint", event["name"]
        if kind == "clear":
            return "clear", None
        if kind == "end":
            self.ended = event
            self._end_received.set()
        return kind, None
