"""The vision stage's work on one frame: faces, landmarks, expression, clues, tracks."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle
from emolive.runtime.media import Frame
from emolive.runtime.names import (
    EXPRESSION,
    FACE_DETECTOR,
    FACE_DETECTOR_FULL,
    FACE_LANDMARKS,
    FER_LABELS,
)
from emolive.runtime.parity import load_graph
from emolive.runtime.readings import expression_event
from emolive.runtime.sources.video import check_frame
from emolive.runtime.vision.clues import measure, visual_clues
from emolive.runtime.vision.detector import FULL_RANGE, SHORT_RANGE, FaceDetector
from emolive.runtime.vision.expression import ExpressionClassifier, eye_angle
from emolive.runtime.vision.follow import FollowedFace
from emolive.runtime.vision.landmarks import FaceLandmarker
from emolive.runtime.vision.tracker import FaceTracker

MAX_FOLLOW_STEP_S = 0.5  # longer gaps between analysed frames: detect afresh


@dataclass(frozen=True)
class FrameObservation:
    """What one frame showed, before tracking: see FaceAnalyzer.observe."""

    frame: Frame
    faces: list
    boxes: list
    probs: np.ndarray
    measures: list
    latency_ms: dict
    started: float  # perf_counter at the start of the frame's analysis


@dataclass(frozen=True)
class VisionConfig:
    backend: str = "ort"
    device: str = "cpu"
    # One thread per graph: the graphs are tiny, so a second intra-op thread costs more than it
    # gives (benchmarks/vision.py: 1 thread beat 2 on 2 cores), and it leaves a core for
    # audio and the LLM.
    threads: int | None = 1
    precision: str | None = None  # None: the variant the bundle measured best for the device
    max_faces: int = 10
    min_face_score: float | None = None  # None: the detector model's (0.5 short, 0.6 full)
    min_presence: float = 0.5  # FaceMesh face-presence a detection needs to count as a face
    landmarks: bool = True  # verification and visual clues need landmarks
    # Which BlazeFace finds faces. "full-range" finds faces down to ~30-50 px in a 640x480
    # frame (group shots; 6 of 6 faces in a group photo where short-range found none) at
    # ~3-4x short-range's detect cost (benchmarks/faces.py); "short-range" only faces over
    # ~60-90 px (a person at a kiosk); "auto": full-range where the bundle has it (bundles
    # exported before it had one get short-range, with a note).
    detector: str = "auto"
    # 2: also look at four overlapping tiles, for small faces in group shots (~5x detect cost).
    tiles: int = 1
    # The expression crop (benchmarks/faces.py): the box's long side plus this margin of it
    # on every side (None: fer's own crop, the box squared +10 px, never turned), turned so
    # the eye line from FaceMesh is level as in FER2013 (needs landmarks), and averaged with
    # its mirror image (one batch of 2n faces).
    expression_margin: float | None = 0.1
    expression_align: bool = True
    expression_flip: bool = True
    # Run the detector at least every k-th analysed frame; in between, faces are followed
    # from their landmarks (MediaPipe's way). 1 = detect on every frame.
    detect_every: int = 10
    # Analyzers observing consecutive frames in parallel, one thread each: 2 uses both cores
    # of a 2-core machine for vision alone (benchmarks), 1 leaves a core to audio and the LLM.
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")
        if self.detector not in ("auto", FULL_RANGE.name, SHORT_RANGE.name):
            raise ValueError(
                f"detector must be 'auto', {FULL_RANGE.name!r} or {SHORT_RANGE.name!r}, "
                f"got {self.detector!r}"
            )
        if self.detect_every > 1 and not self.landmarks:
            raise ValueError("following faces between detections needs landmarks=True")


VISION_GRAPHS = (FACE_DETECTOR, FACE_LANDMARKS, EXPRESSION)


def runtime_for_vision(config: VisionConfig, runtime: RuntimeConfig | None) -> RuntimeConfig:
    """The ``RuntimeConfig`` the vision graphs load with: ``runtime`` where given (a
    precision it does not name for a graph comes from ``config.precision``; threads from
    ``config.threads`` when it has none), else ``config``'s own fields."""
    if runtime is None:
        runtime = RuntimeConfig(backend=config.backend, device=config.device)
    precision = dict(runtime.precision)
    if config.precision is not None:
        for name in VISION_GRAPHS:
            precision.setdefault(name, config.precision)
    threads = runtime.threads if runtime.threads is not None else config.threads
    return replace(runtime, precision=precision, threads=threads)


