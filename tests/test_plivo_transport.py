"""The Plivo stream's outgoing side: message order, audio coalescing, clearing, and a peer that stops reading."""
from __future__ import annotations

import asyncio
import base64
import json

from voicebots.telephony import consumer as consumer_module
from voicebots.telephony.consumer import FRAMES_PER_MESSAGE, PlivoTransport


class Peer:
    """Stands in for the consumer's socket: records what is sent, or never returns (a peer not reading)."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.call_id = "call-1"
        self.sent: list[dict] = []
        self.stuck = stuck

    async def send(self, text_data: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(json.loads(text_data))


def frame(n: int) -> bytes:
    return bytes([n]) * 160


async def transport_with_audio(frames: int) -> tuple[Peer, PlivoTransport]:
    """A transport on a reading peer, with `frames` frames of audio queued and not yet sent."""
    peer = Peer()
    transport = PlivoTransport(peer)
    transport.stream_id = "stream-1"
    for n in range(frames):
        await transport.send_audio(frame(n))
    return peer, transport


async def drained(transport: PlivoTransport) -> None:
    pump = asyncio.create_task(transport.pump())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not transport.outbox:
            break
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)


async def test_queued_frames_go_out_together_in_order_with_the_checkpoints():
    peer, transport = await transport_with_audio(7)
    await transport.checkpoint("turn0-seg0")
    await transport.send_audio(frame(7))
    await drained(transport)
    assert [m["event"] for m in peer.sent] == ["playAudio", "playAudio", "checkpoint", "playAudio"]
    audio = [base64.b64decode(m["media"]["payload"]) for m in peer.sent if m["event"] == "playAudio"]
    assert [len(a) // 160 for a in audio] == [FRAMES_PER_MESSAGE, 2, 1]
    assert b"".join(audio) == b"".join(frame(n) for n in range(8))  # nothing lost, nothing reordered
    assert peer.sent[2] == {"event": "checkpoint", "streamId": "stream-1", "name": "turn0-seg0"}
    assert peer.sent[0]["media"]["contentType"] == "audio/x-mulaw" and peer.sent[0]["media"]["sampleRate"] == 8000


async def test_clear_drops_unsent_audio_and_tells_plivo_to_clear_its_buffer():
    peer, transport = await transport_with_audio(3)
    await transport.clear()
    await drained(transport)
    assert peer.sent == [{"event": "clearAudio", "streamId": "stream-1"}]


async def test_a_peer_that_stops_reading_costs_audio_never_the_call(monkeypatch):
    monkeypatch.setattr(consumer_module, "SEND_TIMEOUT_S", 0.05)
    monkeypatch.setattr(consumer_module, "SEND_QUEUE_FRAMES", 20)
    transport = PlivoTransport(Peer(stuck=True))
    pump = asyncio.create_task(transport.pump())
    async with asyncio.timeout(1):  # the pipeline's sends never wait for the peer
        for n in range(50):
            await transport.send_audio(frame(n % 256))
    await asyncio.sleep(0.2)
    assert not pump.done()  # the pump gives up on each stuck message and goes on
    assert transport.dropped >= 30 and len(transport.outbox) <= 20
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)
