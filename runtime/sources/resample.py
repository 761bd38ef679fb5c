"""Streaming sample-rate conversion to 16 kHz, in numpy.

A polyphase windowed-sinc resampler for any rational ratio (8 k, 22.05 k, 44.1 k, 48 k -> 16 k).
It keeps its input history between calls, so a stream cut into arbitrary chunks gives the
same output as the whole signal at once; a microphone that refuses 16 kHz and a file at
another rate go through the same code.
"""

from __future__ import annotations

from math import gcd

import numpy as np

# 16 zero crossings each side and a Kaiser window: ~-80 dB stopband, flat to 0.9 x Nyquist.
_ZEROS = 16
_ROLLOFF = 0.9
_KAISER_BETA = 8.6


class Resampler:
    """``process(x)`` returns the output for the input so far; ``flush()`` returns the tail."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
        g = gcd(int(rate_in), int(rate_out))
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.up, self.down = self.rate_out // g, self.rate_in // g
        self.passthrough = self.up == self.down
        # Cutoff in cycles per input sample (x2): below the lower of the two Nyquist rates.
        a = _ROLLOFF * min(1.0, self.up / self.down)
        self._c = int(np.ceil(_ZEROS / a))  # half width in input samples
        taps = 2 * self._c
        phases = np.arange(self.up)[:, None] / self.up
        # Tap k of phase p multiplies input n0 + k, whose distance to the output point is t.
        t = phases + (self._c - 1) - np.arange(taps)[None, :]
        window = np.kaiser(2 * taps + 1, _KAISER_BETA)
        w = np.interp(t, np.linspace(-self._c, self._c, 2 * taps + 1), window)
        self._table = (a * np.sinc(a * t) * w).astype(np.float32)
        self._taps = taps
        # History starts with c zeros so the first outputs see a silent past.
        self._buf = np.zeros(self._c, np.float32)
        self._buf_start = -self._c  # global input index of _buf[0]
        self._n_in = 0
        self._j = 0  # next output index

    def _ready(self) -> int:
        """Outputs computable now: output j needs inputs up to floor(j*down/up) + c."""
        n_avail = self._buf_start + len(self._buf)
        return max(0, -(-(n_avail - self._c) * self.up // self.down))

    def _emit(self, j_max: int) -> np.ndarray:
        if j_max <= self._j:
            return np.zeros(0, np.float32)
        js = np.arange(self._j, j_max, dtype=np.int64)
        pos = js * self.down
        n0 = pos // self.up - self._c + 1 - self._buf_start
        idx = n0[:, None] + np.arange(self._taps)[None, :]
        y = np.einsum("ij,ij->i", self._buf[idx], self._table[pos % self.up])
        self._j = j_max
        keep_from = (self._j * self.down) // self.up - self._c + 1 - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._buf_start += keep_from
        return y.astype(np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(-1)
        if self.passthrough:
            return x.copy()
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        out = []
        # Bound the gather matrix: a long file arrives in large blocks.
        step = max(1, (1 << 16) // self._taps)
        while (ready := self._ready()) > self._j:
            out.append(self._emit(min(ready, self._j + step)))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        """The remaining output, as if the input were followed by silence."""
        if self.passthrough:
            return np.zeros(0, np.float32)
        total = -(-self._n_in * self.up // self.down)  # ceil
        self._buf = np.concatenate([self._buf, np.zeros(self._c + 1, np.float32)])
        out = []
        step = max(1, (1 << 16) // self._taps)
        while self._j < total:
            out.append(self._emit(min(total, self._j + step)))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """One-shot conversion of a whole mono signal."""
    r = Resampler(rate_in, rate_out)
    return np.concatenate([r.process(x), r.flush()])


def to_mono(x: np.ndarray) -> np.ndarray:
    """[n] or [n, channels] -> [n] float32, the mean of the channels."""
    x = np.asarray(x)
    if x.ndim == 1:
        return x.astype(np.float32, copy=False)
    if x.ndim != 2:
        raise ValueError(f"audio samples must be [n] or [n, channels], got shape {x.shape}")
    return x.astype(np.float32, copy=False).mean(axis=1, dtype=np.float32)
