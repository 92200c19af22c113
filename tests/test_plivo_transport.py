"""The Plivo stream's outgoing side: message order, audio coalescing, clearing, and a peer that stops reading."""
from __future__ import annotations

import asyncio
import json

from voicebots.callruntime.outbox import FRAMES_PER_MESSAGE, Outbox
from voicebots.telephony.codec import PlivoStreamCodec
from voicebots.telephony.consumer import PlivoLeg


class Peer:
    """Stands in for the consumer's socket: records what is sent, or never returns (a peer not reading)."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.call_id = "call-1"
        self.sent: list[str] = []
        self.stuck = stuck

    async def send_message(self, message: str | bytes) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(message)

    def messages(self):
        return [PlivoStreamCodec.parse_from_server(text) for text in self.sent]


def frame(n: int) -> bytes:
    return bytes([n]) * 160


async def leg_with_audio(frames: int) -> tuple[Peer, PlivoLeg]:
    """A leg on a reading peer, with `frames` frames of audio queued and not yet sent."""
    peer = Peer()
    leg = PlivoLeg(peer, PlivoStreamCodec("stream-1"))
    for n in range(frames):
        await leg.send_audio(frame(n))
    return peer, leg


async def drained(outbox: Outbox) -> None:
    pump = asyncio.create_task(outbox.pump())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not len(outbox):
            break
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)


async def test_queued_frames_go_out_together_in_order_with_the_checkpoints():
    peer, leg = await leg_with_audio(7)
    await leg.checkpoint("turn0-seg0")
    await leg.send_audio(frame(7))
    await drained(leg.outbox)
    messages = peer.messages()
    assert [type(m).__name__ for m in messages] == ["PlayAudio", "PlayAudio", "CheckpointRequested", "PlayAudio"]
    audio = [m.audio for m in messages if hasattr(m, "audio")]
    assert [len(a) // 160 for a in audio] == [FRAMES_PER_MESSAGE, 2, 1]
    assert b"".join(audio) == b"".join(frame(n) for n in range(8))  # nothing lost, nothing reordered
    assert json.loads(peer.sent[2]) == {"event": "checkpoint", "streamId": "stream-1", "name": "turn0-seg0"}
    assert (messages[0].content_type, messages[0].sample_rate) == ("audio/x-mulaw", 8000)


async def test_clear_drops_unsent_audio_and_tells_plivo_to_clear_its_buffer():
    peer, leg = await leg_with_audio(3)
    await leg.clear()
    await drained(leg.outbox)
    assert [json.loads(text) for text in peer.sent] == [{"event": "clearAudio", "streamId": "stream-1"}]


async def test_a_peer_that_stops_reading_costs_audio_never_the_call():
    peer = Peer(stuck=True)
    outbox = Outbox(peer.send_message, PlivoStreamCodec("s").play_audio, max_items=20, send_timeout_s=0.05)
    pump = asyncio.create_task(outbox.pump())
    for n in range(50):  # the pipeline's sends never wait for the peer
        outbox.put_audio(frame(n % 256))
    await asyncio.sleep(0.2)
    assert not pump.done()  # the pump gives up on each stuck message and goes on
    assert outbox.dropped >= 30 and len(outbox) <= 20
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)
