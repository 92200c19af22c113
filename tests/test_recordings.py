"""Call recordings end to end: a real call through the Plivo consumer and the vendor fakes is recorded in stereo,
served with `Range`, deleted, expired; and a recording that cannot be written or stored never touches the call."""
import asyncio
import io
import os
import time
import uuid
import wave
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from config.asgi import application
from tests.fakes.anthropic_server import Text, Turn
from tests.fakes.deepgram_server import silence, speech
from tests.fakes.s3_server import FakeS3
from tests.test_phone_calls import EVENTS, PlivoPeer, _close_consumer_connections, vendors  # noqa: F401 (fixtures)
from tests.test_plivo_stream import answer, start_frame
from voicebots.bots.models import Voicebot
from voicebots.calls.models import Call, CallEvent
from voicebots.recordings import services, tasks, wav
from voicebots.recordings.models import Recording
from voicebots.recordings.recorder import StereoRecorder
from voicebots.telephony.codec import CheckpointRequested, ClearRequested, PlayAudio

LONG_REPLY = ("Our clinic offers cleanings, fillings, crowns, whitening and implants, and we are open six days "
              "a week from eight in the morning until seven in the evening.")


def channels_of(content: bytes):
    with wave.open(io.BytesIO(content)) as file:
        assert (file.getnchannels(), file.getframerate(), file.getsampwidth()) == (2, 8000, 2)
        samples = np.frombuffer(file.readframes(file.getnframes()), dtype=np.int16).reshape(-1, 2)
    return samples[:, 0], samples[:, 1]


def loud_windows(channel) -> np.ndarray:
    """Per 20 ms: is there sound."""
    whole = channel[:len(channel) - len(channel) % 160].reshape(-1, 160)
    return np.abs(whole.astype(np.int32)).max(axis=1) > 1000


def runs(flags: np.ndarray) -> list[tuple[float, float]]:
    """(start s, end s) of each stretch of sound, ignoring gaps shorter than 200 ms."""
    spans: list[list[float]] = []
    for index in np.flatnonzero(flags):
        at = index * 0.02
        if spans and at - spans[-1][1] <= 0.2:
            spans[-1][1] = at + 0.02
        else:
            spans.append([at, at + 0.02])
    return [(start, end) for start, end in spans]


# --- a recording made with the recorder directly, for the API's tests ----------------------------------

def tone(seconds: float, hz: float = 440.0) -> bytes:
    from voicebots.voice.audio import pcm16_to_mulaw

    t = np.arange(int(8000 * seconds)) / 8000
    return pcm16_to_mulaw(8000 * np.sin(2 * np.pi * hz * t))


def recorded_call(account, *, seconds: float = 3.0, started_days_ago: float = 0,
                  caller_spans=None, bot_spans=None) -> Call:
    """A finished call with a ready recording made by the recorder on a virtual clock. By default the caller's
    tone fills the call and the bot's its first half; `caller_spans`/`bot_spans` give (start s, end s) of sound."""
    bot = Voicebot.objects.create(account=account, name="Recorded")
    call = Call.objects.create(account=account, voicebot=bot, status=Call.Status.COMPLETED, duration_seconds=3)
    recording = services.begin(call, bot)
    clock = [1000.0]
    recorder = StereoRecorder(services.local_file(recording), clock=lambda: clock[0])
    caller_spans = caller_spans or [(0.0, seconds)]
    bot_spans = list(bot_spans or [(0.0, seconds / 2)])
    caller = bytearray(b"\xff" * int(8000 * seconds))
    for start, end in caller_spans:
        caller[int(8000 * start):int(8000 * end)] = tone(end - start)
    for offset in range(0, len(caller), 160):
        while bot_spans and bot_spans[0][0] * 8000 <= offset:
            start, end = bot_spans.pop(0)
            speech = tone(end - start, 300)
            for frame in range(0, len(speech), 160):  # sent at once, played at real time
                recorder.bot_audio(speech[frame:frame + 160])
        clock[0] += 0.02
        recorder.caller_audio(bytes(caller[offset:offset + 160]))
    services.finished(recording, asyncio.run(recorder.close()))
    if started_days_ago:
        Recording.objects.filter(pk=recording.pk).update(started_at=timezone.now() - timedelta(days=started_days_ago))
    return call


