"""The vision stage's work on one frame: faces, landmarks, expression, clues, tracks."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from emolive.runtime import backends
from emolive.runtime.bundle import Bundle
from emolive.runtime.media import Frame
from emolive.runtime.names import EXPRESSION, FACE_DETECTOR, FACE_LANDMARKS, FER_LABELS
from emolive.runtime.readings import expression_event
from emolive.runtime.video import check_frame
from emolive.runtime.vision.clues import measure, visual_clues
from emolive.runtime.vision.detector import FaceDetector
from emolive.runtime.vision.expression import ExpressionClassifier
from emolive.runtime.vision.landmarks import FaceLandmarker
from emolive.runtime.vision.tracker import FaceTracker


@dataclass(frozen=True)
class VisionConfig:
    backend: str = "ort"
    device: str = "cpu"
    threads: int | None = None
    precision: str | None = None  # None: the variant the bundle measured best for the device
    max_faces: int = 10
    min_face_score: float = 0.5
    min_presence: float = 0.5  # FaceMesh face-presence a detection needs to count as a face
    landmarks: bool = True  # verification and visual clues need landmarks
    # 2: also look at four overlapping tiles, for small faces in group shots (~5x detect cost).
    tiles: int = 1


class FaceAnalyzer:
    """Frame in, one ``expression`` event per face out. Synchronous; the stage threads it."""

    def __init__(self, bundle: Bundle, config: VisionConfig = VisionConfig()) -> None:
        self.config = config
        self.precisions: dict[str, str] = {}

        def runner(name: str):
            variant = bundle.graph(name).variant(config.precision, config.device)
            self.precisions[name] = variant.precision
            return backends.load(
                config.backend, variant.path, variant.precision,
                device=config.device, threads=config.threads,
            )  # fmt: skip

        self.detector = FaceDetector(
            runner(FACE_DETECTOR),
            score_threshold=config.min_face_score,
            max_faces=config.max_faces,
            tiles=config.tiles,
        )
        self.landmarker = FaceLandmarker(runner(FACE_LANDMARKS)) if config.landmarks else None
        self.expression = ExpressionClassifier(runner(EXPRESSION))
        self.labels = tuple(bundle.graph(EXPRESSION).attrs.get("labels", FER_LABELS))
        self.tracker = FaceTracker()
        self.backend_info = {
            "runtime": "onnxruntime" if config.backend == "ort" else config.backend,
            "device": config.device,
            "precision": dict(self.precisions),
        }

    def analyze(self, frame: Frame) -> list[dict]:
        image = check_frame(frame.image)
        t0 = time.perf_counter()
        faces = self.detector.detect(image)
        t1 = time.perf_counter()
        measures = []
        if self.landmarker is not None:
            # FaceMesh's face-presence score verifies each detection: BlazeFace alone fires
            # at ~0.55 on face-like shapes (letters, clouds) where FaceMesh sees no face.
            kept = []
            for face, marks in zip(
                faces, self.landmarker.landmarks_many(image, faces), strict=True
            ):
                if marks.presence >= self.config.min_presence:
                    kept.append(face)
                    measures.append(measure(marks.points))
            faces = kept
        else:
            measures = [None] * len(faces)
        t2 = time.perf_counter()
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = [(f.x0, f.y0, f.x1, f.y1) for f in faces]
        probs = self.expression.classify(gray, boxes)
        t3 = time.perf_counter()
        ids = self.tracker.update(np.array(boxes).reshape(-1, 4), frame.t)
        latency = {
            "detect": (t1 - t0) * 1e3,
            "landmarks": (t2 - t1) * 1e3,
            "expression": (t3 - t2) * 1e3,
            "total": (time.perf_counter() - t0) * 1e3,
        }
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
                backend=self.backend_info,
            )
            for face, box, p, m, tid in zip(faces, boxes, probs, measures, ids, strict=True)
        ]
