"""Cutting a stream of scored VAD frames into utterances.

Hysteresis as in Silero's own iterator: speech starts at ``threshold`` and a pause starts
below ``threshold - 0.15``; an utterance ends after ``min_silence_ms`` of pause, is kept if it
holds at least ``min_speech_ms`` of speech, and gets ``speech_pad_ms`` of audio either side so
word onsets and releases are not clipped. An utterance that reaches ``max_utterance_s`` is
cut there and the speech goes on as the next one (flagged ``split``), so latency and memory
stay bounded however long someone talks. Minutes of silence keep only the pad's worth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from emolive.runtime.audio.vad import FRAME_S


@dataclass(frozen=True)
class SegmenterConfig:
    threshold: float = 0.5
    neg_threshold: float | None = None  # default threshold - 0.15
    min_speech_ms: float = 250.0
    min_silence_ms: float = 250.0
    speech_pad_ms: float = 96.0
    max_utterance_s: float = 20.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"VAD threshold must be in (0, 1), got {self.threshold}")
        if self.min_silence_ms < FRAME_S * 1e3:
            raise ValueError(f"min_silence_ms must be >= {FRAME_S * 1e3:.0f} (one VAD frame)")
        if self.max_utterance_s < 1.0:
            raise ValueError(f"max_utterance_s must be >= 1, got {self.max_utterance_s}")
        if self.min_speech_ms < 0 or self.speech_pad_ms < 0:
            raise ValueError("min_speech_ms and speech_pad_ms must be >= 0")

    @property
    def low(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else self.threshold - 0.15


@dataclass(frozen=True)
class SpeechSegment:
    """One utterance's audio, before analysis."""

    t_start: float  # session time of the first sample (pad included)
    t_end: float  # session time just after the last sample (pad included)
    speech_start: float  # first frame the VAD called speech
    speech_end: float  # end of the last frame the VAD called speech
    samples: np.ndarray  # float32 16 kHz mono
    speech_s: float  # seconds of frames scored as speech
    split: bool  # cut at max_utterance_s (continues in the next segment)
    continued: bool  # starts where the previous, split segment was cut
    decided_at: float  # session time of the audio at which the end was decided


class UtteranceSegmenter:
    """Feed ``(t, frame, prob)`` in stream order; get finished ``SpeechSegment`` s back."""

    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        self.config = config
        self._pad = int(np.ceil(config.speech_pad_ms / 1e3 / FRAME_S))
        self._min_silence = int(np.ceil(config.min_silence_ms / 1e3 / FRAME_S))
        self._max_frames = int(config.max_utterance_s / FRAME_S)
        self._preroll: deque[tuple[float, np.ndarray]] = deque(maxlen=self._pad)
        self.discarded_short = 0  # utterances under min_speech_ms
        self._reset()

    def _reset(self) -> None:
        self._frames: list[tuple[float, np.ndarray]] = []
        self._speech_frames = 0
        self._last_speech = -1  # index into _frames
        self._first_speech = -1
        self._silence = 0
        self._continued = False

    @property
    def in_speech(self) -> bool:
        return bool(self._frames)

    def push(self, t: float, frame: np.ndarray, prob: float) -> list[SpeechSegment]:
        c = self.config
        speech = prob >= c.threshold
        if not self._frames and not self._continued:
            if not speech:
                self._preroll.append((t, frame))
                return []
            self._frames = list(self._preroll)
            self._preroll.clear()
        if speech:
            self._silence = 0
        elif prob < c.low or self._silence:
            # Between the two thresholds a running pause keeps running, speech keeps going.
            self._silence += 1
        self._add(t, frame, speech=self._silence == 0)
        if self._silence >= self._min_silence:
            return self._finish(t + FRAME_S, split=False)
        if len(self._frames) >= self._max_frames:
            return self._finish(t + FRAME_S, split=True)
        return []

    def _add(self, t: float, frame: np.ndarray, speech: bool) -> None:
        self._frames.append((t, frame))
        if speech:
            self._speech_frames += 1
            self._last_speech = len(self._frames) - 1
            if self._first_speech < 0:
                self._first_speech = self._last_speech

    def _segment(self, end: int, decided_at: float, split: bool) -> SpeechSegment:
        frames, keep = self._frames, self._frames[:end]
        return SpeechSegment(
            t_start=keep[0][0],
            t_end=keep[-1][0] + FRAME_S,
            speech_start=frames[self._first_speech][0],
            speech_end=frames[self._last_speech][0] + FRAME_S,
            samples=np.concatenate([f for _, f in keep]),
            speech_s=self._speech_frames * FRAME_S,
            split=split,
            continued=self._continued,
            decided_at=decided_at,
        )

    @property
    def pad_frames(self) -> int:
        return self._pad

    @property
    def pause_frames(self) -> int:
        """Frames of pause since the open utterance's last speech (0 while speaking)."""
        return self._silence

    def peek(self) -> SpeechSegment | None:
        """The open utterance as it will be if its pause goes on to end it, or None.

        Only once the pause covers the trailing pad: from then on, unless speech resumes,
        the finished segment has exactly these samples. Lets the stage start slow work early.
        """
        if not self._frames or self._last_speech < 0 or self._silence < self._pad:
            return None
        seg = self._segment(self._last_speech + 1 + self._pad, float("nan"), split=False)
        if not seg.continued and seg.speech_s * 1e3 < self.config.min_speech_ms:
            return None
        return seg

    def _finish(self, decided_at: float, split: bool) -> list[SpeechSegment]:
        frames, last = self._frames, self._last_speech
        continued = self._continued
        if last < 0:  # a split's remainder that held no speech
            self._reset()
            self._preroll.extend(frames[-self._pad :] if self._pad else [])
            return []
        end = len(frames) if split else min(len(frames), last + 1 + self._pad)
        segment = self._segment(end, decided_at, split)
        tail = frames[end:]
        self._reset()
        if split:
            self._continued = True
        else:
            # The trailing pause becomes the next utterance's pre-roll.
            self._preroll.extend(tail)
        if continued or segment.speech_s * 1e3 >= self.config.min_speech_ms:
            return [segment]
        self.discarded_short += 1
        return []

    def flush(self, t_end: float) -> list[SpeechSegment]:
        """End of stream: close an open utterance."""
        if not self._frames or self._last_speech < 0:
            self._reset()
            return []
        return self._finish(t_end, split=False)
