"""The recording of a live call, as the call runtime uses it: an audio tap (three cheap hooks on the event loop)
and an async close.

    recording = await start_recording(call, bot, caller_format, bot_format)  # NO_RECORDING when the bot does not record
    recording.caller_audio(audio)                     # each chunk of caller audio that arrives
    recording.bot_audio(frame)                        # each 20 ms frame handed to the carrier
    recording.cleared()                               # the carrier's playback buffer was cleared (barge-in)
    await recording.close(at)                         # the call ended (at `at`, on the call's clock; default now)

Nothing here can break the call: a recording that cannot start, write or be stored says so on the call's
record and the call goes on.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async

from voicebots.callruntime.database import in_call_database_thread
from voicebots.voice.audio import MULAW_8K, AudioFormat

from . import services
from .models import Recording
from .recorder import StereoRecorder

logger = logging.getLogger(__name__)

# Copies to a bucket take seconds; they get threads of their own, not the calls' database threads.
_uploads = ThreadPoolExecutor(2, thread_name_prefix="recording-upload")
_background: set[asyncio.Task] = set()


class NoRecording:
    def caller_audio(self, audio: bytes) -> None:
        pass

    def bot_audio(self, frame: bytes) -> None:
        pass

    def cleared(self) -> None:
        pass

    async def close(self, at: float | None = None) -> None:
        pass


NO_RECORDING = NoRecording()


class LiveRecording:
    def __init__(self, recording: Recording, recorder: StereoRecorder) -> None:
        self.recording = recording
        self.recorder = recorder
        # The hooks are the recorder's own methods: no extra call per 20 ms frame.
        self.caller_audio = recorder.caller_audio
        self.bot_audio = recorder.bot_audio
        self.cleared = recorder.cleared
        self.stored: asyncio.Task | None = None  # the copy to a bucket, after the call

    async def close(self, at: float | None = None) -> None:
        """The call ended (at `at`, a moment of the call's clock, voicebots/core/clock.py; default now)."""
        try:
            result = await self.recorder.close(at)
            recording = await in_call_database_thread(services.finished)(self.recording, result)
        except Exception:
            logger.exception("Finishing the recording of call %s failed", self.recording.call_id)
            return
        if recording.status == Recording.Status.STORING:
            self.stored = asyncio.create_task(store_in_background(recording))
            _background.add(self.stored)
            self.stored.add_done_callback(_background.discard)


async def store_in_background(recording: Recording) -> None:
    try:
        await database_sync_to_async(services.store, thread_sensitive=False, executor=_uploads)(recording)
    except Exception:
        logger.exception("Storing the recording of call %s failed", recording.call_id)


async def start_recording(call, bot, caller_format: AudioFormat = MULAW_8K,
                          bot_format: AudioFormat = MULAW_8K) -> LiveRecording | NoRecording:
    """Begin recording `call` now (unless its bot says not to); each side's audio comes in its format."""
    try:
        recording = await in_call_database_thread(services.begin)(call, bot)
    except Exception:
        logger.exception("Could not start recording call %s", call.id)
        return NO_RECORDING
    if recording is None:
        return NO_RECORDING
    return LiveRecording(recording, StereoRecorder(services.local_file(recording), caller_format=caller_format,
                                                   bot_format=bot_format))
