"""The emotion_llama profile: Emotion-LLaMA's EVA, MAE, VideoMAE and HuBERT tokens into
LLaMA-2. Vision keeps the frames (448×448), audio the samples; per window the reasoner
samples them as each encoder takes them (MAE the face crops the bundle's BlazeFace
cuts; the subtitle from the bundle's VAD + Whisper, as in the affectgpt profile), splices the 260 tokens at ``<VideoHere>`` and reads
the model's answer (runtime/emotion_llama)."""

from __future__ import annotations

from emolive.runtime.bundle import Bundle
from emolive.runtime.names import FACE_DETECTOR_FULL
from emolive.runtime.profiles import BuildContext, Pipeline
from emolive.runtime.profiles.affectgpt import audio_stage, backend_record


def build(bundle: Bundle, config, ctx: BuildContext) -> Pipeline:
    from emolive.runtime.affectgpt.faces import FaceCropper
    from emolive.runtime.affectgpt.media import FrameStore
    from emolive.runtime.emotion_llama import spec
    from emolive.runtime.emotion_llama.reasoner import EmotionLlamaModel, EmotionLlamaReasoner
    from emolive.runtime.reasoning.stage import ReasoningStage

    frames, notes = None, []
    if ctx.video:
        faces = None
        if FACE_DETECTOR_FULL in bundle.graphs:
            faces = FaceCropper.from_bundle(bundle, config.runtime)
        else:
            notes.append("emotion_llama: no face detector in this bundle, MAE reads whole frames")
        frames = FrameStore(size=spec.IMAGE_SIZE, faces=faces, on_failure=ctx.on_failure)
    audio, audio_notes = audio_stage(bundle, config, ctx, "emotion_llama")
    notes += audio_notes
    reasoner = ctx.reasoner
    if reasoner is None and config.reason:
        reasoner = EmotionLlamaReasoner(EmotionLlamaModel.from_bundle(bundle, config.runtime),
                                        frames, audio)  # fmt: skip
    faces = getattr(frames, "faces", None)
    notes = [*notes, *getattr(faces, "notes", []), *getattr(reasoner, "load_notes", [])]
    backend = backend_record(config, reasoner, frames and frames.faces, audio)
    reasoning = ReasoningStage(reasoner, labels=config.labels, backend=backend,
                               on_failure=ctx.on_failure)  # fmt: skip
    return Pipeline(frames, audio, reasoning, notes, backend)
