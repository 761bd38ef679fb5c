"""A window's frames and audio, sampled as Emotion-LLaMA's encoders take them.

* EVA: the window's first frame (the release reads a video's first frame), 448×448.
* MAE: 8 face crops spread over the window (``affectgpt.media.frame_indices``), 224×224,
  whose features the graph averages: the utterance-level (``_UTT``) feature of the release's
  OpenFace crops, cut here by the bundle's BlazeFace (runtime/affectgpt/faces.py). Where the
  bundle has no detector or the window no face, whole frames go in (the reading says so).
* VideoMAE: 16 frames, 8 segments of 2 consecutive frames each starting at
  ``int(tick / 2 + tick · k)`` with ``tick = (n - 1) / 8`` (the TSN sampling of its feature
  extractor; all from frame 0 when the window has fewer than 10 frames), 224×224.
* HuBERT: the window's samples whole (at least one 25 ms frame, zero-padded).
"""

from __future__ import annotations

import cv2
import numpy as np

from emolive.runtime.affectgpt.media import frame_indices
from emolive.runtime.emotion_llama import spec

SEGMENTS, SEGMENT_LENGTH = 8, 2


def video_indices(n: int) -> np.ndarray:
    if n < 1:
        raise ValueError("no frames to sample")
    if n > SEGMENTS + SEGMENT_LENGTH - 1:
        tick = (n - SEGMENT_LENGTH + 1) / SEGMENTS
        starts = np.array([int(tick / 2.0 + tick * k) for k in range(SEGMENTS)])
    else:
        starts = np.zeros(SEGMENTS, int)
    idx = (starts[:, None] + np.arange(SEGMENT_LENGTH)[None]).reshape(-1)
    return np.minimum(idx, n - 1)


def _stack(images: list[np.ndarray], size: int) -> np.ndarray:
    """[n, 3, size, size] float32 0..255 BGR."""
    out = [im if im.shape[0] == size else cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
           for im in images]  # fmt: skip
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32)


def window_pixels(frames: list[np.ndarray], faces: list[np.ndarray] | None = None
                  ) -> dict[str, np.ndarray]:  # fmt: skip
    """The three pixel inputs from the window's frames (BGR, any square size) and face crops
    (None or empty: MAE reads the frames)."""
    crops = faces or frames
    return {
        spec.VISION: _stack([frames[0]], spec.IMAGE_SIZE),
        spec.FACE: _stack([crops[i] for i in frame_indices(len(crops), spec.FACE_FRAMES)],
                          spec.CROP_SIZE),
        spec.VIDEO: _stack([frames[i] for i in video_indices(len(frames))], spec.CROP_SIZE),
    }  # fmt: skip


def utterance(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, np.float32)
    if len(x) < spec.MIN_SAMPLES:
        x = np.concatenate([x, np.zeros(spec.MIN_SAMPLES - len(x), np.float32)])
    return x
