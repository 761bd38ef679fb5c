"""The voice's own say in fusion: a distribution over the labels where measurement supports
one, and None where it does not, which today is always.

What was measured (x86-64 AVX2, 2-core AMD EPYC; ``benchmarks/voice_clues.py``):

- on 96 acted emotional-speech clips kept apart from the project (8 emotions, neutral
  sentences), the lite reading of the voice alone (the LLM over the prosody clue words) was
  right 13.5% of the time, chance being 12.5%: 95 of 96 read "happy" (../shared/FACTS.md);
- on 80 synthetic clips made here (4 espeak-ng voices x neutral/happy/angry/sad/fear x 4
  emotion-free sentences, prosody set the way Murray & Arnott 1993 summarise vocal emotion),
  the same reading was right 13 of 80 (16%, chance 20%) with the clues as they were, and 9 of 80
  with clues relative to a ready baseline only; with those clues, "sad" clips (quieter, flatter,
  lower, slower than the speaker's baseline) still read "happy" 14 of 16 times. The clue
  words carry the direction of the voice; the LLM does not turn it into the label.

No labelled real speech is available to fit a mapping from prosody to the labels (the acted
set is held out, and rule-made synthetic speech would only teach back the rules it was made
with). So ``voice_distribution`` returns None unless it is given a ``VoiceModel`` fitted on
labelled speech: fusion must then leave the voice out of the label (it may still show its
clues), rather than give it a flat or hand-set distribution. ``VoiceModel.fit`` is here so the
evaluation can fit one (multinomial logistic regression over the speaker-relative measures,
in numpy) and measure whether it earns a place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Speaker-relative measures (ProsodyClues.relative): % change or difference vs the baseline.
FEATURES = (
    "f0_mean_hz",
    "f0_range_st",
    "loudness_db",
    "rate_syl_s",
    "jitter_pct",
    "shimmer_pct",
    "hnr_db",
    "pause_share",
)


def voice_features(evidence) -> np.ndarray | None:
    """Mean speaker-relative measures over the window's utterances whose speaker baseline was
    ready (a measure missing from one reads as the baseline: 0). None: no such utterance."""
    rows = []
    for u in evidence.utterances:
        p = getattr(u, "prosody", None)
        if p is None or not getattr(p, "baseline_ready", bool(p.relative)):
            continue
        rows.append([float(p.relative.get(k, 0.0)) for k in FEATURES])
    return np.mean(rows, axis=0) if rows else None


@dataclass(frozen=True)
class VoiceModel:
    """Softmax(W x + b) over ``labels`` for standardized ``voice_features``; ``fitted_on``
    names the labelled speech and the score it reached there (kept with the model)."""

    labels: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # [labels, features]
    bias: np.ndarray  # [labels]
    fitted_on: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = self.weights @ ((np.asarray(x, np.float64) - self.mean) / self.scale) + self.bias
        e = np.exp(z - z.max())
        return e / e.sum()

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: Sequence[str],
        labels: Sequence[str],
        fitted_on: str,
        l2: float = 1.0,
        steps: int = 2000,
        lr: float = 0.5,
    ) -> VoiceModel:
        """Multinomial logistic regression by gradient descent (x: [n, len(FEATURES)])."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(FEATURES) or len(x) != len(y):
            raise ValueError(f"x must be [n, {len(FEATURES)}] with one label per row")
        unknown = sorted(set(y) - set(labels))
        if unknown:
            raise ValueError(f"labels not in the label set: {unknown}")
        mean, scale = x.mean(0), x.std(0) + 1e-6
        xs = (x - mean) / scale
        onehot = np.eye(len(labels))[[list(labels).index(v) for v in y]]
        w = np.zeros((len(labels), x.shape[1]))
        b = np.zeros(len(labels))
        n = len(x)
        for _ in range(steps):
            z = xs @ w.T + b
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            g = p - onehot
            w -= lr * (g.T @ xs / n + l2 * w / n)
            b -= lr * g.mean(0)
        return cls(tuple(labels), mean, scale, w, b, fitted_on)


def voice_distribution(
    evidence, labels: Sequence[str] | None = None, model: VoiceModel | None = None
) -> np.ndarray | None:
    """The voice's distribution over ``labels`` (default: the model's), or None: no fitted
    model (the default; see the module docstring for the numbers), no utterance with a ready
    speaker baseline, or a label the model does not know."""
    if model is None:
        return None
    x = voice_features(evidence)
    if x is None:
        return None
    p = model.predict(x)
    if labels is None:
        return p
    index = {name: i for i, name in enumerate(model.labels)}
    if any(name not in index for name in labels):
        return None
    q = np.array([p[index[name]] for name in labels])
    return q / q.sum()
