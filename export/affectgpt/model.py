"""AffectGPT's inference path in torch, from local Hugging Face folders and a checkpoint.

This is the reference every exported graph is checked against, written from the release
code's behaviour (FACTS.md, "AffectGPT and Emotion-LLaMA"): CLIP ``get_image_features`` on
8 frames or face crops, HuBERT's mean of its last 4 hidden states, attention pooling with no
softmax, the fusion over the time means, the LoRA merged into the LLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolive.export.affectgpt.checkpoint import (
    LORA_TARGETS,
    Checkpoint,
    CheckpointError,
    perspective_keys,
)
from emolive.export.checkpoint import merge_lora

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")  # fmt: skip


class EncoderFolderError(ValueError):
    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")


def _folder(path: Path | str, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise EncoderFolderError(path, f"no such {what} folder")
    if not (path / "config.json").is_file():
        raise EncoderFolderError(path, f"{what} folder has no config.json (Hugging Face layout)")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise EncoderFolderError(
            path, f"{what} folder has no weights (none of {', '.join(WEIGHT_FILES)})"
        )
    return path


def load_vision(path: Path | str):
    """The full ``CLIPModel`` (AffectGPT loads it with AutoModel for its visual_projection)."""
    from transformers import AutoModel, CLIPModel

    model = AutoModel.from_pretrained(_folder(path, "vision"), dtype=torch.float32)
    if not isinstance(model, CLIPModel):
        raise EncoderFolderError(
            path, f"vision folder holds a {type(model).__name__}, not a CLIPModel"
        )
    return model.eval()


def load_audio(path: Path | str):
    from transformers import HubertModel

    folder = _folder(path, "audio")
    model = HubertModel.from_pretrained(folder, dtype=torch.float32)
    if model.config.num_hidden_layers < 3:
        raise EncoderFolderError(path, "HuBERT needs at least 3 layers (mean of the last 4 states)")
    return model.eval()


def load_llm(path: Path | str):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(_folder(path, "llm"), dtype=torch.float32)
    if model.config.model_type != "qwen2":
        raise EncoderFolderError(path, f"llm folder holds model_type {model.config.model_type!r}, "
                                       "AffectGPT's is 'qwen2'")  # fmt: skip
    return model.eval()


def _linear(ckpt: Checkpoint, name: str) -> nn.Linear:
    w, b = ckpt.linear(name)
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


class VisionTower(nn.Module):
    """pixels [n, 3, 224, 224] in 0..255, BGR (as cv2 gives them) -> (token [1, H], mean feature
    [1, Dv]). ``rgb``: frames are fed RGB (the frame model); face crops stay BGR (the face model
    reads its crop files with cv2 and never converts)."""

    def __init__(self, clip, ckpt: Checkpoint, rgb: bool, with_features: bool = False):
        super().__init__()
        self.clip = clip
        self.rgb = rgb
        self.with_features = with_features  # also return the CLIP features [n, Dv]
        self.score = _linear(ckpt, "video_attention_mlp")
        self.proj = _linear(ckpt, "affectgpt_proj")
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255.0)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.flip(1) if self.rgb else pixels
        x = (x - self.mean) / self.std
        out = self.clip.get_image_features(pixel_values=x)
        return getattr(out, "pooler_output", out)  # transformers 5.x: an output object

    def forward(self, pixels: torch.Tensor):
        f = self.features(pixels)  # [n, Dv]
        pooled = (self.score(f) * f).sum(0, keepdim=True)  # no softmax
        if self.with_features:
            return self.proj(pooled), f.mean(0, keepdim=True), f
        return self.proj(pooled), f.mean(0, keepdim=True)


class PerspectiveHead(nn.Module):
    """An extra visual perspective: CLIP features [n, Dv] -> its token [1, H], pooled as
    AffectGPT pools frames (scores with no softmax); ``temporal`` pools the differences of
    consecutive features [n - 1, Dv] instead."""

    def __init__(self, ckpt: Checkpoint, perspective: str):
        super().__init__()
        attention, proj = perspective_keys(perspective)
        self.temporal = perspective == "temporal"
        self.score = _linear(ckpt, attention)
        self.proj = _linear(ckpt, proj)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        f = features[1:] - features[:-1] if self.temporal else features
        return self.proj((self.score(f) * f).sum(0, keepdim=True))


class AudioTower(nn.Module):
    """clips [8, 32000] raw 16 kHz -> (token [1, H], mean feature [1, Da])."""

    def __init__(self, hubert, ckpt: Checkpoint):
        super().__init__()
        self.hubert = hubert
        self.score = _linear(ckpt, "audio_attention_mlp")
        self.proj = _linear(ckpt, "audio_llama_proj")

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        # The clips are normalised jointly: one mean and variance over all their samples.
        x = (clips - clips.mean()) / torch.sqrt(clips.var(unbiased=False) + 1e-7)
        out = self.hubert(x, output_hidden_states=True)
        # Mean of the last 4 states, the last being the final-LayerNorm output: on
        # transformers 5.x hidden_states[-1] is the un-normalised one, so take
        # last_hidden_state for it.
        states = [*out.hidden_states[-4:-1], out.last_hidden_state]
        return torch.stack(states).mean(0).mean(1)  # [8, Da]

    def forward(self, clips: torch.Tensor):
        z = self.features(clips)
        pooled = (self.score(z) * z).sum(0, keepdim=True)
        return self.proj(pooled), z.mean(0, keepdim=True)


class Fusion(nn.Module):
    """(video mean [1, Dv], audio mean [1, Da]) -> the <MultiHere> token [1, H]."""

    def __init__(self, ckpt: Checkpoint):
        super().__init__()
        self.video = _linear(ckpt, "multi_video_embs")
        self.audio = _linear(ckpt, "multi_audio_embs")
        self.mlp = _linear(ckpt, "attention_mlp")
        self.fc = _linear(ckpt, "fc_att")
        self.proj = _linear(ckpt, "multi_llama_proj")

    def forward(self, video_mean: torch.Tensor, audio_mean: torch.Tensor) -> torch.Tensor:
        mv, ma = self.video(video_mean), self.audio(audio_mean)
        w = self.fc(self.mlp(torch.cat([mv, ma], dim=-1)))  # no activation, no softmax
        return self.proj(w[:, :1] * mv + w[:, 1:2] * ma)


@dataclass
class AffectGpt:
    vision: VisionTower
    audio: AudioTower
    fusion: Fusion
    llm: object  # Qwen2ForCausalLM with the LoRA merged, fp32
    views: dict = field(default_factory=dict)  # extra perspective -> PerspectiveHead


def build(ckpt: Checkpoint, vision_dir, audio_dir, llm_dir, mode: str) -> AffectGpt:
    """The model from its folders and checkpoint; sizes that disagree are refused by key."""
    clip, hubert, llm = load_vision(vision_dir), load_audio(audio_dir), load_llm(llm_dir)
    s = ckpt.sizes
    checks = (
        ("affectgpt_proj.weight", "[H, Dv]", (s.hidden, s.video),
         (llm.config.hidden_size, clip.config.projection_dim),
         f"the LLM's hidden size ({llm_dir}) and CLIP's projection_dim ({vision_dir})"),
        ("audio_llama_proj.weight", "[H, Da]", (s.hidden, s.audio),
         (llm.config.hidden_size, hubert.config.hidden_size),
         f"the LLM's hidden size ({llm_dir}) and HuBERT's hidden size ({audio_dir})"),
    )  # fmt: skip
    for key, form, got, want, what in checks:
        if got != want:
            raise CheckpointError(
                ckpt.path, f"key {key!r} {form} is {list(got)}; {what} give {list(want)}"
            )
    if mode in ckpt.perspectives:
        attention, proj = perspective_keys(mode)
        raise CheckpointError(
            ckpt.path, f"keys '{attention}' / '{proj}' name the {mode} perspective, which is "
            "this model's own (video_attention_mlp / affectgpt_proj)",
        )  # fmt: skip
    merge_lora(llm, ckpt, LORA_TARGETS)
    views = {p: PerspectiveHead(ckpt, p).eval() for p in ckpt.perspectives}
    return AffectGpt(
        VisionTower(clip, ckpt, rgb=mode == "frame", with_features=bool(views)).eval(),
        AudioTower(hubert, ckpt).eval(),
        Fusion(ckpt).eval(),
        llm,
        views,
    )


def splice(llm, ids: list[int], tokens: dict[int, np.ndarray]) -> torch.Tensor:
    """AffectGPT's prompt embedding: placeholder ids -> 0, embed, then each placeholder's row
    replaced by its modality token. [1, n, H]"""
    t = torch.tensor(ids)
    safe = torch.where(torch.isin(t, torch.tensor(list(tokens))), torch.zeros_like(t), t)
    with torch.no_grad():
        emb = llm.get_input_embeddings()(safe[None]).clone()
        for tid, vec in tokens.items():
            emb[0, t == tid] = torch.as_tensor(vec, dtype=emb.dtype).reshape(1, -1)
    return emb


def greedy(llm, embeds: torch.Tensor, steps: int, stop_ids=()) -> list[int]:
    """Greedy tokens after a spliced prompt, with the model's own KV cache."""
    out: list[int] = []
    with torch.no_grad():
        res = llm(inputs_embeds=embeds, use_cache=True)
        past = res.past_key_values
        for _ in range(steps):
            tid = int(res.logits[0, -1].argmax())
            if tid in stop_ids:
                break
            out.append(tid)
            res = llm(input_ids=torch.tensor([[tid]]), past_key_values=past, use_cache=True)
            past = res.past_key_values
    return out