def test_the_recording_is_a_stereo_wav_served_whole_and_by_range(api):
    call = recorded_call(api.account)
    response = api.get(f"Call/{call.id}/recording")
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert response["Accept-Ranges"] == "bytes"
    whole = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(whole)
    caller, bot = channels_of(whole)
    assert abs(len(caller) / 8000 - 3.0) < 0.05
    assert loud_windows(caller).mean() > 0.95 and loud_windows(bot)[:70].all() and not loud_windows(bot)[80:].any()

    part = api.get(f"Call/{call.id}/recording", HTTP_RANGE="bytes=44-1043")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 44-1043/{len(whole)}"
    assert b"".join(part.streaming_content) == whole[44:1044] and part["Content-Length"] == "1000"
    tail = api.get(f"Call/{call.id}/recording/", HTTP_RANGE="bytes=-100")
    assert tail.status_code == 206 and b"".join(tail.streaming_content) == whole[-100:]
    rest = api.get(f"Call/{call.id}/recording", HTTP_RANGE="bytes=40000-")
    assert rest.status_code == 206 and b"".join(rest.streaming_content) == whole[40000:]
    beyond = api.get(f"Call/{call.id}/recording", HTTP_RANGE=f"bytes={len(whole)}-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(whole)}"
    several = api.get(f"Call/{call.id}/recording", HTTP_RANGE="bytes=0-10,20-30")  # not served: the whole file
    assert several.status_code == 200

    detail = api.get(f"Call/{call.id}").json()
    assert detail["recording_url"].endswith(f"/v1/Account/{api.account.auth_id}/Call/{call.id}/recording")
    assert api.get("Call/").json()["calls"][0]["recording_url"] == detail["recording_url"]


def test_other_accounts_and_unknown_calls_get_404(api, other_api):
    call = recorded_call(api.account)
    assert other_api.get(f"Call/{call.id}/recording").status_code == 404
    assert other_api.delete(f"Call/{call.id}/recording").status_code == 404
    assert api.get(f"Call/{uuid.uuid4()}/recording").status_code == 404
    assert api.get("Call/not-a-uuid/recording").status_code == 404
    bare = Call.objects.create(account=api.account, status=Call.Status.COMPLETED)
    response = api.get(f"Call/{bare.id}/recording")
    assert response.status_code == 404 and "no recording" in response.json()["error"]
    assert api.get(f"Call/{bare.id}").json()["recording_url"] is None


def test_deleting_a_recording_removes_its_audio_from_storage(api):
    call = recorded_call(api.account)
    path = services.local_file(call.recording)
    assert path.exists()
    assert api.delete(f"Call/{call.id}/recording").status_code == 204
    assert not path.exists()
    response = api.get(f"Call/{call.id}/recording")
    assert response.status_code == 404 and "deleted" in response.json()["error"]
    assert api.get(f"Call/{call.id}").json()["recording_url"] is None
    assert api.delete(f"Call/{call.id}/recording").status_code == 404


def test_deleting_the_call_or_account_deletes_the_audio(api, django_capture_on_commit_callbacks):
    call = recorded_call(api.account)
    path = services.local_file(call.recording)
    with django_capture_on_commit_callbacks(execute=True):
        api.account.delete()
    assert not path.exists()


def test_recordings_older_than_the_accounts_retention_are_deleted(api, other_api):
    old, recent = recorded_call(api.account, started_days_ago=31), recorded_call(api.account, started_days_ago=29)
    forever = recorded_call(other_api.account, started_days_ago=400)
    other_api.account.recording_retention_days = 0  # keep forever
    other_api.account.save()

    assert tasks.delete_expired.delay().get() == 1  # the beat task, run eagerly
    old.recording.refresh_from_db()
    assert old.recording.status == Recording.Status.DELETED and "30 days" in old.recording.error
    assert not services.local_file(old.recording).exists()
    assert api.get(f"Call/{old.id}/recording").status_code == 404
    assert api.get(f"Call/{recent.id}/recording").status_code == 200
    assert other_api.get(f"Call/{forever.id}/recording").status_code == 200


def test_a_recording_left_by_a_process_that_died_is_repaired_and_kept(api):
    bot = Voicebot.objects.create(account=api.account, name="Crashy")
    call = Call.objects.create(account=api.account, voicebot=bot, status=Call.Status.IN_PROGRESS)
    recording = services.begin(call, bot)
    clock = [0.0]
    recorder = StereoRecorder(services.local_file(recording), clock=lambda: clock[0])
    caller = tone(7.0)
    for offset in range(0, len(caller), 160):
        clock[0] += 0.02
        recorder.caller_audio(caller[offset:offset + 160])
    for future in list(recorder._pending):
        future.result()  # the writer's last flush; then the process dies: close() never runs
    path = services.local_file(recording)
    with open(path, "rb") as file:
        lagging = wav.read_info(file.read(44)).duration_s
    assert services.sweep()["repaired"] == 0  # a recent file may belong to a live call
    os.utime(path, (time.time() - 600, time.time() - 600))

    assert tasks.sweep.delay().get()["repaired"] == 1
    recording.refresh_from_db()
    assert recording.status == Recording.Status.READY and "stopped mid-call" in recording.error
    caller_channel, _ = channels_of(b"".join(api.get(f"Call/{call.id}/recording").streaming_content))
    repaired = len(caller_channel) / 8000
    assert lagging < repaired and 5.0 <= repaired <= 7.0  # all that was written, less the last second at most


# --- real calls ------------------------------------------------------------------------------------------

pytest_db = pytest.mark.django_db(transaction=True)
# The calls' seconds of audio pass on a virtual clock (tests/virtual_time.py): the recording's length and the
# moment the bot was cut are measured on it.
pytestmark = pytest.mark.virtual_time


@pytest.fixture
def bot(api, settings):
    settings.PLIVO_VERIFY_SIGNATURES = False
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello, Smile Dental!"}).json()


async def connect(client, api, bot, peer=None):
    call_uuid = str(uuid.uuid4())
    path = await sync_to_async(answer)(client, api, bot, call_uuid)
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=start_frame(call_uuid))
    return call_uuid, communicator, (peer or PlayingPeer)(communicator)


