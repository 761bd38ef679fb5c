"""The affectgpt face-crop model live, with the subtitle from on-device ASR.

A tiny face-model checkpoint (its saved config says ``multiface_audio_face_text``) exports
with every stage: the model's graphs, the lite BlazeFace full-range (checked against its
tflite) and the lite VAD + Whisper. A session then reads a clip whose first half shows a real
face while a voice speaks and whose second half shows none: the face windows are read from
the face crops with the spoken words as the subtitle, the faceless ones abstain and say why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from emolive.runtime.affectgpt import spec
from emolive.runtime.names import FACE_DETECTOR_FULL, FER_LABELS, LLM_DECODER, VAD
from tests.test_affectgpt_tiny import FACE_CONFIG, build_folders, write_checkpoint
from tests.tiny_exports import export_tiny
from tests.tiny_media import face_clip, read_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def face_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("affectgpt_face")
    ckpt = write_checkpoint(root / "checkpoint_000003_loss_0.500.pth", config=FACE_CONFIG)
    export_tiny("affectgpt", root / "bundle", ckpt, build_folders(root))
    return root / "bundle"


def test_the_face_bundle_carries_the_detector_and_the_speech_models(face_bundle):
    from emolive.runtime.bundle import Bundle

    b = Bundle.open(face_bundle)
    assert b.graph(spec.VISION).attrs["mode"] == "face"
    assert {FACE_DETECTOR_FULL, VAD, LLM_DECODER} <= set(b.graphs)
    checks = b.manifest["checks"]
    assert checks["model"]["checkpoint"]["mode"] == "face"
    assert checks["faces"]["tflite_frames"] > 0  # the detector was checked against its tflite
    config = json.loads(b.file(spec.CONFIG).read_text())
    assert "<FaceHere>" in config["template"] and "<FrameHere>" not in config["template"]


def test_face_crops_are_level_bgr_and_centred(face_bundle, media_bgr):
    from emolive.runtime.affectgpt.faces import FaceCropper, face_crop, main_face
    from emolive.runtime.bundle import Bundle

    cropper = FaceCropper.from_bundle(Bundle.open(face_bundle))
    image = media_bgr("single_face.jpg")
    h, w = image.shape[:2]
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h))
    face = main_face(cropper.detector.detect(turned))
    (rx, ry), (lx, ly) = face.keypoints[:2]
    assert abs(np.degrees(np.arctan2(ly - ry, lx - rx))) > 12  # the face in the frame is tilted
    crop = face_crop(turned, face)
    assert crop.shape == (spec.FACE_CROP, spec.FACE_CROP, 3) and crop.dtype == np.uint8
    again = main_face(cropper.detector.detect(cv2.resize(crop, (224, 224))))
    (rx, ry), (lx, ly) = again.keypoints[:2]
    assert abs(np.degrees(np.arctan2(ly - ry, lx - rx))) < 6  # ... and level in its crop
    assert abs(again.centre[0] - 112) < 25 and abs(again.centre[1] - 112) < 35
    # BGR kept (AffectGPT's crops are read with cv2 and never converted): a blue frame gives
    # a blue crop in channel 0.
    blue = np.zeros_like(image)
    blue[..., 0] = 255
    assert face_crop(blue, face)[56, 56].tolist() == [255, 0, 0]
    assert cropper.crop(np.full((240, 320, 3), 90, np.uint8)) is None  # no face: no crop


def test_a_live_session_reads_faces_with_the_spoken_subtitle(face_bundle, media_bgr, tmp_path,
                                                             monkeypatch):  # fmt: skip
    from emolive.runtime.affectgpt.reasoner import AffectGptModel

    subtitles: list[str] = []
    prompt_ids = AffectGptModel.prompt_ids

    def recording(self, subtitle, *args):  # the real method, its subtitle recorded
        subtitles.append(subtitle)
        return prompt_ids(self, subtitle, *args)

    monkeypatch.setattr(AffectGptModel, "prompt_ids", recording)
    clip = face_clip(tmp_path / "face.mp4", media_bgr("single_face.jpg"))
    _, readings, stats = read_file(face_bundle, clip, 1.0)
    assert stats["frames_with_faces"] >= 15 and stats["frames_with_faces"] <= 25, stats
    # The speech was transcribed into the prompt's subtitle.
    assert any("happy" in s.lower() for s in subtitles), subtitles
    assert not any("no ASR" in n for r in readings for n in r["notes"])
    read = [r for r in readings if "llm_answer" in r["latency_ms"]]
    assert read and all(FACE_DETECTOR_FULL in r["backend"]["graphs"] for r in read)
    # The windows after the face left have no face evidence: they abstain and say so.
    faceless = [r for r in readings if r["t_start"] >= 2.2]
    assert faceless, [(r["t_start"], r["t_end"]) for r in readings]
    for r in faceless:
        assert r["emotion"] is None and "no face" in r["abstained"], r


def test_a_face_bundle_without_its_detector_is_refused_by_name(face_bundle, tmp_path):
    from emolive.runtime.bundle import BundleError
    from emolive.runtime.session import Session, SessionConfig

    copy = tmp_path / "bundle"
    shutil.copytree(face_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["graphs"][FACE_DETECTOR_FULL]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), np.full((120, 160, 3), 90, np.uint8))
    with pytest.raises(BundleError, match=rf"needs graph '{FACE_DETECTOR_FULL}'.*'faces' stage"):
        Session(SessionConfig(bundle=copy, source=str(image), labels=FER_LABELS))
