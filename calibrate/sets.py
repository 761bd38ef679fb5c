"""Calibration sets and evaluation runs for the vision graphs, through the runtime's own code.

Every graph input is made by the runtime classes that feed that graph live (FaceDetector's
letterbox, FaceLandmarker's rotated ROI crop, ExpressionClassifier's fer crop): they run on
a ``FeedRecorder`` that keeps each feed (and output) on its way to the real graph. So the
int8 ranges are fitted on exactly the tensors the deployed pipeline produces, and a change
to the runtime's preprocessing changes the calibration with it, with no second copy to drift.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

import emolive
from emolive.calibrate.media import MediaFile, frames
from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.bundle import sha256_of
from emolive.runtime.names import (
    EXPRESSION,
    EXPRESSION_INPUT,
    FACE_DETECTOR,
    FACE_DETECTOR_INPUT,
    FACE_LANDMARKS,
    FACE_LANDMARKS_INPUT,
    FACE_LANDMARKS_POINTS,
)
from emolive.runtime.vision import detector as det
from emolive.runtime.vision import expression as expr
from emolive.runtime.vision import landmarks as lm

GRAPHS = (FACE_DETECTOR, FACE_LANDMARKS, EXPRESSION)
INPUTS = {
    FACE_DETECTOR: FACE_DETECTOR_INPUT,
    FACE_LANDMARKS: FACE_LANDMARKS_INPUT,
    EXPRESSION: EXPRESSION_INPUT,
}
CACHE_FORMAT = 1


class CalibrationSetError(RuntimeError):
    """A calibration set could not be built (no faces found, unreadable cache, ...)."""


class FeedRecorder:
    """A GraphRunner that keeps every feed it gets, and the outputs, then passes them on."""

    def __init__(self, runner):
        self.runner = runner
        self.input_names = runner.input_names
        self.output_names = runner.output_names
        self.feeds: list[dict[str, np.ndarray]] = []
        self.outputs: list[dict[str, np.ndarray]] = []

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.feeds.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        out = self.runner.run(feeds)
        self.outputs.append({k: np.array(v, copy=True) for k, v in out.items()})
        return out

    def take(self) -> tuple[list[dict], list[dict]]:
        """The recorded feeds and outputs since the last take, and forget them."""
        got = self.feeds, self.outputs
        self.feeds, self.outputs = [], []
        return got


def _stack(feeds: list[dict[str, np.ndarray]], name: str, shape: tuple[int, ...]) -> np.ndarray:
    rows = [f[name] for f in feeds if len(f[name])]
    return np.concatenate(rows) if rows else np.zeros((0, *shape), np.float32)


def _graph(path: Path, threads: int | None) -> OrtGraph:
    return OrtGraph(Path(path), "fp32", threads=threads)


def collect_calibration_inputs(
    fp32: dict[str, Path],
    media: Sequence[MediaFile],
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Stacked inputs {graph: [n, ...]} of every calibration frame and every face found in it.

    Faces come from the fp32 detector (what the int8 graphs downstream will be fed live).
    """
    detector = det.FaceDetector(FeedRecorder(_graph(fp32[FACE_DETECTOR], threads)))
    landmarker = lm.FaceLandmarker(FeedRecorder(_graph(fp32[FACE_LANDMARKS], threads)))
    classifier = expr.ExpressionClassifier(FeedRecorder(_graph(fp32[EXPRESSION], threads)))
    for m, frame in frames(media):
        faces = detector.detect(frame.image)
        landmarker.landmarks_many(frame.image, faces)
        gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        classifier.classify(gray, [(f.x0, f.y0, f.x1, f.y1) for f in faces])
        if progress:
            progress(f"{m.name}#{frame.index}")
    sets = {
        FACE_DETECTOR: _stack(detector.runner.feeds, FACE_DETECTOR_INPUT, (3, 128, 128)),
        FACE_LANDMARKS: _stack(landmarker.runner.feeds, FACE_LANDMARKS_INPUT, (3, 192, 192)),
        EXPRESSION: _stack(classifier.runner.feeds, EXPRESSION_INPUT, (1, 64, 64)),
    }
    if len(sets[FACE_LANDMARKS]) == 0:
        raise CalibrationSetError(
            f"no face found in the calibration media ({', '.join(m.name for m in media)}); "
            f"the landmark and expression graphs need faces to calibrate on"
        )
    return sets


def evenly(samples: np.ndarray, limit: int | None) -> np.ndarray:
    """At most ``limit`` samples spread evenly over the set (clips come in time order)."""
    if limit is None or len(samples) <= limit:
        return samples
    if limit < 1:
        raise ValueError(f"sample limit must be >= 1, got {limit}")
    return samples[np.linspace(0, len(samples) - 1, limit).round().astype(int)]


