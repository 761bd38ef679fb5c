"""What a window of time holds, typed per modality: the evidence a reading rests on.

Stages deliver evidence, not words: the face's expression probabilities and measures per
track, each utterance's prosody measures and transcript, and (for profiles that fuse at the
embedding level) embeddings of face crops, frames or audio clips. Clues in words are made
from this evidence only where a prompt needs them (``reasoning/stage.py``), and fusion reads
the probabilities themselves, so nothing is ever parsed back out of a sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FaceTrack:
    """One face followed through the window: its mean expression probabilities over the
    frames it was seen in, and the measures of its latest frame."""

    track_id: int
    frames: int
    probabilities: Mapping[str, float]  # label -> mean probability
    measures: Mapping[str, float] | None  # the latest frame's (FaceMeasures.as_dict())

    @property
    def top(self) -> tuple[str, float]:
        label = max(self.probabilities, key=self.probabilities.get)
        return label, self.probabilities[label]


def face_tracks(expressions: Sequence[Mapping]) -> list[FaceTrack]:
    """The faces of a window's expression events, the one seen most (the main speaker)
    first, then by track id."""
    rows: dict[int, list[Mapping]] = {}
    for e in expressions:
        rows.setdefault(int(e["track_id"]), []).append(e)
    tracks = []
    for track_id, events in rows.items():
        labels = list(events[0]["scores"])
        mean = np.mean([[e["scores"][k] for k in labels] for e in events], axis=0)
        tracks.append(
            FaceTrack(
                track_id=track_id,
                frames=len(events),
                probabilities=dict(zip(labels, mean.tolist(), strict=True)),
                measures=events[-1].get("measures"),
            )
        )
    # Ties go to the face seen first, as the main speaker always has.
    order = {tid: i for i, tid in enumerate(rows)}
    tracks.sort(key=lambda tr: (-tr.frames, order[tr.track_id]))
    return tracks


@dataclass(frozen=True)
class Evidence:
    """A window's evidence: faces (main first), utterances (each with ``prosody`` and
    ``transcript`` analyses), and optional embeddings by kind ("face_crops", "frames",
    "audio_clips": arrays a profile's encoders made)."""

    faces: tuple[FaceTrack, ...] = ()
    utterances: tuple[Any, ...] = ()
    embeddings: Mapping[str, tuple[np.ndarray, ...]] = field(default_factory=dict)

    @property
    def main_face(self) -> FaceTrack | None:
        return self.faces[0] if self.faces else None

    @property
    def face_scores(self) -> dict[str, float] | None:
        """The main face's mean expression probabilities (None: no face in the window)."""
        return dict(self.main_face.probabilities) if self.faces else None

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.faces)

    @property
    def transcript(self) -> str:
        texts = [u.transcript.text.strip() for u in self.utterances if u.transcript is not None]
        return " ".join(t for t in texts if t)

    @property
    def prosody(self) -> list[Any]:
        return [u.prosody for u in self.utterances if getattr(u, "prosody", None) is not None]

    @property
    def voice_notes(self) -> list[str]:
        """What the voice's measures could not yet say (e.g. no baseline for this speaker):
        for the reading's notes, never for a prompt."""
        out: list[str] = []
        for p in self.prosody:
            out.extend(n for n in getattr(p, "notes", ()) if n not in out)
        return out
