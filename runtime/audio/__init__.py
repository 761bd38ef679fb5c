"""The audio stage: sources -> Silero VAD -> utterances -> prosody clues + transcript.

Live use::

    clock = SessionClock()
    stage = AudioStage.from_bundle(Bundle.open(path), clock=clock, on_failure=...)
    stage.connect(on_utterance)          # called with each Utterance
    stage.start()
    with MicrophoneSource(MicrophoneConfig(device="USB"), clock=clock) as mic:
        for chunk in mic:                # AudioChunk, 16 kHz mono, session-clock time
            stage.put(chunk)

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
from emolive.runtime.audio.microphone import (
    InputDevice,
    Microphone,
    MicrophoneConfig,
    MicrophoneSource,
    list_input_devices,
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
    "InputDevice",
    "Microphone",
    "MicrophoneConfig",
    "MicrophoneSource",
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
    "list_input_devices",
    "measure",
    "open_audio_file",
]
