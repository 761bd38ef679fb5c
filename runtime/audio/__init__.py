"""The audio stage: audio chunks -> Silero VAD -> utterances -> prosody clues + transcript.

Live use::

    clock = SessionClock()
    stage = AudioStage.from_bundle(Bundle.open(path), clock=clock, on_failure=...)
    stage.connect(on_utterance)          # called with each Utterance
    stage.start()
    with MicrophoneSource(MicrophoneConfig(device="USB"), clock=clock) as mic:
        for chunk in mic:                # AudioChunk, 16 kHz mono, session-clock time
            stage.put(chunk)

Capture (microphone, audio files, WAV, resampling) lives in ``emolive.runtime.sources``, which
knows no inference. Optional packages (the ``audio`` extra): faster-whisper (with CTranslate2)
for speech to text, imported where it is used, with an error that says what to install.

The names below are re-exported lazily (PEP 562): importing this package loads no VAD, ASR,
audio stage or ONNX Runtime until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emolive.runtime.audio.analyzers import (
        AudioEmbeddingAnalyzer,
        ProsodyAnalyzer,
        TranscriptAnalyzer,
        UtteranceAnalyzer,
    )
    from emolive.runtime.audio.asr import AsrConfig, Transcript, WhisperTranscriber
    from emolive.runtime.audio.clues import ProsodyClues, ProsodyDescriber, SpeakerBaseline
    from emolive.runtime.audio.prosody import ProsodyConfig, ProsodyMeasures, measure
    from emolive.runtime.audio.stage import AudioStage, AudioStageConfig, Utterance
    from emolive.runtime.audio.utterances import SegmenterConfig, SpeechSegment
    from emolive.runtime.audio.vad import SileroVad

# name -> the submodule (under emolive.runtime.audio) that defines it
_WHERE = {
    "AudioEmbeddingAnalyzer": "analyzers",
    "ProsodyAnalyzer": "analyzers",
    "TranscriptAnalyzer": "analyzers",
    "UtteranceAnalyzer": "analyzers",
    "AsrConfig": "asr",
    "Transcript": "asr",
    "WhisperTranscriber": "asr",
    "ProsodyClues": "clues",
    "ProsodyDescriber": "clues",
    "SpeakerBaseline": "clues",
    "ProsodyConfig": "prosody",
    "ProsodyMeasures": "prosody",
    "measure": "prosody",
    "AudioStage": "stage",
    "AudioStageConfig": "stage",
    "Utterance": "stage",
    "SegmenterConfig": "utterances",
    "SpeechSegment": "utterances",
    "SileroVad": "vad",
}

__all__ = [
    "AsrConfig",
    "AudioEmbeddingAnalyzer",
    "AudioStage",
    "AudioStageConfig",
    "ProsodyAnalyzer",
    "ProsodyClues",
    "ProsodyConfig",
    "ProsodyDescriber",
    "ProsodyMeasures",
    "SegmenterConfig",
    "SileroVad",
    "SpeakerBaseline",
    "SpeechSegment",
    "Transcript",
    "TranscriptAnalyzer",
    "Utterance",
    "UtteranceAnalyzer",
    "WhisperTranscriber",
    "measure",
]


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
