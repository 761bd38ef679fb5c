"""Windows as the LLM profiles' reasoners see them, cut from media files with audio.

A window is ``window_s`` seconds of a clip: its frames resized to the profile's square size
(BGR, as the runtime's FrameStore keeps them: 224 for affectgpt, 448 for emotion_llama) and
its 16 kHz audio. affectgpt samples 8 of the frames (``pixels``) and cuts the audio into 8
clips (``clips``); emotion_llama's encoders take the frames and samples whole, and its MAE the
face crops (``faces``) the bundle's detector cuts from the full-size frames. affectgpt's face
model reads ``face_pixels``: the frames go through the runtime's own FrameStore with the
bundle's detector, and 8 of the crops come out resized to 224 as a session samples them (None:
no face, where a session abstains). Calibration windows come from the calibration media and
check windows from the evaluation media; ``check_disjoint`` refuses a split that shares a file or a person.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Protocol

import cv2
import numpy as np

from emolive.calibrate.media import MediaFile, MediaSplitError
from emolive.runtime.affectgpt import spec
from emolive.runtime.affectgpt.media import FrameStore, clips_of, frame_indices
from emolive.runtime.sources.audio_files import open_audio_file
from emolive.runtime.sources.errors import AudioSourceError
from emolive.runtime.sources.video import SourceError, VideoFile

WINDOW_S = 2.0
# Below this peak a window's audio is silence (the built-in calibration clip has a silent
# track): its clips are then voiced with these sentences, never the evaluation side's.
SILENT_PEAK = 1e-4
CALIBRATION_SPEECH = (
    "I waited all week for this and it finally came.",
    "Why would anyone leave the gate open in this weather?",
    "Well, that is one way to spend a Sunday afternoon.",
    "Please, just tell me what the doctor said.",
)


@dataclass(frozen=True)
class Window:
    media: str
    t_start: float
    t_end: float
    frames: tuple[np.ndarray, ...]  # [size, size, 3] uint8 BGR, the window's frames
    samples: np.ndarray  # [n] float32 16 kHz
    faces: tuple[np.ndarray, ...] = ()  # the frames' main-face crops, where one was found
    # affectgpt's face model: [8, 3, 224, 224] float32 0..255 BGR, 8 of ``faces`` as the
    # FrameStore samples them; None: no face (or the window was not cut for a face model)
    face_pixels: np.ndarray | None = None

    @cached_property
    def pixels(self) -> np.ndarray:
        """affectgpt's [8, 3, 224, 224] float32 0..255 BGR."""
        picked = [self.frames[i] for i in frame_indices(len(self.frames))]
        return np.stack(picked).transpose(0, 3, 1, 2).astype(np.float32)

    @cached_property
    def clips(self) -> np.ndarray:
        """affectgpt's [8, 32000] float32."""
        return clips_of(self.samples)

    def record(self) -> dict:
        return {"media": self.media, "t_start": round(self.t_start, 3),
                "t_end": round(self.t_end, 3)}  # fmt: skip


def _audio(path) -> np.ndarray:
    try:
        chunks = [c.samples for c in open_audio_file(path)]
    except AudioSourceError as e:
        raise MediaSplitError(f"calibration media {path}: {e}") from e
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


class Cropper(Protocol):
    def crop(self, image_bgr: np.ndarray) -> np.ndarray | None: ...


def media_windows(m: MediaFile, window_s: float = WINDOW_S, size: int = spec.IMAGE_SIZE,
                  crop: Cropper | None = None, face_pixels: bool = False) -> list[Window]:  # fmt: skip
    """The whole ``window_s`` windows of one clip (a shorter clip gives one window), frames
    ``size`` px square; ``crop``: its ``crop`` takes a frame to its face crop or None (as the
    FrameStore cuts them, from the full-size frame); ``face_pixels``: also sample the crops
    as the FrameStore samples them for affectgpt's face model (needs ``crop``)."""
    if face_pixels and crop is None:
        raise ValueError("face_pixels needs the bundle's face cropper")
    if not m.is_video:
        return []
    path = m.path()
    try:
        frames = [f for f in VideoFile(path).frames() if f.index % m.every == 0]
    except SourceError as e:
        raise MediaSplitError(f"calibration media {path}: {e}") from e
    samples = _audio(path)
    if not frames:
        return []
    end = max(frames[-1].t, len(samples) / spec.SAMPLE_RATE)
    count = max(1, int(end // window_s))
    out = []
    for k in range(count):
        t0, t1 = k * window_s, (k + 1) * window_s if k < count - 1 else end
        picked = [f for f in frames if t0 <= f.t < t1] or [frames[-1]]
        small = tuple(cv2.resize(f.image, (size, size), interpolation=cv2.INTER_LINEAR)
                      for f in picked)  # fmt: skip
        audio = samples[int(t0 * spec.SAMPLE_RATE) : int(t1 * spec.SAMPLE_RATE)]
        if face_pixels:
            faces, pixels = session_faces(picked, crop)
            out.append(Window(m.name, t0, t1, small, audio, faces, pixels))
            continue
        faces = tuple(c for c in map(crop.crop, (f.image for f in picked)) if c is not None) \
            if crop else ()  # fmt: skip
        out.append(Window(m.name, t0, t1, small, audio, faces))
    return out


def session_faces(
    frames: Sequence, crop: Cropper
) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    """The window's face crops and the face model's pixels, as a session's FrameStore keeps
    and samples them: the full-size ``frames`` (with ``t`` and ``image``) go through a
    FrameStore holding ``crop`` as its face cropper."""
    store = FrameStore(keep_s=math.inf, faces=crop, frames=False)
    for f in frames:
        store.process(f)
    crops, _ = store.faces_between(-math.inf, math.inf)
    return tuple(crops), store.sample_faces(-math.inf, math.inf)


def windows(media: Sequence[MediaFile], window_s: float = WINDOW_S, size: int = spec.IMAGE_SIZE,
            crop: Cropper | None = None, face_pixels: bool = False) -> list[Window]:  # fmt: skip
    got = [w for m in media for w in media_windows(m, window_s, size, crop, face_pixels)]
    if not got:
        names = ", ".join(m.name for m in media)
        raise MediaSplitError(f"no video clip among the calibration media ({names})")
    return got


def voiced(got: Sequence[Window], sentences: Sequence[str] = CALIBRATION_SPEECH) -> tuple[
    list[Window], int]:  # fmt: skip
    """Windows whose audio is silent, with espeak-ng speech of ``sentences`` in turn (the
    audio encoder's ranges must be fitted on a voice); returns them and how many were voiced.
    Without espeak-ng they stay silent (the report says so)."""
    from emolive.export.democlip import ClipError, speech

    out, count, voices = [], 0, {}
    for w in got:
        if not silent(w):
            out.append(w)
            continue
        text = sentences[count % len(sentences)]
        try:
            voices[text] = voices[text] if text in voices else speech(text)
        except ClipError:
            return list(got), 0
        out.append(replace(w, samples=voices[text]))
        count += 1
    return out, count


def silent(w: Window) -> bool:
    return float(np.abs(w.samples).max(initial=0.0)) < SILENT_PEAK
