"""Block-quantized weights for ONNX Runtime's MatMulNBits, from floats or from GGUF blocks.

Every function here is numpy only. A weight is ``[N, K]`` (output rows, input columns), the
way both Hugging Face and GGUF store a linear layer; blocks of ``block`` values run along K.

Three forms:

* ``quantize_blocks``: 8-bit (or 4-bit) round-to-nearest per block, symmetric by default
  (measured better under MatMulNBits' int8-activation kernel than asymmetric, see there).
* ``q8_0_exact``: GGUF Q8_0 (``d * q``, q in -127..127) as 8-bit with the default zero point
  128 and scale d: exact.
* ``q4_1_exact``: GGUF Q4_1 (``d * q + m``, q in 0..15). MatMulNBits zero points are integers
  on the fast CPU path, so the float minimum m is split into an integer zero point
  z = round(-m/d) and an exact remainder r = m + z*d per block and row; the remainder is
  applied as ``blocksum(x) @ R`` next to the MatMulNBits (see graph.py). No value is rounded.
* ``q4_1_folded``: the same codes, scales and zero points, with the remainder folded into the
  MatMulNBits itself as extra 4-bit input columns: the graph feeds ``[x, blocksum(x)]`` and
  each row's remainders ride in one more 4-bit block (two for K = 1536). Only those remainders
  are rounded (to 1/15 of their row's range, ~1/30 of a Q4_1 step); the codes stay the GGUF's.
  One MatMulNBits per linear instead of four nodes: the fast decode form (FACTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Q41Blocks:
    """GGUF Q4_1 weights: value = d * q + m per block of 32 along K."""

    q: np.ndarray  # [N, K] uint8, 0..15
    d: np.ndarray  # [N, K // 32] float32 (stored as fp16 in the file)
    m: np.ndarray  # [N, K // 32] float32 (stored as fp16 in the file)

    def dequantize(self) -> np.ndarray:
        n, k = self.q.shape
        kb = self.d.shape[1]
        v = self.q.reshape(n, kb, -1).astype(np.float32) * self.d[..., None] + self.m[..., None]
        return v.reshape(n, k)

    def rows(self, order: np.ndarray) -> Q41Blocks:
        return Q41Blocks(self.q[order], self.d[order], self.m[order])

    @staticmethod
    def concat(parts: list[Q41Blocks]) -> Q41Blocks:
        return Q41Blocks(
            np.concatenate([p.q for p in parts]),
            np.concatenate([p.d for p in parts]),
            np.concatenate([p.m for p in parts]),
        )


@dataclass(frozen=True)
class NBitsWeight:
    """Inputs and attributes of one MatMulNBits node (plus the Q4_1 remainder, if any)."""

    bits: int
    block: int
    k: int
    n: int
    packed: np.ndarray  # [N, K/block, block*bits/8] uint8
    scales: np.ndarray  # [N, K/block] float32
    zero_points: np.ndarray | None  # uint8, packed per row for 4 bits
    remainder: np.ndarray | None = None  # [K/block, N] float32: y += blocksum(x) @ remainder
    # > 0: the last ``blocksum_columns`` of K take blocksum(x) (zero-padded), not x itself
    blocksum_columns: int = 0

    @property
    def in_features(self) -> int:
        return self.k - self.blocksum_columns

    def dequantize(self) -> np.ndarray:
        """The [N, in_features] float weight this form computes with (remainder included)."""
        q = unpack(self.packed, self.bits)  # [N, kb, block]
        kb = q.shape[1]
        zp = (
            unpack_zero_points(self.zero_points, self.bits, kb)
            if self.zero_points is not None
            else np.full((self.n, kb), 2 ** (self.bits - 1), np.float32)
        )
        w = (q.astype(np.float32) - zp[..., None]) * self.scales[..., None]
        if self.remainder is not None:
            w = w + self.remainder.T[..., None]
        w = w.reshape(self.n, self.k)
        if not self.blocksum_columns:
            return w
        k = self.in_features
        # Column k + b multiplies blocksum_b(x): the same as adding it to every column of block b.
        folded = w[:, k : k + k // self.block]
        return w[:, :k] + np.repeat(folded, self.block, axis=1)


@dataclass(frozen=True)
class Int8Channels:
    """A weight for ``DynamicQuantizeMatMul``: int8 per output channel, symmetric."""

    q: np.ndarray  # [K, N] int8 (MatMul's B layout)
    scales: np.ndarray  # [N] float32

    def dequantize(self) -> np.ndarray:
        return (self.q.astype(np.float32) * self.scales).T  # [N, K]


def quantize_channels(w: np.ndarray) -> Int8Channels:
    """[N, K] -> int8 with one scale per output row (absmax / 127)."""
    scale = (np.abs(w).max(1) / 127).astype(np.float32)
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return Int8Channels(np.ascontiguousarray(q.T), scale)


def _check(w: np.ndarray, block: int) -> tuple[int, int]:
    if w.ndim != 2:
        raise ValueError(f"expected a [N, K] weight, got shape {w.shape}")
    n, k = w.shape
    if k % block:
        raise ValueError(f"K={k} is not a multiple of the block size {block}")
    return n, k


def pack(q: np.ndarray, bits: int) -> np.ndarray:
    """[N, kb, block] codes -> MatMulNBits' B: codes packed low-first along K."""
    q = q.astype(np.uint8)
    if bits == 8:
        return q
    if bits == 4:
        return q[..., 0::2] | (q[..., 1::2] << 4)
    raise ValueError(f"{bits}-bit packing is not supported (4 or 8)")


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return packed
    out = np.empty(packed.shape[:-1] + (packed.shape[-1] * 2,), np.uint8)
    out[..., 0::2] = packed & 0x0F
    out[..., 1::2] = packed >> 4
    return out