def cache_key(fp32: dict[str, Path], media: Sequence[MediaFile]) -> str:
    """What a calibration set depends on: media bytes, the graphs that find faces, and the
    runtime preprocessing code that makes the tensors."""
    code = [sha256_of(Path(inspect.getfile(mod))) for mod in (det, lm, expr)]
    parts = {
        "format": CACHE_FORMAT,
        "emolive": emolive.__version__,
        "media": [[m.sha256(), m.every] for m in media],
        "graphs": {g: sha256_of(Path(fp32[g])) for g in GRAPHS},
        "code": code,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def load_or_collect(
    fp32: dict[str, Path],
    media: Sequence[MediaFile],
    cache_dir: Path | None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """The calibration inputs, from ``cache_dir`` when a set with the same key is there.

    Returns (sets, from_cache). The cache holds model inputs derived from test media: it
    lives in the user cache, never in a bundle.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"vision-{cache_key(fp32, media)[:32]}.npz"
        if path.is_file():
            try:
                with np.load(path) as npz:
                    return {g: npz[g] for g in GRAPHS}, True
            except (OSError, KeyError, ValueError) as e:
                raise CalibrationSetError(
                    f"calibration cache {path} is unreadable ({e}); delete it to rebuild"
                ) from e
    sets = collect_calibration_inputs(fp32, media, threads, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.npz")
        np.savez_compressed(tmp, **sets)
        tmp.replace(path)
    return sets, False


def _per_precision() -> dict[str, list]:
    return {"fp32": [], "int8": []}


@dataclass
class EvaluationRun:
    """fp32 and int8 outputs side by side on the evaluation media."""

    frames: int = 0
    # Per frame, the detector's boxes (x0, y0, x1, y1) in frame pixels.
    boxes: dict[str, list] = field(default_factory=_per_precision)
    # Per frame with faces, arrays over that frame's fp32-detected faces.
    roi_points: dict[str, list] = field(default_factory=_per_precision)  # [f, 468, 3] 192-px
    frame_points: dict[str, list] = field(default_factory=_per_precision)  # [f, 468, 3] frame px
    presence: dict[str, list] = field(default_factory=_per_precision)  # [f] probability
    probabilities: dict[str, list] = field(default_factory=_per_precision)  # [f, 7]
    face_sizes: list[float] = field(default_factory=list)  # ROI side in frame px, per face
    # Frames and fp32 faces per media file: how much each file weighs in the numbers.
    per_media: dict[str, dict[str, int]] = field(default_factory=dict)
    # One real input of each graph, batch 1, to time fp32 against int8 on.
    example_inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def stacked(self, what: str, precision: str) -> np.ndarray:
        rows = getattr(self, what)[precision]
        if not rows:
            raise CalibrationSetError(f"the evaluation media gave no {what} to compare")
        return np.concatenate(rows)


def evaluate(
    fp32: dict[str, Path],
    int8: dict[str, Path],
    media: Sequence[MediaFile],
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationRun:
    """Run both precisions of every graph on the evaluation media through the runtime code.

    The detector is compared end to end (boxes after decoding and NMS). Landmarks and
    expression get the fp32 detector's faces in both precisions, so their numbers measure
    their own graph's int8 error, not the detector's.
    """
    run = EvaluationRun()
    pipes = {}
    for precision, paths in (("fp32", fp32), ("int8", int8)):
        pipes[precision] = (
            det.FaceDetector(OrtGraph(Path(paths[FACE_DETECTOR]), precision, threads=threads)),
            lm.FaceLandmarker(
                FeedRecorder(OrtGraph(Path(paths[FACE_LANDMARKS]), precision, threads=threads))
            ),
            expr.ExpressionClassifier(
                FeedRecorder(OrtGraph(Path(paths[EXPRESSION]), precision, threads=threads))
            ),
        )
    for m, frame in frames(media):
        image = frame.image
        faces = {p: pipes[p][0].detect(image) for p in pipes}
        for p in pipes:
            run.boxes[p].append([(f.x0, f.y0, f.x1, f.y1) for f in faces[p]])
        run.frames += 1
        counts = run.per_media.setdefault(m.name, {"frames": 0, "faces": 0})
        counts["frames"] += 1
        counts["faces"] += len(faces["fp32"])
        if progress:
            progress(f"{m.name}#{frame.index}")
        if not faces["fp32"]:
            continue
        if FACE_DETECTOR not in run.example_inputs:
            run.example_inputs[FACE_DETECTOR] = pipes["fp32"][0].preprocess(image)[0]
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = [(f.x0, f.y0, f.x1, f.y1) for f in faces["fp32"]]
        run.face_sizes.extend(lm.face_roi(f).size for f in faces["fp32"])
        for p, (_, landmarker, classifier) in pipes.items():
            marks = landmarker.landmarks_many(image, faces["fp32"])
            run.frame_points[p].append(np.stack([k.points for k in marks]))
            feeds, outs = landmarker.runner.take()
            raw = outs[0][FACE_LANDMARKS_POINTS].reshape(len(marks), lm.NUM_LANDMARKS, 3)
            run.roi_points[p].append(raw)
            run.presence[p].append(np.array([k.presence for k in marks]))
            run.probabilities[p].append(classifier.classify(gray, boxes))
            expr_feeds, _ = classifier.runner.take()
            if p == "fp32" and FACE_LANDMARKS not in run.example_inputs:
                run.example_inputs[FACE_LANDMARKS] = feeds[0][FACE_LANDMARKS_INPUT][:1]
                run.example_inputs[EXPRESSION] = expr_feeds[0][EXPRESSION_INPUT][:1]
    return run
