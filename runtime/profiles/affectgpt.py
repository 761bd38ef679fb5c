"""The affectgpt profile: AffectGPT's embedding-level fusion of frames, voice and words.

Vision keeps the frames (the face model: each frame's main-face crop, from the bundle's
BlazeFace), audio keeps the samples (and, where the bundle has the lite VAD and Whisper,
cuts utterances and transcribes them for the subtitle); per window the reasoner samples 8
frames or crops and 8 clips, runs the bundle's encoders and fusion graph, splices the tokens at
their placeholders and reads the model's answer (runtime/affectgpt)."""

from __future__ import annotations

from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.names import ASR_DIR, ASR_FILES, VAD
from emolive.runtime.profiles import BuildContext, Pipeline

RUNTIME_NAMES = {"ort": "onnxruntime", "trt": "tensorrt"}


def has_speech(bundle: Bundle) -> bool:
    """Whether the bundle carries the lite VAD and Whisper files (the 'speech' stage)."""
    files = bundle.manifest.get("files", {})
    return VAD in bundle.graphs and all(f"{ASR_DIR}/{n}" in files for n in ASR_FILES)


def audio_stage(bundle: Bundle, config, ctx: BuildContext, profile: str):
    """(the audio stage, notes): SpeechAudio (VAD + Whisper write the subtitle) where the
    bundle has the 'speech' stage, else AudioStore (samples only) and a note naming
    ``profile`` that the subtitle is empty; (None, []) when the session has no audio."""
    from emolive.runtime.affectgpt.media import AudioStore, SpeechAudio

    if not ctx.audio:
        return None, []
    if has_speech(bundle):
        speech = SpeechAudio.from_bundle(
            bundle, clock=ctx.clock, on_failure=ctx.on_failure, runtime=config.runtime
        )
        return speech, list(speech.vad.notes)  # the gate's, if it refused a VAD variant
    note = f"{profile}: no ASR in this bundle, the subtitle is empty"
    return AudioStore(on_failure=ctx.on_failure), [note]


def backend_record(config, *parts) -> dict:
    """The readings' ``backend`` record: the runtime, the device, and every graph the
    ``parts`` (reasoner, face cropper, audio stage; None where absent) loaded."""
    graphs = {}
    for part in parts:
        graphs.update(getattr(part, "backend_info", {}))
    return {"runtime": RUNTIME_NAMES.get(config.runtime.backend, config.runtime.backend),
            "device": config.runtime.device, "graphs": graphs}  # fmt: skip


def build(bundle: Bundle, config, ctx: BuildContext) -> Pipeline:
    from emolive.runtime.affectgpt import spec
    from emolive.runtime.affectgpt.faces import FaceCropper
    from emolive.runtime.affectgpt.media import FrameStore
    from emolive.runtime.affectgpt.reasoner import (
        AffectGptModel,
        AffectGptReasoner,
        present_perspectives,
    )
    from emolive.runtime.reasoning.stage import ReasoningStage

    mode = bundle.graph(spec.VISION).attrs.get("mode", "frame")
    if mode not in ("frame", "face"):
        raise BundleError(
            bundle.root / "manifest.json",
            f"graph {spec.VISION!r} attrs 'mode' is {mode!r}: 'frame' or 'face' expected",
        )
    frames = None
    if ctx.video:
        # What the model's own perspective and each extra one the bundle has read.
        reads = {spec.PERSPECTIVE_PIXELS[p] for p in (mode, *present_perspectives(bundle))}
        faces = FaceCropper.from_bundle(bundle, config.runtime) if "faces" in reads else None
        frames = FrameStore(faces=faces, frames="frames" in reads, on_failure=ctx.on_failure)
    audio, notes = audio_stage(bundle, config, ctx, "affectgpt")
    reasoner = ctx.reasoner
    if reasoner is None and config.reason:
        model = AffectGptModel.from_bundle(bundle, config.runtime)
        reasoner = AffectGptReasoner(model, frames, audio)
    faces = getattr(frames, "faces", None)
    notes = [*notes, *getattr(faces, "notes", []), *getattr(reasoner, "load_notes", [])]
    backend = backend_record(config, reasoner, audio)
    reasoning = ReasoningStage(reasoner, labels=config.labels, backend=backend,
                               on_failure=ctx.on_failure)  # fmt: skip
    return Pipeline(frames, audio, reasoning, notes, backend)
