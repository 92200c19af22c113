"""Is the caller speaking over the bot? The voice detector's verdicts, checked against the bot's own voice.

The caller's phone leaks the bot's voice back into the line (echo, about 20 dB down), and a voice detector hears
that echo as speech. So while the bot is audible, a verdict counts only if its level is within `echo_margin_db`
of the loudest the bot's voice was over the last `echo_window_s` (the echo arrives after the round trip); it must
also reach `floor_rms`, so that line noise never counts. The caller is taken to be speaking once `min_speech_s` of
such speech has come with no gap longer than `gap_s`: a click or a breath is shorter.
"""
from __future__ import annotations

from typing import Callable, Iterable

from .ports import VoiceVerdict

DEFAULT_MIN_SPEECH_S = 0.06
DEFAULT_ECHO_MARGIN_DB = 14.0
DEFAULT_FLOOR_RMS = 300.0  # about -41 dBFS: a quiet talker on a phone line, well above its noise
DEFAULT_ECHO_WINDOW_S = 0.6
DEFAULT_GAP_S = 0.07  # a gap of up to two 32 ms windows does not break a stretch of speech

BotLevel = Callable[[float, float], float]  # (since, until) -> the bot's loudest level then


class CallerSpeech:
    def __init__(self, *, min_speech_s: float = DEFAULT_MIN_SPEECH_S, echo_margin_db: float = DEFAULT_ECHO_MARGIN_DB,
                 floor_rms: float = DEFAULT_FLOOR_RMS, echo_window_s: float = DEFAULT_ECHO_WINDOW_S,
                 gap_s: float = DEFAULT_GAP_S) -> None:
        self._min_speech_s = min_speech_s
        self._echo_share = 10 ** (-echo_margin_db / 20)
        self._floor_rms = floor_rms
        self._echo_window_s = echo_window_s
        self._gap_s = gap_s
        self._onset: float | None = None  # when the current stretch of speech began
        self._speech_s = 0.0
        self._reported = False
        self.last_speech_at: float | None = None  # the end of the last verdict that counted

    def threshold(self, at: float, bot_level: BotLevel) -> float:
        """The level caller speech must reach at `at` to count."""
        return max(self._floor_rms, bot_level(at - self._echo_window_s, at) * self._echo_share)

    def update(self, verdicts: Iterable[VoiceVerdict], bot_level: BotLevel) -> float | None:
        """Take new verdicts; returns the onset of a stretch of speech that has just become long enough."""
        started: float | None = None
        for verdict in verdicts:
            if verdict.speech and verdict.level >= self.threshold(verdict.at, bot_level):
                if self._onset is None or verdict.at - verdict.duration_s - (self.last_speech_at or 0.0) > self._gap_s:
                    self._onset, self._speech_s, self._reported = verdict.at - verdict.duration_s, 0.0, False
                self._speech_s += verdict.duration_s
                self.last_speech_at = verdict.at
                if not self._reported and self._speech_s >= self._min_speech_s - 1e-9:
                    self._reported = True
                    started = self._onset
            elif self._onset is not None and verdict.at - (self.last_speech_at or 0.0) > self._gap_s:
                self._onset, self._speech_s, self._reported = None, 0.0, False
        return started

    def speaking_since(self, now: float) -> float | None:
        """The onset of the stretch of speech going on at `now` (None when the caller is quiet)."""
        if self._onset is None or self.last_speech_at is None or now - self.last_speech_at > self._gap_s:
            return None
        return self._onset

    def quiet_for(self, now: float) -> float | None:
        """Seconds since the caller's last counted speech (None if there was none)."""
        return None if self.last_speech_at is None else now - self.last_speech_at
