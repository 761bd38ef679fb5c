"""Emotion-LLaMA's inference path in torch, from local folders and a checkpoint.

The reference every exported graph is checked against, written from the release code
(minigpt4/models/minigpt_v2.py ``encode_img``, minigpt_base.py ``get_context_emb``):
the first frame at 448 px through EVA ViT-g and ``ln_vision``; CLS -> ``cls_tk_llama_proj``,
the 1024 patches in runs of 4 (row-major, concatenated: 4·D wide) -> ``llama_proj``: 256
tokens; the three utterance features -> ``feats_llama_proj1/2/3``; the LoRA merged into
LLaMA. The release loads the features from files made offline (``mae_340_UTT``,
``maeV_399_UTT``, ``HL-UTT``); here their extractors are part of the model, so a bundle runs
from raw frames and audio (how each is pooled: the towers' docstrings).

The ``vision`` folder holds ``eva_vit_g.pth`` plus the MAE and VideoMAE encoders in
Hugging Face layout (``mae/``, ``videomae/``); ``audio`` is chinese-hubert-large's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolive.export.affectgpt.model import EncoderFolderError, _folder, _linear
from emolive.export.checkpoint import merge_lora
from emolive.export.emotion_llama.checkpoint import LORA_TARGETS, Checkpoint, CheckpointError
from emolive.export.emotion_llama.eva import load_eva
from emolive.runtime.emotion_llama import spec

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # BLIP-2's image processors
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVA_FILE = "eva_vit_g.pth"
MAE_DIR, VIDEOMAE_DIR = "mae", "videomae"


class Normalised(nn.Module):
    """BGR 0..255 pixels -> RGB, /255, then (x - mean) / std (None: no mean/std)."""

    def __init__(self, mean=None, std=None):
        super().__init__()
        mean = (0.0, 0.0, 0.0) if mean is None else mean
        std = (1.0, 1.0, 1.0) if std is None else std
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.flip(1) / 255.0 - self.mean) / self.std


def _image_norm(folder: Path, default):
    """The folder's preprocessor_config.json mean/std, else ``default`` ((mean, std) or None)."""
    path = folder / "preprocessor_config.json"
    if path.is_file():
        cfg = json.loads(path.read_text())
        if cfg.get("do_normalize", True) and "image_mean" in cfg:
            return tuple(cfg["image_mean"]), tuple(cfg["image_std"])
        return None
    return default


