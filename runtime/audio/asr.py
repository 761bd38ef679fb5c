"""Speech to text per utterance: Whisper tiny.en in CTranslate2 form, via faster-whisper.

faster-whisper's own ``transcribe`` pads every input to Whisper's 30 s window, so a 3 s
utterance pays for 30 s of encoder work. CTranslate2's Whisper encoder accepts shorter
mel inputs, so ``window="fit"`` sizes the window to the utterance (rounded up to
``fit_step_s`` to keep shapes few): about 4x less work on short utterances, at the same word
error rate on the benchmark's sentences (benchmarks/audio.py measures both). Utterances
(or the pieces of one longer than the window) that share a window size go through the
encoder and decoder as one batch.

The model loads from a local folder only (a bundle's ``asr/`` or the fetched source); the
hub is never asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime import names
from emolive.runtime.media import AUDIO_RATE
from emolive.runtime.sources.errors import AudioDependencyError, missing_audio_extra

WHISPER_MAX_S = 30.0  # the encoder's positional embeddings cover 30 s (1500 x 20 ms)
_FRAMES_PER_S = 100  # mel frames per second
_HOP = AUDIO_RATE // _FRAMES_PER_S


@dataclass(frozen=True)
class AsrConfig:
    threads: int = 2
    compute_type: str = "int8"
    beam_size: int = 1
    window: str = "fit"  # "fit": sized to the utterance; "full": Whisper's 30 s, as trained
    fit_step_s: float = 1.0
    # At least this much silence after the speech: with less, Whisper takes the window's
    # end for speech cut short and repeats itself (benchmarks/audio.py: WER 32% at 0.5 s,
    # 9% at 3 s on VAD-cut utterances, for ~5% more time).
    fit_margin_s: float = 3.0
    max_piece_s: float = 28.0  # longer utterances are split into pieces of at most this
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    no_speech_certain: float = 0.9  # above this, no text whatever the decode (its "you")
    tokens_per_s: float = 8.0  # decode budget per second of audio: fast speech is ~6

    def __post_init__(self) -> None:
        if self.window not in ("fit", "full"):
            raise ValueError(f"ASR window must be 'fit' or 'full', got {self.window!r}")
        if not 1.0 <= self.max_piece_s <= WHISPER_MAX_S - 1.0:
            raise ValueError(f"max_piece_s must be in [1, {WHISPER_MAX_S - 1:.0f}] s")


@dataclass(frozen=True)
class Transcript:
    text: str
    pieces: int  # ASR windows the utterance needed
    window_s: float  # encoder window used (per piece)
    avg_logprob: float
    no_speech_prob: float

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "pieces": self.pieces,
            "window_s": self.window_s,
            "avg_logprob": round(self.avg_logprob, 3),
            "no_speech_prob": round(self.no_speech_prob, 3),
        }


def split_for_asr(samples: np.ndarray, max_s: float) -> list[np.ndarray]:
    """Pieces of at most ``max_s``, each cut at the quietest 100 ms of its last 5 seconds."""
    n_max = int(max_s * AUDIO_RATE)
    pieces = []
    rest = samples
    win = AUDIO_RATE // 10
    while len(rest) > n_max:
        lo = max(win, n_max - 5 * AUDIO_RATE)
        seg = rest[lo:n_max].astype(np.float64) ** 2
        energy = np.convolve(seg, np.ones(win), mode="valid")
        cut = lo + int(np.argmin(energy)) + win // 2
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return pieces


class WhisperTranscriber:
    """Loads once; ``transcribe(samples)`` or ``transcribe_batch([samples, ...])``."""

    def __init__(
        self, model_dir: Path | str, config: AsrConfig = AsrConfig(), device: str = "cpu"
    ) -> None:
        """``device``: the session's ("cpu", "cuda" or "tensorrt"); CTranslate2 runs on
        "cuda" for both GPU devices (it has no TensorRT path)."""
        self.model_dir = Path(model_dir)
        self.config = config
        self.device = "cuda" if device in ("cuda", "tensorrt") else "cpu"
        missing = [f for f in names.ASR_FILES if not (self.model_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.model_dir}: Whisper model folder lacks {missing}")
        # Belt and braces: faster-whisper loads a folder without the hub, and this keeps it so.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens
        except ImportError as e:
            raise missing_audio_extra("faster-whisper", "speech to text") from e
        try:
            self.model = WhisperModel(
                str(self.model_dir),
                device=self.device,
                compute_type=config.compute_type,
                cpu_threads=config.threads,
                local_files_only=True,
            )
        except Exception as e:  # CTranslate2 raises plain RuntimeError/ValueError
            raise AudioDependencyError(
                f"cannot load the Whisper model in {self.model_dir}: {e}"
            ) from e
        m = self.model
        self.tokenizer = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, "transcribe", "en")
        self.prompt = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]
        self.suppress = list(get_suppressed_tokens(self.tokenizer, [-1]))
        self.features = m.feature_extractor
        self._ct2 = __import__("ctranslate2")
        self.backend_info = {
            "asr": {
                "backend": "ctranslate2",
                "route": f"ctranslate2-{self.device}",
                "device": self.device,
                "precision": config.compute_type,
                "providers": [],
            }
        }

    @classmethod
    def from_bundle(
        cls, bundle, config: AsrConfig = AsrConfig(), runtime=None
    ) -> WhisperTranscriber:
        """``runtime``: the session's ``RuntimeConfig`` (None: the CPU)."""
        device = runtime.device if runtime is not None else "cpu"
        return cls(bundle.file(f"{names.ASR_DIR}/model.bin").parent, config, device)

    def window_frames(self, seconds: float) -> int:
        if self.config.window == "full":
            return int(WHISPER_MAX_S * _FRAMES_PER_S)
        step = self.config.fit_step_s
        s = np.ceil((seconds + self.config.fit_margin_s) / step) * step
        return int(min(WHISPER_MAX_S, s) * _FRAMES_PER_S)

    def _mel(self, samples: np.ndarray, frames: int) -> np.ndarray:
        # Pad the audio, not the mel: zeros in normalized log-mel are not silence, and the
        # decoder reads them as more speech (it repeats the sentence). Whisper itself pads
        # the waveform.
        n = frames * _HOP
        x = np.zeros(n, np.float32)
        x[: min(n, len(samples))] = samples[:n]
        return self.features(x, padding=0)[:, :frames]

    def _run(self, pieces: list[np.ndarray], frames: int) -> list[tuple[str, float, float, float]]:
        """(text, avg_logprob, no_speech_prob, window_s) per piece: one batch, one window."""
        mel = np.stack([self._mel(p, frames) for p in pieces])
        window_s = frames / _FRAMES_PER_S
        longest_s = max(len(p) for p in pieces) / AUDIO_RATE
        c = self.config
        result = self.model.model.generate(
            self._ct2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32)),
            [self.prompt] * len(pieces),
            beam_size=c.beam_size,
            # A budget from the speech's length: a decode that loops stops early.
            max_length=min(448, len(self.prompt) + 10 + int(c.tokens_per_s * longest_s)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self.suppress,
        )
        out = []
        for r in result:
            tokens = [t for t in r.sequences_ids[0] if t < self.tokenizer.eot]
            avg_logprob = r.scores[0] / (len(tokens) + 1) if r.scores else 0.0
            text = self.tokenizer.decode(tokens).strip()
            # Whisper's own rule: silence-like audio with an unsure decode is no speech.
            unsure = r.no_speech_prob > c.no_speech_threshold and avg_logprob < c.logprob_threshold
            if unsure or r.no_speech_prob > c.no_speech_certain:
                text = ""
            if not any(ch.isalnum() for ch in text):
                text = ""  # " . . ." is what Whisper writes for noise
            out.append((text, float(avg_logprob), float(r.no_speech_prob), window_s))
        return out

    def transcribe_batch(self, utterances: list[np.ndarray]) -> list[Transcript]:
        """One transcript per utterance; long ones are split, every piece in one batch."""
        if not utterances:
            return []
        pieces, owner = [], []
        for i, u in enumerate(utterances):
            u = np.asarray(u, np.float32)
            if u.ndim != 1:
                raise ValueError(f"ASR input {i} must be mono [n] samples, got shape {u.shape}")
            for p in split_for_asr(u, self.config.max_piece_s):
                pieces.append(p)
                owner.append(i)
        # Batch only pieces that share a window: padding one to another's window would
        # change its transcript, and batching must not.
        windows = [self.window_frames(len(p) / AUDIO_RATE) for p in pieces]
        results: list = [None] * len(pieces)
        for w in sorted(set(windows)):
            idx = [k for k, wk in enumerate(windows) if wk == w]
            for k, r in zip(idx, self._run([pieces[k] for k in idx], w), strict=True):
                results[k] = r
        grouped: list[list[tuple]] = [[] for _ in utterances]
        for i, r in zip(owner, results, strict=True):
            grouped[i].append(r)
        return [
            Transcript(
                text=" ".join(r[0] for r in g if r[0]),
                pieces=len(g),
                window_s=max(r[3] for r in g),
                avg_logprob=float(np.mean([r[1] for r in g])),
                no_speech_prob=float(min(r[2] for r in g)),
            )
            for g in grouped
        ]

    def transcribe(self, samples: np.ndarray) -> Transcript:
        return self.transcribe_batch([samples])[0]
