"""Hearing the caller over the bot, with real speech: the Silero voice detector's verdicts, checked against the
level of the bot's own voice, must not take the bot's echo (20 dB down, as a phone leaks it back) or steady line
noise for the caller, and must hear a caller who really talks over the bot within a fraction of a second.

The bot says one recorded sentence and the caller another (espeak-ng recordings shipped with the product), both
8 kHz mu-law; time is virtual, 20 ms a frame, as a phone sends it.
"""
from __future__ import annotations

import asyncio

import numpy as np

from voicebots.providers.silero_vad import SileroActivity
from voicebots.callruntime.records import recorded_audio
from voicebots.voice.audio import MULAW_8K, mulaw_to_pcm16, pcm16_to_mulaw
from voicebots.voice.caller_speech import CallerSpeech
from voicebots.voice.playout import Playout

BOT = mulaw_to_pcm16(recorded_audio("trouble")).astype(np.float64)
CALLER = mulaw_to_pcm16(recorded_audio("not_configured")).astype(np.float64)
ECHO_DELAY_S = 0.12


class Line:
    output_format = MULAW_8K

    async def send_audio(self, frame: bytes) -> None:
        pass

    async def checkpoint(self, name: str) -> None:
        pass

    async def clear(self) -> None:
        pass


def caller_speech_heard(line: np.ndarray) -> list[float]:
    """The bot's sentence plays from time 0 while the caller's line carries `line`; the times at which the caller
    was found to be speaking."""
    clock = [0.0]
    playout = Playout(Line(), lambda: clock[0])
    asyncio.run(playout.play(0, pcm16_to_mulaw(BOT)))
    detector, gate = SileroActivity(), CallerSpeech()
    audio = pcm16_to_mulaw(line)
    heard = []
    for index in range(len(audio) // 160):
        clock[0] = (index + 1) * 0.02
        detector.update(audio[index * 160:(index + 1) * 160], clock[0])
        if gate.update(detector.take_verdicts(), playout.level) is not None:
            heard.append(clock[0])
    return heard


def echo(gain_db: float) -> np.ndarray:
    line = np.zeros(len(BOT) + 8000)
    delay = int(ECHO_DELAY_S * 8000)
    line[delay:delay + len(BOT)] = BOT * 10 ** (gain_db / 20)
    return line


def test_the_bots_own_echo_is_not_the_caller():
    detector = SileroActivity()
    for offset in range(0, len(BOT), 160):
        detector.update(pcm16_to_mulaw(BOT[offset:offset + 160] / 10), offset / 8000)
    assert any(verdict.speech for verdict in detector.take_verdicts())  # Silero alone hears the echo as speech
    assert caller_speech_heard(echo(-20)) == []


def test_steady_line_noise_is_not_the_caller():
    rng = np.random.default_rng(7)
    length = len(BOT) + 8000
    hum = 300 * np.sin(2 * np.pi * 50 * np.arange(length) / 8000)
    for level in (150, 600):
        assert caller_speech_heard(echo(-20) + rng.standard_normal(length) * level + hum) == [], level


def test_a_caller_talking_over_the_bot_is_heard_at_once_even_when_quieter_than_the_bot():
    onset_s = 1.0
    voice_starts = onset_s + np.flatnonzero(np.abs(CALLER) > 300)[0] / 8000
    for gain_db in (0, -10):
        line = echo(-20)
        start = int(onset_s * 8000)
        said = CALLER[:len(line) - start] * 10 ** (gain_db / 20)
        line[start:start + len(said)] += said
        heard = caller_speech_heard(line)
        assert heard and voice_starts <= heard[0] <= voice_starts + 0.2, (gain_db, heard[:1], voice_starts)
