"""The stereo recorder on a virtual clock: where caller and bot audio land, barge-in cuts, gaps, crashes, full disks."""
import wave

import numpy as np
import pytest

from voicebots.recordings import wav
from voicebots.recordings.recorder import StereoRecorder
from voicebots.voice.audio import pcm16_to_mulaw

FRAME_S = 0.02


def tone(ms: int, hz: float = 440.0, level: int = 8000) -> bytes:
    t = np.arange(8 * ms) / 8000
    return pcm16_to_mulaw(level * np.sin(2 * np.pi * hz * t))


def frames(audio: bytes):
    return [audio[i:i + 160] for i in range(0, len(audio), 160)]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def read(path):
    with wave.open(str(path)) as file:
        assert (file.getnchannels(), file.getframerate(), file.getsampwidth()) == (2, 8000, 2)
        samples = np.frombuffer(file.readframes(file.getnframes()), dtype=np.int16).reshape(-1, 2)
    return samples[:, 0], samples[:, 1]


def loud(channel, start_s, end_s):
    """Share of 20 ms windows between the two times with sound in them."""
    part = channel[int(start_s * 8000):int(end_s * 8000)]
    windows = part[:len(part) - len(part) % 160].reshape(-1, 160)
    return float(np.mean(np.abs(windows).max(axis=1) > 1000)) if len(windows) else 0.0


def feed_caller(recorder, clock, audio, until=None):
    """Caller frames arriving every 20 ms, as Plivo sends them."""
    for frame in frames(audio):
        clock.now += FRAME_S
        recorder.caller_audio(frame)


async def test_caller_and_bot_land_on_their_channels_in_time(tmp_path):
    clock = Clock()
    recorder = StereoRecorder(tmp_path / "a" / "call.wav", clock=clock)
    feed_caller(recorder, clock, tone(1000))  # 0-1 s the caller speaks
    for frame in frames(tone(2000, 300)):  # at 1 s the bot's 2 s reply is sent at once: it plays 1-3 s
        recorder.bot_audio(frame)
    feed_caller(recorder, clock, b"\xff" * 8000 * 3)  # silence from the caller, 1-4 s
    result = await recorder.close()

    assert result.error is None and abs(result.duration_s - 4.0) < 0.05
    caller, bot = read(result.path)
    assert len(caller) == pytest.approx(4 * 8000, abs=200)
    assert loud(caller, 0.05, 0.95) == 1.0 and loud(caller, 1.05, 4.0) == 0.0
    assert loud(bot, 0.0, 0.95) == 0.0 and loud(bot, 1.05, 2.95) == 1.0 and loud(bot, 3.05, 4.0) == 0.0


async def test_a_barge_in_cuts_the_bot_channel_where_the_caller_stopped_hearing(tmp_path):
    clock = Clock()
    recorder = StereoRecorder(tmp_path / "call.wav", clock=clock)
    for frame in frames(tone(5000, 300)):  # a 5 s reply, sent at once
        recorder.bot_audio(frame)
    feed_caller(recorder, clock, b"\xff" * 8000 * 2)
    recorder.cleared()  # at 2 s the caller interrupts
    feed_caller(recorder, clock, tone(1000) + b"\xff" * 8000 * 3)
    result = await recorder.close()

    caller, bot = read(result.path)
    assert abs(result.duration_s - 6.0) < 0.05
    assert loud(bot, 0.05, 1.95) == 1.0
    assert loud(bot, 2.02, 6.0) == 0.0  # silence after the barge-in, though 3 s more had been sent
    assert loud(caller, 2.05, 2.95) == 1.0


async def test_bot_audio_sent_in_pieces_plays_back_to_back_then_after_a_pause_when_it_was_sent(tmp_path):
    clock = Clock()
    recorder = StereoRecorder(tmp_path / "call.wav", clock=clock)
    for frame in frames(tone(400, 300)):
        recorder.bot_audio(frame)  # 0-0.4 s
    clock.now += 0.2
    for frame in frames(tone(400, 300)):
        recorder.bot_audio(frame)  # queued behind the first: 0.4-0.8 s
    clock.now += 1.8  # 2.0 s: nothing is playing any more
    for frame in frames(tone(400, 300)):
        recorder.bot_audio(frame)  # 2.0-2.4 s
    result = await recorder.close(at=clock.now + 1.0)

    _, bot = read(result.path)
    assert loud(bot, 0.0, 0.8) == 1.0
    assert loud(bot, 0.85, 1.95) == 0.0
    assert loud(bot, 2.0, 2.4) == 1.0


