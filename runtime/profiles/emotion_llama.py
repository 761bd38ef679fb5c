"""The emotion_llama profile: Emotion-LLaMA's EVA, MAE, VideoMAE and HuBERT tokens into
LLaMA-2. Vision keeps the frames (448×448), audio the samples; per window the reasoner
samples them as each encoder takes them, splices the 260 tokens at ``<VideoHere>`` and reads
the model's answer (runtime/emotion_llama)."""

from __future__ import annotations

from emolive.runtime.bundle import Bundle
from emolive.runtime.profiles import BuildContext, Pipeline
from emolive.runtime.profiles.affectgpt import RUNTIME_NAMES


def build(bundle: Bundle, config, ctx: BuildContext) -> Pipeline:
    from emolive.runtime.affectgpt.media import AudioStore, FrameStore
    from emolive.runtime.emotion_llama import spec
    from emolive.runtime.emotion_llama.reasoner import EmotionLlamaModel, EmotionLlamaReasoner
    from emolive.runtime.reasoning.stage import ReasoningStage

    frames = FrameStore(size=spec.IMAGE_SIZE, on_failure=ctx.on_failure) if ctx.video else None
    audio = AudioStore(on_failure=ctx.on_failure) if ctx.audio else None
    notes = ["emotion_llama: MAE reads whole frames (no face detector in this profile)"]
    if audio:
        notes.append("emotion_llama: no ASR in this bundle, the subtitle is empty")
    reasoner = ctx.reasoner
    if reasoner is None and config.reason:
        reasoner = EmotionLlamaReasoner(EmotionLlamaModel.from_bundle(bundle, config.runtime),
                                        frames, audio)  # fmt: skip
    backend = {"runtime": RUNTIME_NAMES.get(config.runtime.backend, config.runtime.backend),
               "device": config.runtime.device,
               "graphs": dict(getattr(reasoner, "backend_info", {}))}  # fmt: skip
    reasoning = ReasoningStage(reasoner, labels=config.labels, backend=backend,
                               on_failure=ctx.on_failure)  # fmt: skip
    return Pipeline(frames, audio, reasoning, notes, backend)
