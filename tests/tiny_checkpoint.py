"""Training checkpoints as AffectGPT's and Emotion-LLaMA's runners save them, for the tests
of both profiles: ``torch.save({"model", "optimizer", "config", "scaler", "epoch"})`` with
every storage tagged ``cuda:0``.

The real checkpoints are saved from the GPU. A tagger registered with torch.serialization
(its public API for storage locations) tags ours the same way while ``saved_from_cuda`` is
set, so the files load here only as the real ones do, with map_location="cpu". Registered
once, on import; it answers None (other taggers decide) otherwise.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import torch

_FROM_CUDA = threading.local()


def _cuda_tag(storage) -> str | None:
    return "cuda:0" if getattr(_FROM_CUDA, "on", False) else None


torch.serialization.register_package(-100, _cuda_tag, lambda storage, location: None)


@contextmanager
def saved_from_cuda():
    _FROM_CUDA.on = True
    try:
        yield
    finally:
        _FROM_CUDA.on = False


def write_training_checkpoint(path: Path, state: dict, **entries) -> Path:
    """The runner's checkpoint dict with ``state`` as its trainable weights and ``entries``
    (``config``, ``epoch``, ...) beside it."""
    blob = {"model": state, "optimizer": {}, "scaler": None, **entries}
    with saved_from_cuda():
        torch.save(blob, path)
    return path
