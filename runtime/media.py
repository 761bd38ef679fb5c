"""Timestamped media on one clock: video frames and audio chunks.

Every source stamps what it yields with seconds on the session clock. Live sources stamp
at capture (monotonic time since the session started); file sources stamp with the media's
own presentation time, so an utterance lines up with the frames it was spoken over either way.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

T = TypeVar("T")
AUDIO_RATE = 16_000  # every audio chunk is resampled to 16 kHz mono float32 in [-1, 1]


class SessionClock:
    """Monotonic seconds since the session started; shared by every source of a session."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def restart(self) -> None:
        """Zero the clock when capture starts (model loading happens before)."""
        self._t0 = time.monotonic()


def paced(items: Iterable[T], clock: SessionClock, due: Callable[[T], float]) -> Iterator[T]:
    """Replay timestamped media no faster than the session clock: each item is released
    when the clock reaches ``due(item)``, as a live camera or microphone would deliver it."""
    for item in items:
        wait = due(item) - clock.now()
        if wait > 0:
            time.sleep(wait)
        yield item


@dataclass(frozen=True)
class Frame:
    t: float  # seconds on the session clock
    index: int  # frame number within its source
    image: np.ndarray  # HxWx3 uint8, BGR
    source: str = ""


@dataclass(frozen=True)
class AudioChunk:
    t: float  # session-clock time of the first sample
    samples: np.ndarray  # float32 mono at AUDIO_RATE
    source: str = ""

    @property
    def duration(self) -> float:
        return len(self.samples) / AUDIO_RATE

    @property
    def end(self) -> float:
        return self.t + self.duration


# -- why a decoder refused a file --------------------------------------------------------------
_ISO_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp"}
_EBML, _SEGMENT = 0x1A45DFA3, 0x18538067


def file_damage(path: Path | str) -> str | None:
    """Why a media file a decoder refused cannot be read, when its bytes tell: ``"is empty
    (0 bytes)"`` or ``"is truncated: ..."`` (said after the file's name). None when the file
    looks whole, or its container is not one checked here (MP4/MOV, Matroska/WebM, RIFF).

    A decoder's own words for these ("moov atom not found", "Invalid data found") read as an
    unknown container; a recording cut short by a full disk or a killed recorder is far more
    common, and the fix differs (record again, or repair), so the file is looked at."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(16)
        if head[4:8] in _ISO_BOXES:
            return _iso_bmff_damage(f, size)
        if head[:4] == b"\x1a\x45\xdf\xa3":
            return _matroska_damage(f, size)
        if head[:4] == b"RIFF" and len(head) >= 8:
            declared = 8 + struct.unpack("<I", head[4:8])[0]
            # 8 or 2**32 + 7: a streaming writer's placeholder, not a length.
            if declared not in (8, 0xFFFFFFFF + 8) and declared > size:
                return f"is truncated: its RIFF header says {declared} bytes, the file has {size}"
    if size < 16:
        return f"is only {size} bytes long: truncated, or not a media file"
    return None


def _iso_bmff_damage(f: BinaryIO, size: int) -> str | None:
    """MP4/MOV/3GP: top-level boxes must tile the file, and one of them is the index."""
    pos, kinds = 0, set()
    while pos < size:
        f.seek(pos)
        h = f.read(16)
        if len(h) < 8:
            return f"is truncated: the box header at byte {pos} is cut off"
        n, kind = struct.unpack(">I4s", h[:8])
        if n == 1:  # 64-bit size follows
            if len(h) < 16:
                return f"is truncated: the box header at byte {pos} is cut off"
            n = struct.unpack(">Q", h[8:16])[0]
        elif n == 0:  # runs to the end of the file
            n = size - pos
        if n < 8:
            return None  # not a box structure: corrupt some other way
        name = kind.decode("latin-1")
        if pos + n > size:
            return (
                f"is truncated: its '{name}' box ends at byte {pos + n}, the file has {size} "
                f"(a recording that was cut short?)"
            )
        kinds.add(kind)
        pos += n
    if b"moov" not in kinds and b"moof" not in kinds:
        return (
            "is truncated: it has no 'moov' box, the index every MP4/MOV file needs (a "
            "recording that was interrupted before it was finalised leaves none)"
        )
    return None


def _vint(f: BinaryIO, keep_marker: bool) -> tuple[int | None, bool]:
    """One EBML variable-length integer: (value, all value bits set), or (None, _) at EOF."""
    b = f.read(1)
    if not b or b[0] == 0:
        return None, False
    length = 9 - b[0].bit_length()
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        return None, False
    v = b[0] if keep_marker else b[0] & ((1 << (8 - length)) - 1)
    for x in rest:
        v = (v << 8) | x
    return v, v == (1 << (7 * length)) - 1


def _matroska_damage(f: BinaryIO, size: int) -> str | None:
    """Matroska/WebM: the EBML header, then one Segment whose declared size must fit."""
    f.seek(0)
    for expect in (_EBML, _SEGMENT):
        eid, _ = _vint(f, keep_marker=True)
        n, unknown = _vint(f, keep_marker=False)
        if eid is None or n is None:
            return f"is truncated: the file ends inside its Matroska header ({size} bytes)"
        if eid != expect:
            return None
        start = f.tell()
        if expect == _SEGMENT and not unknown and start + n > size:
            return (
                f"is truncated: its Matroska segment ends at byte {start + n}, the file has "
                f"{size} (a recording that was cut short?)"
            )
        if expect == _EBML:
            if start + n > size:
                return f"is truncated: the file ends inside its Matroska header ({size} bytes)"
            f.seek(start + n)
    return None
