"""EVA-CLIP ViT-g as MiniGPT-v2 runs it, written from its architecture and key names.

``eva_vit_g.pth`` (LAVIS/BLIP-2's file) is a plain state dict: ``cls_token`` [1, 1, D],
``pos_embed`` [1, 1 + g², D] (g = 16: made for 224 px), ``patch_embed.proj`` (a Conv2d with
kernel = stride = patch), and per block ``norm1``, ``attn.qkv.weight`` [3D, D] with
``attn.q_bias`` / ``attn.v_bias`` (k has no bias), ``attn.proj``, ``norm2``, ``mlp.fc1`` /
``mlp.fc2`` (GELU). Pre-norm blocks, LayerNorm eps 1e-6, no final norm, heads of 88 channels
(1408 / 16). MiniGPT-v2 builds 39 blocks at 448 px: blocks past the 39th in a file are left
out (BLIP-2 drops EVA-CLIP's last layer), and the position grid is resized bicubically to
448 / patch, as its ``interpolate_pos_embed`` does. Every other size comes from the file.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HEAD_DIM = 88
MAX_BLOCKS = 39  # create_eva_vit_g(depth=39)
EPS = 1e-6


class EvaFileError(ValueError):
    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class EvaShape:
    width: int
    patch: int
    grid: int  # patches per side at the model's image size
    blocks: int
    mlp: int
    heads: int


class Block(nn.Module):
    def __init__(self, width: int, mlp: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, eps=EPS)
        self.qkv = nn.Linear(width, 3 * width)  # bias: q_bias | 0 | v_bias
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=EPS)
        self.fc1 = nn.Linear(width, mlp)
        self.fc2 = nn.Linear(mlp, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1)
        y = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class EvaVit(nn.Module):
    """pixels [n, 3, S, S] normalised -> tokens [n, 1 + g², D] (CLS first), no final norm."""

    def __init__(self, shape: EvaShape):
        super().__init__()
        self.shape = shape
        d = shape.width
        self.patch_embed = nn.Conv2d(3, d, shape.patch, shape.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + shape.grid**2, d))
        self.blocks = nn.ModuleList(Block(d, shape.mlp, shape.heads) for _ in range(shape.blocks))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x


def _state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise EvaFileError(path, "no such EVA ViT-g weight file (eva_vit_g.pth)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise EvaFileError(path, f"not a readable torch file (truncated?): {e}") from e
    if isinstance(sd, dict) and isinstance(sd.get("model"), dict):
        sd = sd["model"]
    if not isinstance(sd, dict) or "cls_token" not in sd:
        raise EvaFileError(path, "no 'cls_token': not an EVA ViT state dict")
    return {k: v.float() for k, v in sd.items() if hasattr(v, "float")}


def load_eva(path: Path | str, image_size: int) -> tuple[EvaVit, list[str]]:
    """The encoder at ``image_size`` px and the keys of the file it leaves out."""
    path = Path(path)
    sd = _state(path)

    def need(key: str) -> torch.Tensor:
        if key not in sd:
            raise EvaFileError(path, f"missing key {key!r}")
        return sd[key]

    width = need("cls_token").shape[-1]
    patch = need("patch_embed.proj.weight").shape[-1]
    in_file = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    if width % HEAD_DIM:
        raise EvaFileError(path, f"width {width} is not a multiple of EVA's head size {HEAD_DIM}")
    shape = EvaShape(width, patch, image_size // patch, min(in_file, MAX_BLOCKS),
                     need("blocks.0.mlp.fc1.weight").shape[0], width // HEAD_DIM)  # fmt: skip
    model = EvaVit(shape)
    pos = need("pos_embed")
    old = round((pos.shape[1] - 1) ** 0.5)
    if old != shape.grid:  # MiniGPT's interpolate_pos_embed
        grid = pos[:, 1:].reshape(1, old, old, width).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(shape.grid, shape.grid), mode="bicubic",
                             align_corners=False)  # fmt: skip
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)
    used = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"}
    with torch.no_grad():
        model.cls_token.copy_(sd["cls_token"])
        model.pos_embed.copy_(pos)
        model.patch_embed.weight.copy_(sd["patch_embed.proj.weight"])
        model.patch_embed.bias.copy_(need("patch_embed.proj.bias"))
        for i, blk in enumerate(model.blocks):
            p = f"blocks.{i}."
            q, v = need(p + "attn.q_bias"), need(p + "attn.v_bias")
            pairs = {
                blk.norm1.weight: p + "norm1.weight", blk.norm1.bias: p + "norm1.bias",
                blk.qkv.weight: p + "attn.qkv.weight", blk.proj.weight: p + "attn.proj.weight",
                blk.proj.bias: p + "attn.proj.bias", blk.norm2.weight: p + "norm2.weight",
                blk.norm2.bias: p + "norm2.bias", blk.fc1.weight: p + "mlp.fc1.weight",
                blk.fc1.bias: p + "mlp.fc1.bias", blk.fc2.weight: p + "mlp.fc2.weight",
                blk.fc2.bias: p + "mlp.fc2.bias",
            }  # fmt: skip
            for param, key in pairs.items():
                if need(key).shape != param.shape:
                    raise EvaFileError(path, f"key {key!r} has shape {tuple(sd[key].shape)}, "
                                             f"block {i} wants {tuple(param.shape)}")  # fmt: skip
                param.copy_(sd[key])
            blk.qkv.bias.copy_(torch.cat([q, torch.zeros_like(v), v]))
            used |= {*pairs.values(), p + "attn.q_bias", p + "attn.v_bias"}
    return model.eval(), sorted(set(sd) - used)
