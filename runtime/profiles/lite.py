"""The lite profile: MediaPipe faces + mini-Xception expressions, Silero VAD + prosody +
Whisper, and SmolLM2 reading the clues in words (text-level fusion, EmoPrompt)."""

from __future__ import annotations

from emolive.runtime.bundle import Bundle
from emolive.runtime.names import (
    EXPRESSION,
    FACE_DETECTOR,
    FACE_LANDMARKS,
    LLM_DECODER,
    WORDS_ENCODER,
)
from emolive.runtime.profiles import BuildContext, Pipeline

RUNTIME_NAMES = {"ort": "onnxruntime", "trt": "tensorrt"}
# What `emo-live run --precision` forces: the vision graphs (the LLM's and the words' forms
# are chosen per CPU by the bundle).
PRECISION_GRAPHS = (FACE_DETECTOR, FACE_LANDMARKS, EXPRESSION)


def build(bundle: Bundle, config, ctx: BuildContext) -> Pipeline:
    from emolive.runtime.fusion import FusionModel
    from emolive.runtime.reasoning.hesitancy import hesitancy
    from emolive.runtime.reasoning.stage import ReasoningStage

    runtime = config.runtime
    notes: list[str] = []
    graphs: dict[str, dict] = {}
    vision = None
    if ctx.video:
        from emolive.runtime.vision.analyzer import FaceAnalyzer, VisionConfig
        from emolive.runtime.vision.stage import VisionStage

        options = config.vision or VisionConfig()
        analyzers = [FaceAnalyzer(bundle, options, runtime=runtime) for _ in range(options.workers)]
        vision = VisionStage(
            analyzers, every=config.every, keep_latest=True, on_failure=ctx.on_failure
        )
        notes += analyzers[0].notes
        graphs.update(analyzers[0].backend_info)
    audio = None
    if ctx.audio:
        from emolive.runtime.audio.stage import AudioStage

        audio = AudioStage.from_bundle(
            bundle, clock=ctx.clock, on_failure=ctx.on_failure, runtime=runtime
        )
        notes += audio.vad.notes
        graphs.update(audio.backend_info)
    words = None
    if WORDS_ENCODER in bundle.graphs:
        from emolive.runtime.words import WordsReader

        words = WordsReader.from_bundle(bundle, runtime)
        notes += words.notes
        graphs.update(words.backend_info)
    model = FusionModel.from_bundle(bundle)
    reasoner = ctx.reasoner
    if reasoner is None and config.reason:
        reasoner = _llm_reasoner(bundle, config, notes, scores=model.weight("llm") > 0)
    notes += list(getattr(reasoner, "load_notes", []))
    graphs.update(getattr(reasoner, "backend_info", {}))
    backend: dict = {"runtime": RUNTIME_NAMES.get(runtime.backend, runtime.backend),
                     "device": runtime.device, "graphs": graphs}  # fmt: skip
    if vision is not None:
        backend["precision"] = dict(vision.analyzer.precisions)
    reasoning = ReasoningStage(
        reasoner, labels=config.labels, backend=backend, on_failure=ctx.on_failure,
        words=words, model=model, hesitancy=hesitancy,
    )  # fmt: skip
    return Pipeline(vision, audio, reasoning, list(dict.fromkeys(notes)), backend)


def _llm_reasoner(bundle: Bundle, config, notes: list[str], scores: bool):
    from emolive.runtime.llm.model import LlmOptions
    from emolive.runtime.reasoning.reasoner import ReasonerConfig
    from emolive.runtime.reasoning.stage import LlmReasoner

    if LLM_DECODER not in bundle.graphs:
        notes.append("no reasoning LLM in the bundle: readings are not explained")
        return None
    reasoner = ReasonerConfig(
        labels=tuple(config.labels),
        max_explanation_tokens=config.explanation_tokens,
        max_explanation_sentences=1,
    )
    # The LLM shares the cores with capture, vision and audio: its ONNX Runtime threads
    # must not spin while waiting (spinning suits a benchmark, not a pipeline).
    return LlmReasoner.from_bundle(
        bundle, reasoner, LlmOptions(spin=False), config.runtime, scores=scores
    )
