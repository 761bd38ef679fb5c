"""A small RIFF/WAVE reader: PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE.

The standard library's ``wave`` reads only integer PCM; recorders and numpy tools often
write float WAVs, so the few lines of chunk parsing live here. Samples stream from disk in
blocks; nothing holds a long recording in memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime.media import file_damage
from emolive.runtime.sources.errors import AudioSourceError

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


@dataclass(frozen=True)
class WavInfo:
    path: Path
    rate: int
    channels: int
    bits: int
    is_float: bool
    data_offset: int
    data_bytes: int

    @property
    def frames(self) -> int:
        return self.data_bytes // (self.channels * self.bits // 8)

    @property
    def duration(self) -> float:
        return self.frames / self.rate


def read_wav_info(path: Path | str) -> WavInfo:
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise AudioSourceError(f"cannot open WAV file {path}: {e}") from e
    with f:
        head = f.read(12)
        if not head:
            raise AudioSourceError(f"WAV file {path} is empty (0 bytes)")
        if len(head) < 12 and b"RIFF".startswith(head[:4]):
            raise AudioSourceError(f"{path} is truncated: {len(head)} bytes, inside the header")
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AudioSourceError(f"{path} is not a RIFF/WAVE file")
        file_size = f.seek(0, 2)
        f.seek(12)
        fmt = None
        while True:
            ck = f.read(8)
            if len(ck) < 8:
                if ck:
                    raise AudioSourceError(f"{path} is truncated: it ends inside a chunk header")
                break
            cid, size = ck[:4], struct.unpack("<I", ck[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(size)
                if len(fmt) < size:
                    raise AudioSourceError(
                        f"{path} is truncated: it ends inside its fmt chunk ({file_size} bytes)"
                    )
                if size % 2:
                    f.read(1)
            elif cid == b"data":
                if fmt is None:
                    raise AudioSourceError(f"{path}: data chunk before the fmt chunk")
                offset = f.tell()
                # Recorders that were killed leave size 0 or 0xFFFFFFFF: trust the file size.
                end = f.seek(0, 2)
                if size == 0 or size == 0xFFFFFFFF or offset + size > end:
                    if end == offset and size not in (0, 0xFFFFFFFF):
                        raise AudioSourceError(
                            f"{path} is truncated: its data chunk should hold {size} bytes, "
                            f"the file ends where it starts"
                        )
                    size = end - offset
                return _info(path, fmt, offset, size)
            else:
                f.seek(size + (size % 2), 1)
    damage = file_damage(path)  # the RIFF header's size against the file's
    if damage is not None and damage.startswith("is truncated"):
        raise AudioSourceError(
            f"{path} {damage}, and it ends before its {'data' if fmt else 'fmt'} chunk"
        )
    raise AudioSourceError(f"{path} has no {'data' if fmt else 'fmt'} chunk")


def _info(path: Path, fmt: bytes, offset: int, size: int) -> WavInfo:
    if len(fmt) < 16:
        raise AudioSourceError(f"{path}: fmt chunk too short ({len(fmt)} bytes)")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # first two bytes of the sub-format GUID
    if tag not in (_PCM, _FLOAT):
        raise AudioSourceError(
            f"{path}: WAV format tag {tag:#x} is not supported (PCM or IEEE float only); "
            f"convert it, or open it as a media file"
        )
    ok = {_PCM: (8, 16, 24, 32), _FLOAT: (32, 64)}[tag]
    if bits not in ok:
        raise AudioSourceError(f"{path}: {bits}-bit {'float' if tag == _FLOAT else 'PCM'} WAV")
    if channels < 1 or rate < 1:
        raise AudioSourceError(f"{path}: {channels} channels at {rate} Hz")
    return WavInfo(path, rate, channels, bits, tag == _FLOAT, offset, size)


def _decode(raw: bytes, info: WavInfo) -> np.ndarray:
    if info.is_float:
        x = np.frombuffer(raw, "<f4" if info.bits == 32 else "<f8").astype(np.float32)
    elif info.bits == 8:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif info.bits == 16:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif info.bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    else:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    return x.reshape(-1, info.channels)


def iter_wav_blocks(info: WavInfo, frames_per_block: int) -> Iterator[np.ndarray]:
    """Blocks of [frames, channels] float32 samples at the file's own rate."""
    frame_bytes = info.channels * info.bits // 8
    left = info.frames * frame_bytes
    with open(info.path, "rb") as f:
        f.seek(info.data_offset)
        while left > 0:
            raw = f.read(min(left, frames_per_block * frame_bytes))
            if not raw:
                return
            raw = raw[: len(raw) - len(raw) % frame_bytes]
            left -= len(raw)
            yield _decode(raw, info)


def write_wav(path: Path | str, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM, mono or [n, channels]; for recordings and tests."""
    x = np.asarray(samples, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2")
    data = pcm.tobytes()
    ch = x.shape[1]
    fmt = struct.pack("<HHIIHH", _PCM, ch, rate, rate * ch * 2, ch * 2, 16)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", 16) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)
    return Path(path)
