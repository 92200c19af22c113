"""One bot turn's speech: text segments in, the voice's audio out to the playout with a checkpoint per segment.

Segments are pushed to the voice as soon as they exist (continuations of one TTS turn) while its audio is
relayed to the playout, so the reply is spoken while the model is still writing it. If a voice fails (an error,
a dropped connection, or no audio for `response_timeout_s` while text is waiting), the segments it has not
finished are spoken again by the next voice. Word timestamps from the voice go to the playout too, which then
knows where each word lies in the audio (to resume a reply on a word after a barge-in).
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Awaitable, Callable, Sequence


from .playout import Playout
from .ports import SegmentDone, SpeechAudio, SpeechTurn, TextToSpeech, TextToSpeechError, WordTimes
from .timeline import Timeline

logger = logging.getLogger(__name__)

VoiceFailed = Callable[[TextToSpeech, TextToSpeechError, bool], Awaitable[None]]
_WORD = re.compile(r"\S+")
_LETTERS = re.compile(r"[\W_]+")


class SpokenReply:
    def __init__(self, voices: Sequence[TextToSpeech], playout: Playout, turn: int, timeline: Timeline, *,
                 response_timeout_s: float = 5.0, keep_audio: bool = False,
                 on_voice_failed: VoiceFailed | None = None) -> None:
        self._voices = list(voices)
        self._playout = playout
        self._turn = turn
        self._timeline = timeline
        self._response_timeout_s = response_timeout_s
        self._on_voice_failed = on_voice_failed
        self.segments: list[str] = []
        self.spoken = 0  # segments whose audio has been sent in full
        self.voice_used: TextToSpeech | None = None
        self.audio = bytearray() if keep_audio else None  # all audio sent, to cache fixed sentences
        self._finished = False
        self._changed = asyncio.Event()
        self._pushed = 0
        self._deadline: asyncio.Timeout | None = None
        self._words: _WordPlacer | None = None

    @property
    def text(self) -> str:
        return "".join(self.segments)

    @property
    def sent_text(self) -> str:
        """The text of the segments whose audio has been sent in full."""
        return "".join(self.segments[:self.spoken])

    @property
    def complete(self) -> bool:
        return self._finished and self.spoken == len(self.segments)

    def say(self, segment: str) -> None:
        self.segments.append(segment)
        self._changed.set()

    def finish(self) -> None:
        self._finished = True
        self._changed.set()

    async def run(self) -> None:
        """Speak everything said until `finish`; returns when it has all been sent, or no voice is left."""
        for position, voice in enumerate(self._voices):
            try:
                await voice.connect()  # overlaps with the model's first tokens
                await self._wait_for_text()
                if not self.segments:
                    return
                await self._speak_with(voice)
                self.voice_used = voice
                return
            except TextToSpeechError as error:
                has_fallback = position + 1 < len(self._voices)
                logger.warning("Voice %s failed (%s)%s", voice.voice_id, error,
                               "; trying the fallback voice" if has_fallback else "")
                if self._on_voice_failed is not None:
                    await self._on_voice_failed(voice, error, has_fallback)

    async def _wait_for_text(self) -> None:
        while not self.segments and not self._finished:
            self._changed.clear()
            await self._changed.wait()

    async def _speak_with(self, voice: TextToSpeech) -> None:
        speech = voice.start_turn()
        self._pushed = self.spoken
        self._playout.discard_open_segment(self._turn)  # a failed voice's unfinished segment is said again
        self._words = _WordPlacer(self, len(self._playout.audio_of(self._turn).audio),
                                  self._playout.audio_of(self._turn).bytes_per_second)
        feeder = asyncio.create_task(self._feed(speech))
        relay = asyncio.create_task(self._relay(speech))
        try:
            done, _ = await asyncio.wait((feeder, relay), return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if (error := task.exception()) is not None:
                    raise error
        finally:
            for task in (feeder, relay):
                task.cancel()
            await asyncio.gather(feeder, relay, return_exceptions=True)
            if not self.complete:
                await _cancel_quietly(speech)

    async def _feed(self, speech: SpeechTurn) -> None:
        while True:
            self._changed.clear()
            while self._pushed < len(self.segments):
                await speech.push(self.segments[self._pushed])
                self._pushed += 1
                self._timeline.mark("first_segment_sent")
                if self._deadline is not None and self._deadline.when() is None:
                    self._deadline.reschedule(asyncio.get_running_loop().time() + self._response_timeout_s)
            if self._finished:
                await speech.finish()
                return
            await self._changed.wait()

    async def _relay(self, speech: SpeechTurn) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as deadline:
                self._deadline = deadline
                if self._pushed > self.spoken:  # the feeder may have pushed before this started
                    deadline.reschedule(loop.time() + self._response_timeout_s)
                async for event in speech.events():
                    deadline.reschedule(None)  # the voice answered: sending its audio (paced) is not its delay
                    if isinstance(event, SpeechAudio):
                        await self._play(event.audio)
                    elif isinstance(event, SegmentDone) and self.spoken < len(self.segments):
                        await self._playout.end_segment(self._turn, self.spoken, self.segments[self.spoken])
                        self.spoken += 1
                    elif isinstance(event, WordTimes) and self._words is not None:
                        self._words.place(event)
                    waiting = self._pushed > self.spoken
                    deadline.reschedule(loop.time() + self._response_timeout_s if waiting else None)
        except TimeoutError:
            raise TextToSpeechError(f"no audio for {self._response_timeout_s:g} s") from None
        finally:
            self._deadline = None
        if self.spoken < self._pushed:
            raise TextToSpeechError("the voice ended its stream before the last segment")

    async def _play(self, audio: bytes) -> None:
        self._timeline.mark("first_tts_audio")
        if self.audio is not None:
            self.audio.extend(audio)
        await self._playout.play(self._turn, audio)


async def _cancel_quietly(speech: SpeechTurn) -> None:
    try:
        await speech.cancel()
    except Exception:  # the voice may already be gone; nothing more to stop
        logger.debug("Cancelling a speech turn failed", exc_info=True)


class _WordPlacer:
    """Maps a voice's word timestamps (seconds into its speech turn) onto the turn's audio and text: the voice's
    n-th word is the n-th word of the text it was given. A voice whose words stop matching the text is no longer
    trusted with positions (the playout then estimates them)."""

    def __init__(self, reply: SpokenReply, audio_base: int, bytes_per_second: int) -> None:
        self._reply = reply
        self._audio_base = audio_base  # where this voice's audio starts in the turn's audio
        self._bytes_per_second = bytes_per_second
        self._first_segment = reply.spoken
        self._next = 0  # words placed so far
        self._trusted = True

    def place(self, times: WordTimes) -> None:
        reply = self._reply
        text_base = sum(len(segment) for segment in reply.segments[:self._first_segment])
        text = "".join(reply.segments[self._first_segment:])
        words = list(_WORD.finditer(text))
        for word, start, end in zip(times.words, times.starts, times.ends):
            if not self._trusted or self._next >= len(words) or _letters(word) != _letters(words[self._next].group()):
                self._trusted = False
                return
            rate = self._bytes_per_second
            reply._playout.mark_word(reply._turn, self._audio_base + _frame_aligned(start * rate),
                                     text_base + words[self._next].start(), self._audio_base + _frame_aligned(end * rate))
            self._next += 1


def _frame_aligned(position: float) -> int:
    """A byte position on an even byte: a 16-bit sample is never split (mu-law moves by a sample at most)."""
    return round(position / 2) * 2


def _letters(word: str) -> str:
    return _LETTERS.sub("", word.lower())