class VisionTower(nn.Module):
    """pixels [1, 3, 448, 448] (the window's first frame) -> (patches [256, H], cls [1, H])."""

    def __init__(self, eva, ckpt: Checkpoint):
        super().__init__()
        self.norm = Normalised(CLIP_MEAN, CLIP_STD)
        self.eva = eva
        d = ckpt.sizes.vit
        self.ln_vision = nn.LayerNorm(d)  # MiniGPT's LayerNorm: eps 1e-5; frozen, so unsaved
        with torch.no_grad():
            if "ln_vision.weight" in ckpt.weights:
                self.ln_vision.weight.copy_(torch.from_numpy(ckpt.weights["ln_vision.weight"]))
                self.ln_vision.bias.copy_(torch.from_numpy(ckpt.weights["ln_vision.bias"]))
        self.proj = _linear(ckpt, "llama_proj")
        self.cls_proj = _linear(ckpt, "cls_tk_llama_proj")

    def forward(self, pixels: torch.Tensor):
        x = self.ln_vision(self.eva(self.norm(pixels)))
        patches = x[:, 1:]
        grouped = patches.reshape(patches.shape[0], patches.shape[1] // 4, 4 * patches.shape[2])
        return self.proj(grouped)[0], self.cls_proj(x[:, 0])


class FaceTower(nn.Module):
    """pixels [n, 3, 224, 224] -> token [1, H]: ViTMAE (nothing masked, patches in order),
    the final-norm CLS of each frame (MAE's ``global_pool=False`` feature), mean over the
    frames (the ``_UTT`` utterance level)."""

    def __init__(self, mae, ckpt: Checkpoint, norm):
        super().__init__()
        self.norm = Normalised(*(norm or (None, None)))
        self.mae = mae
        self.proj = _linear(ckpt, "feats_llama_proj1")
        self.patches = (mae.config.image_size // mae.config.patch_size) ** 2

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        noise = torch.arange(self.patches, dtype=torch.float32).expand(pixels.shape[0], -1)
        out = self.mae(pixel_values=self.norm(pixels), noise=noise)
        return self.proj(out.last_hidden_state[:, 0].mean(0, keepdim=True))


class VideoTower(nn.Module):
    """pixels [16, 3, 224, 224] (8 segments x 2 frames) -> token [1, H]: VideoMAE, the mean
    of its output tokens."""

    def __init__(self, videomae, ckpt: Checkpoint, norm):
        super().__init__()
        self.norm = Normalised(*(norm or (None, None)))
        self.videomae = videomae
        self.proj = _linear(ckpt, "feats_llama_proj2")

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.videomae(pixel_values=self.norm(pixels)[None])
        return self.proj(out.last_hidden_state.mean(1))


class AudioTower(nn.Module):
    """samples [n] 16 kHz -> token [1, H]: the utterance normalised as Wav2Vec2's feature
    extractor does (zero mean, unit variance, +1e-7) when the folder says do_normalize,
    HuBERT's last state (the release demo's ``hidden_states[-1]`` on transformers 4.x, i.e.
    ``last_hidden_state``), mean over time."""

    def __init__(self, hubert, ckpt: Checkpoint, normalize: bool):
        super().__init__()
        self.hubert = hubert
        self.normalize = normalize
        self.proj = _linear(ckpt, "feats_llama_proj3")

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        x = samples[None]
        if self.normalize:
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
        return self.proj(self.hubert(x).last_hidden_state.mean(1))


@dataclass
class EmotionLlama:
    vision: VisionTower
    face: FaceTower
    video: VideoTower
    audio: AudioTower
    llm: object  # LlamaForCausalLM with the LoRA merged, fp32
    notes: list[str]


def _hf(cls, folder: Path, what: str):
    model = cls.from_pretrained(_folder(folder, what), dtype=torch.float32)
    return model.eval()


def build(ckpt: Checkpoint, vision_dir, audio_dir, llm_dir) -> EmotionLlama:
    """The model from its folders and checkpoint; sizes that disagree are refused by key."""
    import transformers as tr

    vision_dir, audio_dir, llm_dir = Path(vision_dir), Path(audio_dir), Path(llm_dir)
    if not (vision_dir / EVA_FILE).is_file():
        raise EncoderFolderError(vision_dir, f"vision folder has no {EVA_FILE}")
    eva, left_out = load_eva(vision_dir / EVA_FILE, spec.IMAGE_SIZE)
    mae = _hf(tr.ViTMAEModel, vision_dir / MAE_DIR, "MAE (vision/mae)")
    videomae = _hf(tr.VideoMAEModel, vision_dir / VIDEOMAE_DIR, "VideoMAE (vision/videomae)")
    hubert = _hf(tr.HubertModel, audio_dir, "audio")
    llm = _hf(tr.AutoModelForCausalLM, llm_dir, "llm")
    if llm.config.model_type != "llama":
        raise EncoderFolderError(llm_dir, f"llm folder holds model_type "
                                 f"{llm.config.model_type!r}, Emotion-LLaMA's is 'llama'")  # fmt: skip
    if eva.shape.grid**2 % 4:
        raise EncoderFolderError(vision_dir, f"{eva.shape.grid**2} EVA patches do not group by 4")
    s = ckpt.sizes
    for key, got, want, what in (
        ("cls_tk_llama_proj.weight", (s.hidden, s.vit), (llm.config.hidden_size, eva.shape.width),
         f"the LLM's hidden size ({llm_dir}) and EVA's width ({vision_dir / EVA_FILE})"),
        ("feats_llama_proj1.weight", s.face, mae.config.hidden_size,
         f"MAE's hidden size ({vision_dir / MAE_DIR})"),
        ("feats_llama_proj2.weight", s.video, videomae.config.hidden_size,
         f"VideoMAE's hidden size ({vision_dir / VIDEOMAE_DIR})"),
        ("feats_llama_proj3.weight", s.audio, hubert.config.hidden_size,
         f"HuBERT's hidden size ({audio_dir})"),
    ):  # fmt: skip
        if got != want:
            raise CheckpointError(ckpt.path, f"key {key!r} expects {got}; {what} gives {want}")
    mae.config.mask_ratio = 0.0
    merge_lora(llm, ckpt, LORA_TARGETS)
    notes = [f"{EVA_FILE}: {len(left_out)} key(s) not used ({left_out[:4]})"] if left_out else []
    pre = audio_dir / "preprocessor_config.json"
    normalize = json.loads(pre.read_text()).get("do_normalize", True) if pre.is_file() else True
    return EmotionLlama(
        VisionTower(eva, ckpt).eval(),
        FaceTower(mae, ckpt, _image_norm(vision_dir / MAE_DIR, (IMAGENET_MEAN, IMAGENET_STD))),
        VideoTower(videomae, ckpt, _image_norm(vision_dir / VIDEOMAE_DIR, None)),
        AudioTower(hubert, ckpt, bool(normalize)).eval(),
        llm, notes,
    )  # fmt: skip


def embed_prompt(llm, pieces: list[list[int]], visual: np.ndarray) -> torch.Tensor:
    """``get_context_emb``: the text pieces' embeddings with ``visual`` [260, H] between
    them (one placeholder: two pieces). [1, n, H]"""
    table = llm.get_input_embeddings()
    with torch.no_grad():
        parts = [table(torch.tensor([ids]))[0] for ids in pieces]
        vis = torch.as_tensor(visual, dtype=parts[0].dtype)
        return torch.cat([parts[0], vis, *parts[1:]])[None]
