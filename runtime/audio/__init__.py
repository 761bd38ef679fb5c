"""The audio stage: sources -> Silero VAD -> utterances -> prosody clues + transcript.

Optional packages (the ``audio`` extra): PyAudio for the microphone, faster-whisper (with
CTranslate2 and PyAV) for speech to text and media files. Each is imported where it is used,
with an error that says what to install.
"""

from emolive.runtime.audio.analyzers import (
    AudioEmbeddingAnalyzer,
    ProsodyAnalyzer,
    TranscriptAnalyzer,
    UtteranceAnalyzer,
)
from emolive.runtime.audio.asr import AsrConfig, Transcript, WhisperTranscriber
from emolive.runtime.audio.clues import ProsodyClues, ProsodyDescriber, SpeakerBaseline
from emolive.runtime.audio.errors import (
    AudioDependencyError,
    AudioDeviceError,
    AudioSourceError,
    NoAudioTrack,
)
from emolive.runtime.audio.prosody import ProsodyConfig, ProsodyMeasures, measure
from emolive.runtime.audio.sources import (
    FileSourceConfig,
    MediaAudioSource,
    SyntheticAudioSource,
    WavSource,
    open_audio_file,
)
from emolive.runtime.audio.stage import AudioStage, AudioStageConfig, Utterance
from emolive.runtime.audio.utterances import SegmenterConfig, SpeechSegment
from emolive.runtime.audio.vad import SileroVad

__all__ = [
    "AsrConfig",
    "AudioDependencyError",
    "AudioDeviceError",
    "AudioEmbeddingAnalyzer",
    "AudioSourceError",
    "AudioStage",
    "AudioStageConfig",
    "FileSourceConfig",
    "MediaAudioSource",
    "NoAudioTrack",
    "ProsodyAnalyzer",
    "ProsodyClues",
    "ProsodyConfig",
    "ProsodyDescriber",
    "ProsodyMeasures",
    "SegmenterConfig",
    "SileroVad",
    "SpeakerBaseline",
    "SpeechSegment",
    "SyntheticAudioSource",
    "Transcript",
    "TranscriptAnalyzer",
    "Utterance",
    "UtteranceAnalyzer",
    "WavSource",
    "WhisperTranscriber",
    "measure",
    "open_audio_file",
]