class FaceAnalyzer:
    """Frame in, one ``expression`` event per face out. Synchronous; the stage threads it."""

    def __init__(
        self,
        bundle: Bundle,
        config: VisionConfig = VisionConfig(),
        runtime: RuntimeConfig | None = None,
    ) -> None:
        """``runtime``: the session's backend, device, threads and per-graph precisions; they
        override ``config``'s (None: ``config``'s backend/device/threads/precision)."""
        self.config = config
        self.runtime = runtime = runtime_for_vision(config, runtime)
        self.precisions: dict[str, str] = {}
        self.notes: list[str] = []  # how graphs were loaded here (parity gate, int8 form)
        self.backend_info: dict[str, dict] = {}  # graph -> what ran it (+ fallback notes)

        def runner(name: str):
            gated = load_graph(bundle, name, runtime)
            self.notes += gated.notes
            self.precisions[name] = gated.variant.precision
            self.backend_info[name] = gated.info
            return gated.runner

        has_full = FACE_DETECTOR_FULL in bundle.graphs
        model = SHORT_RANGE if config.detector == SHORT_RANGE.name else FULL_RANGE
        if model is FULL_RANGE and not has_full:
            if config.detector == FULL_RANGE.name:
                raise ValueError(
                    f"{bundle.root}: detector 'full-range' asked for, but the bundle has no "
                    f"{FACE_DETECTOR_FULL} graph (re-export it, or use 'short-range')"
                )
            model = SHORT_RANGE
            self.notes.append(
                f"{bundle.root}: no {FACE_DETECTOR_FULL} graph; faces under ~60 px are missed"
            )
        self.detector_model = model
        self.detector = FaceDetector(
            runner(FACE_DETECTOR_FULL if model is FULL_RANGE else FACE_DETECTOR),
            score_threshold=(
                config.min_face_score if config.min_face_score is not None else model.min_score
            ),
            max_faces=config.max_faces,
            tiles=config.tiles,
            model=model,
        )
        self.landmarker = FaceLandmarker(runner(FACE_LANDMARKS)) if config.landmarks else None
        self.expression = ExpressionClassifier(
            runner(EXPRESSION), margin=config.expression_margin, flip=config.expression_flip
        )
        self._align = (
            config.expression_align and config.landmarks and (config.expression_margin is not None)
        )
        self.labels = tuple(bundle.graph(EXPRESSION).attrs.get("labels", FER_LABELS))
        self.tracker = FaceTracker()
        # What every expression event says ran it: the summary readings always had, and
        # each graph's runner info (route, providers, any fallback note).
        self.event_backend = {
            "runtime": "onnxruntime" if runtime.backend == "ort" else runtime.backend,
            "device": runtime.device,
            "precision": dict(self.precisions),
            "graphs": self.backend_info,
        }
        self._followed: list = []  # (FollowedFace, FaceLandmarks) of the last frame
        self._since_detect = 0
        self._last_t = float("-inf")

    def _verified(self, image, faces) -> tuple[list, list, list]:
        """Faces FaceMesh confirms, with their landmarks and measures."""
        if self.landmarker is None:
            return faces, [None] * len(faces), [None] * len(faces)
        kept, marks_kept, measures = [], [], []
        # FaceMesh's face-presence score verifies each face: BlazeFace alone fires at ~0.55
        # on face-like shapes (letters, clouds) where FaceMesh sees no face.
        for face, marks in zip(faces, self.landmarker.landmarks_many(image, faces), strict=True):
            if marks.presence >= self.config.min_presence:
                kept.append(face)
                marks_kept.append(marks)
                measures.append(measure(marks.points))
        return kept, marks_kept, measures

    def analyze(self, frame: Frame) -> list[dict]:
        """One ``expression`` event per face of ``frame`` (frames must come in order)."""
        return self.events(self.observe(frame))

    def observe(self, frame: Frame) -> FrameObservation:
        """Faces, expression and measures of one frame, without track ids.

        Keeps only the state needed to follow faces, so a pool of analyzers can observe
        alternate frames in parallel and one ``events`` call per frame, in order, tracks them.
        """
        image = check_frame(frame.image)
        h, w = image.shape[:2]
        t0 = time.perf_counter()
        # Follow only across a short step forward in time (not across a seek or a new source).
        step = frame.t - self._last_t
        self._last_t = frame.t
        followed = bool(self._followed) and self._since_detect < self.config.detect_every
        followed = followed and 0 <= step <= MAX_FOLLOW_STEP_S
        if followed:
            faces = [f.next_box(m.points, w, h) for f, m in self._followed]
        else:
            faces = self.detector.detect(image)
        t1 = time.perf_counter()
        kept, marks, measures = self._verified(image, faces)
        if followed and len(kept) < len(faces):
            # A followed face was lost: look for faces afresh on this very frame.
            followed = False
            t_det = time.perf_counter()
            faces = self.detector.detect(image)
            t1 += time.perf_counter() - t_det
            kept, marks, measures = self._verified(image, faces)
        faces = kept
        if followed:
            self._since_detect += 1
            self._followed = [(f, m) for (f, _), m in zip(self._followed, marks, strict=True)]
        else:
            self._since_detect = 1
            self._followed = (
                [
                    (FollowedFace.from_detection(b, m.points), m)
                    for b, m in zip(faces, marks, strict=True)
                ]
                if self.landmarker is not None and self.config.detect_every > 1
                else []
            )
        t2 = time.perf_counter()
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = [(f.x0, f.y0, f.x1, f.y1) for f in faces]
        angles = [eye_angle(m.points) for m in marks] if self._align else None
        probs = self.expression.classify(gray, boxes, angles)
        t3 = time.perf_counter()
        latency = {
            "detect": (t1 - t0) * 1e3 if not followed else 0.0,
            "landmarks": (t2 - t1) * 1e3,
            "expression": (t3 - t2) * 1e3,
        }
        return FrameObservation(frame, faces, boxes, probs, measures, latency, t0)

    def events(self, obs: FrameObservation) -> list[dict]:
        """Track ids and events for an observation; call in frame order."""
        frame = obs.frame
        ids = self.tracker.update(np.array(obs.boxes).reshape(-1, 4), frame.t)
        latency = {**obs.latency_ms, "total": (time.perf_counter() - obs.started) * 1e3}
        return [
            expression_event(
                t=frame.t,
                frame=frame.index,
                source=frame.source,
                track_id=tid,
                box=box,
                face_score=face.score,
                labels=self.labels,
                probs=p,
                clues=visual_clues(m, p, self.labels),
                measures=m.as_dict() if m is not None else None,
                latency_ms=latency,
                backend=self.event_backend,
            )
            for face, box, p, m, tid in zip(
                obs.faces, obs.boxes, obs.probs, obs.measures, ids, strict=True
            )
        ]