def pack_zero_points(z: np.ndarray, bits: int) -> np.ndarray:
    """[N, kb] integer zero points -> MatMulNBits' layout (4-bit: two per byte, rows padded)."""
    z = z.astype(np.uint8)
    if bits == 8:
        return z
    n, kb = z.shape
    padded = np.zeros((n, kb + kb % 2), np.uint8)
    padded[:, :kb] = z
    return padded[:, 0::2] | (padded[:, 1::2] << 4)


def unpack_zero_points(z: np.ndarray, bits: int, kb: int) -> np.ndarray:
    if bits == 8:
        return z.astype(np.float32)
    both = np.empty((z.shape[0], z.shape[1] * 2), np.uint8)
    both[:, 0::2] = z & 0x0F
    both[:, 1::2] = z >> 4
    return both[:, :kb].astype(np.float32)


def quantize_blocks(
    w: np.ndarray, bits: int = 8, block: int = 32, symmetric: bool = True
) -> NBitsWeight:
    """Round-to-nearest per block.

    Symmetric (scale = absmax / 127, zero point left at the kernel's default 2^(bits-1)) is
    the default: with accuracy_level 4 it kept SmolLM2's perplexity within 0.1% of fp32,
    while asymmetric blocks with integer zero points lost 1.2% in the same kernel.
    """
    n, k = _check(w, block)
    wb = w.reshape(n, k // block, block).astype(np.float32)
    if symmetric:
        half = 2 ** (bits - 1)
        scale = (np.abs(wb).max(-1) / (half - 1)).astype(np.float32)
        scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
        q = np.clip(np.round(wb / scale[..., None]) + half, 0, 2 * half - 1)
        return NBitsWeight(bits, block, k, n, pack(q, bits), scale, None)
    levels = 2**bits - 1
    lo = np.minimum(wb.min(-1), 0.0)
    hi = np.maximum(wb.max(-1), 0.0)
    scale = (hi - lo) / levels
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    zp = np.clip(np.round(-lo / scale), 0, levels)
    q = np.clip(np.round(wb / scale[..., None]) + zp[..., None], 0, levels)
    return NBitsWeight(bits, block, k, n, pack(q, bits), scale, pack_zero_points(zp, bits))


def q8_0_exact(d: np.ndarray, q: np.ndarray) -> NBitsWeight:
    """GGUF Q8_0 (``d`` [N, K/32], ``q`` [N, K] int8) as 8-bit MatMulNBits, exactly."""
    n, k = _check(q, 32)
    codes = (q.astype(np.int16) + 128).astype(np.uint8).reshape(n, k // 32, 32)
    # Zero point 128 is the kernel's default: leaving it out keeps the symmetric path.
    return NBitsWeight(8, 32, k, n, codes, d.astype(np.float32), None, remainder=None)


def q4_1_exact(blocks: Q41Blocks) -> NBitsWeight:
    """GGUF Q4_1 as 4-bit MatMulNBits + an exact per-block remainder (see module doc)."""
    n, k = _check(blocks.q, 32)
    d = blocks.d.astype(np.float32)
    m = blocks.m.astype(np.float32)
    safe_d = np.where(d == 0, 1.0, d)
    z = np.clip(np.round(-m / safe_d), 0, 15)
    remainder = (m + z * d).astype(np.float32)  # [N, kb]; exact in float32 for fp16 d, m
    codes = blocks.q.reshape(n, k // 32, 32)
    return NBitsWeight(
        4, 32, k, n, pack(codes, 4), d, pack_zero_points(z, 4), remainder=remainder.T.copy()
    )


def q4_1_folded(blocks: Q41Blocks) -> NBitsWeight:
    """GGUF Q4_1 as one 4-bit MatMulNBits over ``[x, blocksum(x)]`` (see module doc)."""
    exact = q4_1_exact(blocks)
    assert exact.remainder is not None and exact.zero_points is not None
    n, k = exact.n, exact.k
    kb = k // exact.block
    cols = exact.block * -(-kb // exact.block)  # blocksums padded to whole blocks
    padded = np.zeros((n, cols), np.float32)
    padded[:, :kb] = exact.remainder.T
    # Asymmetric blocks keep 0 on the grid, so the zero padding stays exactly 0.
    extra = quantize_blocks(padded, bits=4, block=exact.block, symmetric=False)
    assert extra.zero_points is not None
    zp = np.concatenate(
        [
            unpack_zero_points(exact.zero_points, 4, kb),
            unpack_zero_points(extra.zero_points, 4, cols // exact.block),
        ],
        axis=1,
    )
    return NBitsWeight(
        4, exact.block, k + cols, n,
        np.concatenate([exact.packed, extra.packed], axis=1),
        np.concatenate([exact.scales, extra.scales], axis=1),
        pack_zero_points(zp, 4),
        blocksum_columns=cols,
    )  # fmt: skip


def q4_1_from_float(w: np.ndarray) -> Q41Blocks:
    """ggml's Q4_1 quantizer in numpy (min/max per block of 32; d and m rounded to fp16).

    Used to build Q4_1 weights for models that do not come from a GGUF file (tiny test models).
    """
    n, k = _check(w, 32)
    wb = w.reshape(n, k // 32, 32).astype(np.float32)
    lo = wb.min(-1)
    hi = wb.max(-1)
    d = ((hi - lo) / 15).astype(np.float16).astype(np.float32)
    m = lo.astype(np.float16).astype(np.float32)
    inv = np.where(d == 0, 0.0, 1.0 / np.where(d == 0, 1.0, d))
    q = np.clip(np.round((wb - m[..., None]) * inv[..., None]), 0, 15).astype(np.uint8)
    return Q41Blocks(q.reshape(n, k), d, m)


def q8_0_from_float(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ggml's Q8_0 quantizer in numpy: (d [N, K/32] fp16-rounded, q [N, K] int8)."""
    n, k = _check(w, 32)
    wb = w.reshape(n, k // 32, 32).astype(np.float32)
    d = (np.abs(wb).max(-1) / 127).astype(np.float16).astype(np.float32)
    inv = np.where(d == 0, 0.0, 1.0 / np.where(d == 0, 1.0, d))
    q = np.clip(np.round(wb * inv[..., None]), -127, 127).astype(np.int8)
    return d, q.reshape(n, k)