async def test_a_pause_in_the_callers_stream_is_silence_and_keeps_the_channels_aligned(tmp_path):
    clock = Clock()
    recorder = StereoRecorder(tmp_path / "call.wav", clock=clock)
    feed_caller(recorder, clock, tone(1000))
    clock.now += 2.0  # the stream carried nothing for 2 s
    feed_caller(recorder, clock, tone(1000))  # arrives 3-4 s
    result = await recorder.close()

    caller, _ = read(result.path)
    assert loud(caller, 1.05, 2.95) == 0.0
    assert loud(caller, 3.05, 3.95) == 1.0
    assert abs(result.duration_s - 4.0) < 0.05


async def test_audio_queued_for_the_bot_when_the_call_ends_was_never_heard(tmp_path):
    clock = Clock()
    recorder = StereoRecorder(tmp_path / "call.wav", clock=clock)
    for frame in frames(tone(10_000, 300)):
        recorder.bot_audio(frame)
    feed_caller(recorder, clock, b"\xff" * 8000)
    result = await recorder.close()
    assert abs(result.duration_s - 1.0) < 0.05


async def test_a_process_that_dies_mid_call_leaves_a_playable_file_the_repair_completes(tmp_path):
    clock = Clock()
    path = tmp_path / "call.wav"
    recorder = StereoRecorder(path, clock=clock)
    feed_caller(recorder, clock, tone(6000))
    for future in list(recorder._pending):
        future.result()  # what the writer thread had done when the process died (close() never runs)

    with open(path, "rb") as file:
        info = wav.read_info(file.read(44))
    assert 3.0 <= info.duration_s <= 6.0  # the header lags the audio by a few seconds at most
    caller, _ = read(path)
    assert loud(caller, 0.05, info.duration_s - 0.05) == 1.0

    data_bytes = wav.repair(path)
    assert data_bytes == path.stat().st_size - 44 and data_bytes >= info.data_bytes
    caller, _ = read(path)
    assert len(caller) * 4 == data_bytes


async def test_a_full_disk_stops_the_recording_and_says_why(tmp_path):
    clock = Clock()
    full_disk = tmp_path / "full.wav"
    full_disk.symlink_to("/dev/full")  # every write fails with ENOSPC
    recorder = StereoRecorder(full_disk, clock=clock)
    feed_caller(recorder, clock, tone(3000))
    result = await recorder.close()
    assert result.error and "No space left on device" in result.error


async def test_nothing_recorded_is_an_empty_file(tmp_path):
    recorder = StereoRecorder(tmp_path / "call.wav", clock=Clock())
    result = await recorder.close()
    assert result.data_bytes == 0 and result.error is None


async def test_a_browser_calls_pcm_at_other_rates_is_resampled_to_the_recordings_8_khz(tmp_path):
    from voicebots.voice.audio import AudioFormat

    clock = Clock()
    caller_format, bot_format = AudioFormat("linear16", 16000), AudioFormat("linear16", 24000)
    recorder = StereoRecorder(tmp_path / "web.wav", caller_format=caller_format, bot_format=bot_format, clock=clock)
    t = np.arange(24000) / 24000  # 1 s of the bot at 24 kHz, sent at once
    bot = (8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()
    for offset in range(0, len(bot), 960):  # 20 ms frames
        recorder.bot_audio(bot[offset:offset + 960])
    t = np.arange(32000) / 16000  # 2 s of the caller at 16 kHz, in 20 ms chunks
    caller = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    for offset in range(0, len(caller), 640):
        clock.now += FRAME_S
        recorder.caller_audio(caller[offset:offset + 640])
    result = await recorder.close()

    caller_channel, bot_channel = read(result.path)
    assert abs(result.duration_s - 2.0) < 0.05
    assert loud(caller_channel, 0.05, 1.95) == 1.0
    assert loud(bot_channel, 0.05, 0.95) == 1.0 and loud(bot_channel, 1.05, 2.0) == 0.0
    spectrum = np.abs(np.fft.rfft(caller_channel[:8000].astype(float)))
    assert abs(np.argmax(spectrum) - 440) <= 2  # still a 440 Hz tone at 8 kHz: resampled, not sped up


async def test_jitter_delays_and_bursts_leave_the_callers_audio_whole_and_in_place(tmp_path):
    clock = Clock()
    recorder = StereoRecorder(tmp_path / "call.wav", clock=clock)
    audio = frames(tone(3000))
    for frame in audio[:50]:  # 0-1 s on time
        clock.now += FRAME_S
        recorder.caller_audio(frame)
    clock.now += 0.4  # the network holds 20 frames for 400 ms, then delivers them at once
    for frame in audio[50:70]:
        recorder.caller_audio(frame)
    for frame in audio[70:]:  # then on time again
        clock.now += FRAME_S
        recorder.caller_audio(frame)
    result = await recorder.close()

    caller, _ = read(result.path)
    assert loud(caller, 0.0, 2.98) == 1.0  # no hole where the frames were late
    assert abs(result.duration_s - 3.0) < 0.05
