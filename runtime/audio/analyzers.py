"""What the audio stage runs on each utterance: one small protocol, three analyzers.

An analyzer takes a batch of ``SpeechSegment`` s and returns one result per segment; the stage
stores it on the ``Utterance`` under the analyzer's ``name`` and times it. A ``pure`` one
(result from the samples alone) may be started before the utterance's end is decided. Prosody and ASR
are analyzers; the affectgpt profile's learned audio encoder (HuBERT-style, exported to ONNX)
plugs in as one more, ``AudioEmbeddingAnalyzer``, with no change to the stage.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from emolive.runtime.audio.asr import WhisperTranscriber
from emolive.runtime.audio.clues import ProsodyDescriber
from emolive.runtime.audio.prosody import ProsodyConfig, measure
from emolive.runtime.audio.utterances import SpeechSegment

PROSODY = "prosody"
TRANSCRIPT = "transcript"
AUDIO_EMBEDDING = "audio_embedding"


class UtteranceAnalyzer(Protocol):
    name: str
    # True when the result depends on the samples alone: the stage may then run it early,
    # before the utterance's end is decided (speculation.py), and drop it if speech resumes.
    pure: bool

    def analyze(self, segments: list[SpeechSegment]) -> list[Any]: ...


class ProsodyAnalyzer:
    """Prosody measures and clues, relative to the running baseline of this stage's speaker."""

    name = PROSODY
    pure = False  # compares with, then updates, the speaker's baseline: in order, once

    def __init__(
        self, config: ProsodyConfig | None = None, describer: ProsodyDescriber | None = None
    ) -> None:
        self.config = config or ProsodyConfig()
        self.describer = describer or ProsodyDescriber()

    def analyze(self, segments: list[SpeechSegment]) -> list[Any]:
        # In order: each utterance is compared with the baseline of those before it.
        return [self.describer(measure(s.samples, self.config)) for s in segments]


class TranscriptAnalyzer:
    name = TRANSCRIPT
    pure = True

    def __init__(self, transcriber: WhisperTranscriber) -> None:
        self.transcriber = transcriber

    def analyze(self, segments: list[SpeechSegment]) -> list[Any]:
        return self.transcriber.transcribe_batch([s.samples for s in segments])


class AudioEmbeddingAnalyzer:
    """Runs an audio-encoder graph (``run(dict) -> dict``, e.g. an OrtGraph) per utterance.

    The graph takes raw 16 kHz samples ``[1, n]`` (HuBERT's input_values; normalized to zero
    mean and unit variance when ``normalize``) and returns ``[1, tokens, dim]`` or ``[1, dim]``;
    the result is kept as float32 for the reasoner to splice in.
    """

    def __init__(
        self,
        graph,
        input_name: str,
        output_name: str,
        name: str = AUDIO_EMBEDDING,
        normalize: bool = True,
    ) -> None:
        self.graph = graph
        self.input_name = input_name
        self.output_name = output_name
        self.name = name
        self.normalize = normalize
        self.pure = True

    def analyze(self, segments: list[SpeechSegment]) -> list[Any]:
        out = []
        for s in segments:
            x = s.samples.astype(np.float32)
            if self.normalize:
                x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
            y = self.graph.run({self.input_name: x[None, :]})[self.output_name]
            out.append(np.asarray(y, np.float32)[0])
        return out