async def call_record(call_uuid: str) -> Call:
    return await Call.objects.select_related("recording").aget(call_uuid=call_uuid)


class PlayingPeer(PlivoPeer):
    """Plivo's side as it plays the bot's audio in real time: a checkpoint is acknowledged once the audio
    before it has played; `clearAudio` drops what has not."""

    async def _read(self):
        loop = asyncio.get_running_loop()
        playing_until, generation = loop.time(), 0

        async def acknowledge(name, at, sent_in):
            await asyncio.sleep(max(0.0, at - loop.time()))
            if sent_in == generation:
                await self.send(self.codec.played(name))

        while True:
            output = await self.communicator.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                self.frames.append(("closed", output, loop.time()))
                return
            message = self.codec.parse_from_server(output["text"])
            self.frames.append((EVENTS[type(message)], message, loop.time()))
            if isinstance(message, PlayAudio):
                playing_until = max(playing_until, loop.time()) + len(message.audio) / 8000
            elif isinstance(message, CheckpointRequested):
                asyncio.create_task(acknowledge(message.name, playing_until, generation))
            elif isinstance(message, ClearRequested):
                generation, playing_until = generation + 1, loop.time()
                await self.send(self.codec.cleared())


def bot_audio_seconds(peer: PlivoPeer) -> float:
    return sum(len(message.audio) for kind, message, _ in peer.frames if kind == "playAudio") / 8000


