"""The words' emotion head: a small numpy network over sentence embeddings -> FER's 7 labels.

The arrays (``words_head.npz``) are ``layer{i}.weight`` [in, out] and ``layer{i}.bias`` [out]
for i = 0..n-1, ReLU between layers, ``labels`` (FER's label names, the output order) and
``temperature`` (fitted on dev: logits / T before the softmax, so the probabilities are
calibrated). ``export/words_head.py`` trains and writes it; the card beside it
(``words_head.json``) says on what, with which hyper-parameters, and what it measured on dev.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime.names import FER_LABELS

HEAD_FILE = "words_head.npz"
HEAD_CARD_FILE = "words_head.json"


def shipped_head_dir() -> Path:
    """Where the package keeps the trained head (package data, copied into bundles)."""
    return Path(__file__).resolve().parent / "heads"


@dataclass(frozen=True)
class EmotionHead:
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    temperature: float

    def __post_init__(self) -> None:
        if not self.weights or len(self.weights) != len(self.biases):
            raise ValueError("a head needs one bias per weight matrix, at least one layer")
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or b.shape != (w.shape[1],):
                raise ValueError(f"layer {i}: weight {w.shape} and bias {b.shape} do not fit")
            if i and w.shape[0] != self.weights[i - 1].shape[1]:
                raise ValueError(f"layer {i} takes {w.shape[0]}, layer {i - 1} gives "
                                 f"{self.weights[i - 1].shape[1]}")  # fmt: skip
        if self.weights[-1].shape[1] != len(self.labels):
            raise ValueError(
                f"the head gives {self.weights[-1].shape[1]} scores for {len(self.labels)} labels"
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    @property
    def input_size(self) -> int:
        return self.weights[0].shape[0]

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """Raw scores [n, labels] (before the temperature) for embeddings [n, input_size]."""
        x = np.asarray(embeddings, np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"the head takes [n, {self.input_size}] embeddings, got {x.shape}")
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0.0)
        return x

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated probabilities [n, labels], each row summing to 1."""
        z = self.logits(embeddings) / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path | str) -> Path:
        arrays: dict[str, np.ndarray] = {
            "labels": np.array(self.labels),
            "temperature": np.array(self.temperature, np.float32),
        }
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"layer{i}.weight"] = np.asarray(w, np.float32)
            arrays[f"layer{i}.bias"] = np.asarray(b, np.float32)
        np.savez(path, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: Path | str) -> EmotionHead:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                files = set(data.files)
                n = sum(1 for k in files if k.endswith(".weight"))
                weights = tuple(data[f"layer{i}.weight"].astype(np.float32) for i in range(n))
                biases = tuple(data[f"layer{i}.bias"].astype(np.float32) for i in range(n))
                labels = tuple(str(x) for x in data["labels"])
                temperature = float(data["temperature"])
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path}: not a readable words head: {e}") from e
        try:
            head = cls(weights, biases, labels, temperature)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
        if set(head.labels) != set(FER_LABELS):
            raise ValueError(f"{path}: the head's labels {head.labels} are not FER's {FER_LABELS}")
        return head


def load_card(path: Path | str) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable head card: {e}") from e
