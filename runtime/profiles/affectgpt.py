"""The affectgpt profile: AffectGPT's embedding-level fusion of frames, voice and words.

Vision keeps the frames, audio keeps the samples (and, where the bundle has the lite VAD
and Whisper, transcribes utterances for the subtitle); per window the reasoner samples 8
frames and 8 clips, runs the bundle's encoders and fusion graph, splices the tokens at
their placeholders and reads the model's answer (runtime/affectgpt)."""

from __future__ import annotations

from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.profiles import BuildContext, Pipeline

RUNTIME_NAMES = {"ort": "onnxruntime", "trt": "tensorrt"}


def build(bundle: Bundle, config, ctx: BuildContext) -> Pipeline:
    from emolive.runtime.affectgpt import spec
    from emolive.runtime.affectgpt.media import AudioStore, FrameStore
    from emolive.runtime.affectgpt.reasoner import AffectGptModel, AffectGptReasoner
    from emolive.runtime.reasoning.stage import ReasoningStage

    mode = bundle.graph(spec.VISION).attrs.get("mode", "frame")
    if mode != "frame":
        raise BundleError(
            bundle.root / "manifest.json",
            f"graph {spec.VISION!r} attrs 'mode' is {mode!r}: the live runtime samples whole "
            "frames; the face-crop model needs a face detector this profile does not run yet",
        )
    frames = FrameStore(on_failure=ctx.on_failure) if ctx.video else None
    audio = AudioStore(on_failure=ctx.on_failure) if ctx.audio else None
    notes = ["affectgpt: no ASR in this bundle, the subtitle is empty"] if audio else []
    reasoner = ctx.reasoner
    if reasoner is None and config.reason:
        model = AffectGptModel.from_bundle(bundle, config.runtime)
        reasoner = AffectGptReasoner(model, frames, audio)
    graphs = dict(getattr(reasoner, "backend_info", {}))
    backend = {"runtime": RUNTIME_NAMES.get(config.runtime.backend, config.runtime.backend),
               "device": config.runtime.device, "graphs": graphs}  # fmt: skip
    reasoning = ReasoningStage(reasoner, labels=config.labels, backend=backend,
                               on_failure=ctx.on_failure)  # fmt: skip
    return Pipeline(frames, audio, reasoning, notes, backend)