@pytest_db
async def test_a_call_is_recorded_in_stereo_and_the_bot_channel_is_silent_after_a_barge_in(client, api, bot,
                                                                                          vendors):
    llm, stt, tts = vendors
    stt.script("What do you offer?", "Okay stop, stop.")
    llm.script(Turn([Text(LONG_REPLY)]), Turn([Text("Sure.")], first_token_delay_s=3.0))
    began = asyncio.get_running_loop().time()
    call_uuid, communicator, peer = await connect(client, api, bot)
    await peer.send_audio(silence(1500))  # the greeting plays
    await peer.send_audio(speech(900) + silence(700))
    await peer.wait_for(lambda: bot_audio_seconds(peer) > 5)  # most of the long reply is already with Plivo
    await peer.send_audio(silence(1200))
    await peer.send_audio(speech(1500) + silence(2500))  # the caller talks over it
    await communicator.send_to(text_data=peer.codec.stop(call_uuid))
    lasted = asyncio.get_running_loop().time() - began
    await communicator.disconnect()
    assert peer.count("clearAudio") >= 1

    call = await call_record(call_uuid)
    assert call.recording.status == Recording.Status.READY and call.recording.error == ""
    response = await sync_to_async(api.get)(f"Call/{call.id}/recording")
    assert response.status_code == 200
    caller, heard = channels_of(b"".join(response.streaming_content))
    assert abs(len(caller) / 8000 - lasted) <= 1.0
    caller_runs, bot_runs = runs(loud_windows(caller)), runs(loud_windows(heard))
    assert len(caller_runs) == 2, caller_runs
    greeting, reply = bot_runs[0], bot_runs[1]
    assert greeting[1] <= caller_runs[0][0] + 0.1  # the greeting came first
    interruption = caller_runs[1]
    assert reply[0] < interruption[0] < reply[1]  # the caller spoke while the reply was heard ...
    assert reply[1] < interruption[1] + 1.0  # ... and it was cut soon after
    assert reply[1] - reply[0] < bot_audio_seconds(peer) - 2.0 - 1.2  # far less than was sent to Plivo
    assert not loud_windows(heard)[int((reply[1] + 0.1) * 50):int((reply[1] + 2.0) * 50)].any()


@pytest_db
async def test_a_bot_that_does_not_record_leaves_no_recording(client, api, bot, vendors):
    await sync_to_async(api.patch)(f"Voicebot/{bot['id']}", {"record_calls": False})
    call_uuid, communicator, peer = await connect(client, api, bot)
    await peer.send_audio(silence(600))
    await communicator.send_to(text_data=peer.codec.stop(call_uuid))
    await communicator.disconnect()
    call = await Call.objects.aget(call_uuid=call_uuid)
    assert not await Recording.objects.filter(call=call).aexists()
    assert (await sync_to_async(api.get)(f"Call/{call.id}/recording")).status_code == 404


@pytest_db
async def test_a_stream_that_drops_mid_call_leaves_a_playable_recording(client, api, bot, vendors):
    began = asyncio.get_running_loop().time()
    call_uuid, communicator, peer = await connect(client, api, bot)
    await peer.send_audio(speech(600) + silence(1400))
    lasted = asyncio.get_running_loop().time() - began
    await communicator.disconnect()  # no stop frame: the socket just goes
    call = await call_record(call_uuid)
    assert call.has_ended and "closed" in call.end_reason
    assert call.recording.status == Recording.Status.READY
    caller, _ = channels_of(b"".join((await sync_to_async(api.get)(f"Call/{call.id}/recording")).streaming_content))
    assert abs(len(caller) / 8000 - lasted) <= 1.0


@pytest_db
async def test_a_call_without_any_audio_says_so_and_ends_normally(client, api, bot, vendors):
    await sync_to_async(api.patch)(f"Voicebot/{bot['id']}", {"welcome_message": ""})  # nobody says anything
    call_uuid, communicator, peer = await connect(client, api, bot)
    await communicator.send_to(text_data=peer.codec.stop(call_uuid))
    await communicator.disconnect()
    call = await call_record(call_uuid)
    assert call.status == Call.Status.COMPLETED
    assert call.recording.status == Recording.Status.FAILED and "No audio" in call.recording.error
    assert await CallEvent.objects.filter(call=call, kind="recording_failed").aexists()
    assert not services.local_file(call.recording).exists()
    response = await sync_to_async(api.get)(f"Call/{call.id}/recording")
    assert response.status_code == 404 and "No audio" in response.json()["error"]


