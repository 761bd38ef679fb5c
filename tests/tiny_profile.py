"""A tiny extra profile, as a plug-in would write one: one module, registered by name.

Its vision stage reads a 4×4 grey thumbnail of each frame through a random-weight ONNX graph
(``tiny_scores``: 16 features -> softmax over three labels) loaded through the backend
protocol, and emits schema-valid ``expression`` events; the reasoning stage is the standard
one (no LLM: readings rest on the face). Nothing in the session knows this profile.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from emolive.runtime import backends
from emolive.runtime.profiles import BuildContext, Pipeline
from emolive.runtime.readings import expression_event
from emolive.runtime.stage import Stage

NAME = "tiny"
GRAPH = "tiny_scores"
LABELS = ("happy", "sad", "neutral")


def thumbnail(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (4, 4), interpolation=cv2.INTER_AREA).reshape(1, 16) / 255.0


def write_graph(path, seed: int = 0):
    """The profile's one graph, with random weights: x [1, 16] -> probs [1, 3]."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(16, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        GRAPH,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(w, "W")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w


class TinyVision(Stage):
    def __init__(self, runner, **options) -> None:
        options.setdefault("keep_latest", True)
        super().__init__("vision", **options)
        self.runner = runner
        self.last_t = 0.0
        self.latest = None

    def process(self, frame):
        x = thumbnail(frame.image).astype(np.float32)
        probs = self.runner.run({"x": x})["probs"][0]
        self.last_t = frame.t
        event = expression_event(
            t=frame.t, frame=frame.index, source=frame.source, track_id=1,
            box=[0, 0, frame.image.shape[1], frame.image.shape[0]], face_score=1.0,
            labels=LABELS, probs=probs, clues=[], measures=None, latency_ms={},
            backend=self.runner.info,
        )  # fmt: skip
        self.latest = (frame, [event])
        return [event]

    def session_stats(self) -> dict:
        return {"frames_analysed": self.stats.processed}


def build(bundle, config, ctx: BuildContext) -> Pipeline:
    from emolive.runtime.reasoning.stage import ReasoningStage

    variant = bundle.graph(GRAPH).variant(None, config.runtime.device)
    runner = backends.load(config.runtime, variant.path, variant.precision)
    vision = TinyVision(runner, on_failure=ctx.on_failure) if ctx.video else None
    backend = {"graphs": {GRAPH: runner.info}}
    reasoning = ReasoningStage(ctx.reasoner, labels=config.labels, backend=backend,
                               on_failure=ctx.on_failure)  # fmt: skip
    return Pipeline(vision, None, reasoning, ["tiny profile: readings rest on the face"], backend)
