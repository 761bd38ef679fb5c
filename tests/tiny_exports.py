"""What the LLM profiles' export tests (affectgpt, emotion_llama) build on the spot: training
checkpoints as both runners save them (``torch.save({"model", "optimizer", "config",
"scaler", "epoch"})`` with every storage tagged ``cuda:0``), the tiny HuBERT both audio
folders hold, and a bundle exported from a tiny checkpoint and its folders.

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


def save_tiny_hubert(folder: Path, hidden: int, layers: int) -> None:
    """A random-weight ``HubertModel`` in Hugging Face layout: 2 heads, 2 small conv layers."""
    import transformers as tr

    config = tr.HubertConfig(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=40,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer",
    )  # fmt: skip
    tr.HubertModel(config).save_pretrained(folder)


def export_tiny(profile: str, out: Path, checkpoint: Path, folders: dict, stages=None,
                **options) -> dict:  # fmt: skip
    """``export_profile`` of ``profile`` into ``out`` from ``checkpoint`` and the vision,
    audio and llm ``folders``; ``options`` replace or add to those. Returns the checks."""
    from emolive.export.profiles import export_profile

    given = {"checkpoint": checkpoint, "vision": folders["vision"], "audio": folders["audio"],
             "llm": folders["llm"], **options}  # fmt: skip
    return export_profile(profile, out, stages, log=lambda m: None, options=given)