@pytest_db
async def test_a_full_disk_stops_the_recording_not_the_call(client, api, bot, vendors, monkeypatch, tmp_path):
    llm, stt, tts = vendors
    stt.script("Are you open today?")
    llm.script(Turn([Text("Yes, until seven.")]))
    full_disk = tmp_path / "full.wav"
    full_disk.symlink_to("/dev/full")  # every write fails with ENOSPC; removing it removes only the link
    monkeypatch.setattr(services, "local_file", lambda recording: full_disk)
    call_uuid, communicator, peer = await connect(client, api, bot)
    await peer.send_audio(silence(1000) + speech(900) + silence(800))
    await peer.wait_for(lambda: len(llm.requests) == 1)
    await peer.send_audio(silence(1500))
    await communicator.send_to(text_data=peer.codec.stop(call_uuid))
    await communicator.disconnect()

    call = await call_record(call_uuid)
    assert call.status == Call.Status.COMPLETED
    turns = [turn async for turn in call.turns.order_by("index")]
    assert turns[-1].caller_text == "Are you open today?" and turns[-1].bot_text == "Yes, until seven."
    assert "No space left on device" in call.recording.error
    kinds = [event.kind async for event in call.events.all()]
    assert "recording_failed" in kinds or "recording_incomplete" in kinds


@pytest.fixture
def bucket(settings, tmp_path):
    s3 = FakeS3(bucket="voicebots-recordings").start_in_thread()
    settings.RECORDINGS_SPOOL_DIR = tmp_path / "spool"
    settings.STORAGES = {**settings.STORAGES, "recordings": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": s3.bucket, "endpoint_url": s3.url, "access_key": s3.access_key, "secret_key": s3.secret_key,
        "region_name": "us-east-1", "location": "prod", "default_acl": None, "file_overwrite": True,
        "client_config": __import__("botocore.config", fromlist=["Config"]).Config(
            connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    }}}
    yield s3
    s3.stop()


async def wait_for_status(call_uuid: str, *, error: bool = False) -> Recording:
    for _ in range(200):
        recording = (await call_record(call_uuid)).recording
        settled = recording.status not in (Recording.Status.RECORDING, Recording.Status.STORING)
        if settled or (error and recording.error):
            return recording
        await asyncio.sleep(0.05)
    raise AssertionError(f"the recording stayed {recording.status}")


@pytest_db
async def test_a_bucket_that_is_down_keeps_the_recording_until_the_sweep_stores_it(client, api, bot, vendors, bucket):
    bucket.unavailable = True
    call_uuid, communicator, peer = await connect(client, api, bot)
    await peer.send_audio(speech(500) + silence(1500))
    await communicator.send_to(text_data=peer.codec.stop(call_uuid))
    await communicator.disconnect()

    call = await call_record(call_uuid)
    assert call.status == Call.Status.COMPLETED  # the call ended as usual
    recording = await wait_for_status(call_uuid, error=True)
    assert recording.status == Recording.Status.STORING and "Storing the recording failed" in recording.error
    assert await CallEvent.objects.filter(call=call, kind="recording_store_failed").aexists()
    assert Path(recording.spool_path).exists() and not bucket.objects
    assert (await sync_to_async(api.get)(f"Call/{call.id}/recording")).status_code == 404

    bucket.unavailable = False
    await Recording.objects.filter(pk=recording.pk).aupdate(updated_at=timezone.now() - timedelta(minutes=5))
    assert (await sync_to_async(services.sweep)())["stored"] == 1
    recording = (await call_record(call_uuid)).recording
    assert recording.status == Recording.Status.READY and recording.error == ""
    assert not Path(recording.spool_path).exists()
    assert list(bucket.objects) == [f"prod/{recording.name}"]

    stored = bucket.objects[f"prod/{recording.name}"]
    part = await sync_to_async(api.get)(f"Call/{call.id}/recording", HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and b"".join(part.streaming_content) == stored[100:200]
    assert any(r["headers"].get("range") == "bytes=100-199" for r in bucket.requests)  # a ranged GET, not all of it
    caller, _ = channels_of(b"".join((await sync_to_async(api.get)(f"Call/{call.id}/recording")).streaming_content))
    assert len(caller) > 8000


@pytest_db
async def test_with_a_bucket_the_recording_is_copied_there_after_the_call(client, api, bot, vendors, bucket):
    call_uuid, communicator, peer = await connect(client, api, bot)
    await peer.send_audio(speech(500) + silence(1000))
    await communicator.send_to(text_data=peer.codec.stop(call_uuid))
    await communicator.disconnect()
    recording = await wait_for_status(call_uuid)
    assert recording.status == Recording.Status.READY and recording.peaks
    assert list(bucket.objects) == [f"prod/{recording.name}"]
    assert await sync_to_async(lambda: (api.delete(f"Call/{recording.call_id}/recording").status_code))() == 204
    assert not bucket.objects
