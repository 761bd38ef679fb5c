"""The emotion_llama reasoner: a window's frames and audio through the bundle's four
encoders, their 260 tokens spliced at ``<VideoHere>``, the model's answer as the reading's
explanation and its emotion words as the label scores (AffectGPT's wheel and parser)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emolive.runtime.affectgpt.answers import answer_judgement
from emolive.runtime.affectgpt.prompt import answer_tokenizer
from emolive.runtime.affectgpt.reasoner import bundle_json
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle
from emolive.runtime.emotion_llama import spec
from emolive.runtime.emotion_llama.media import utterance, window_pixels
from emolive.runtime.emotion_llama.prompt import (
    cut_answer,
    prompt_pieces,
    prompt_segments,
    prompt_text,
    visual_tokens,
)
from emolive.runtime.llm.bundled import load_decoder
from emolive.runtime.llm.decoder import DecoderSession
from emolive.runtime.llm.generate import Generated, GenerationConfig, generate
from emolive.runtime.llm.segments import prefill
from emolive.runtime.names import LLM_DECODER, LLM_TOKENIZER
from emolive.runtime.parity import load_graph
from emolive.runtime.reasoning.stage import Judgement
from emolive.runtime.windows import Window

ENCODERS = (spec.VISION, spec.FACE, spec.VIDEO, spec.AUDIO)


@dataclass
class EmotionLlamaModel:
    """The bundle's graphs and files, loaded through the backends."""

    config: dict
    wheel: dict[str, str]
    encoders: dict[str, object]
    session: DecoderSession
    tokenizer: object
    precision: str = "fp32"
    backend_info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # the parity gate's, for the readings

    @classmethod
    def from_bundle(cls, bundle: Bundle, runtime: RuntimeConfig | None = None):
        runtime = runtime or RuntimeConfig()
        gated = {name: load_graph(bundle, name, runtime) for name in ENCODERS}
        decoder, session = load_decoder(bundle, runtime)
        runners = {name: g.runner for name, g in gated.items()}
        notes = [n for g in (*gated.values(), decoder) for n in g.notes]
        config = bundle_json(bundle, spec.CONFIG)
        return cls(
            config, bundle_json(bundle, spec.WHEEL).get("words", {}), runners,
            session,
            answer_tokenizer(bundle.file(LLM_TOKENIZER), config["decoding"]["stop_ids"]),
            decoder.variant.precision,
            {**{k: g.info for k, g in gated.items()}, LLM_DECODER: decoder.info},
            list(dict.fromkeys(notes)),
        )  # fmt: skip

    def encode(self, frames: list[np.ndarray], samples: np.ndarray,
               faces: list[np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
        """The 260 tokens [260, H] from the window's frames and face crops (BGR; no crops:
        MAE reads the frames) and 16 kHz samples."""
        pixels = window_pixels(frames, faces)
        vision = self.encoders[spec.VISION].run({spec.PIXELS: pixels[spec.VISION]})
        face = self.encoders[spec.FACE].run({spec.PIXELS: pixels[spec.FACE]})[spec.TOKEN]
        video = self.encoders[spec.VIDEO].run({spec.PIXELS: pixels[spec.VIDEO]})[spec.TOKEN]
        audio = self.encoders[spec.AUDIO].run({spec.SAMPLES: utterance(samples)})[spec.TOKEN]
        return visual_tokens(vision[spec.PATCHES], face, video, audio, vision[spec.CLS])

    def prompt(self, subtitle: str, task: str | None = None) -> list[list[int]]:
        task = task or self.config["task"]
        text = prompt_text(self.config["template"], self.tokenizer.neutralize(subtitle), task,
                           self.config["instructions"][task])  # fmt: skip
        return prompt_pieces(self.tokenizer, text, self.config.get("bos_id"))

    def generation_config(self, max_new_tokens: int | None = None) -> GenerationConfig:
        """The release's decoding: greedy, stop on ``</s>``."""
        d = self.config["decoding"]
        room = max(1, self.session.max_context - 512)  # the prompt is ~320 tokens
        budget = int(d["max_new_tokens"]) if max_new_tokens is None else max_new_tokens
        return GenerationConfig(max_new_tokens=min(budget, room),
                                stop_strings=tuple(d["stop_strings"]))  # fmt: skip

    def answer(self, visual: np.ndarray, subtitle: str, config: GenerationConfig,
               task: str | None = None) -> Generated:  # fmt: skip
        logits = prefill(self.session, prompt_segments(self.prompt(subtitle, task), visual))[-1]
        return generate(self.session, self.tokenizer, logits, config)


class EmotionLlamaReasoner:
    """``WindowReasoner``: one answer per window from its frames and audio together."""

    def __init__(self, model: EmotionLlamaModel, frames, audio) -> None:
        self.model, self.frames, self.audio = model, frames, audio
        self.load_notes: list[str] = list(model.notes)  # the parity gate's, if it spoke
        self.backend_info = dict(model.backend_info)

    def judge(self, window: Window, labels: Sequence[str], transcript: str | None = None,
              score: bool = True) -> Judgement:  # fmt: skip
        t0 = time.perf_counter()
        frames = self.frames.between(window.t_start, window.t_end) if self.frames else []
        samples = self.audio.between(window.t_start, window.t_end) if self.audio else None
        if not frames or samples is None or not len(samples):
            missing = "audio" if frames else "frames"
            why = f"emotion_llama reads video and audio together: no {missing} in this window"
            return Judgement(abstained=why, notes=[why])
        notes = []
        faces = None
        if getattr(self.frames, "faces", None) is not None:
            faces, _ = self.frames.faces_between(window.t_start, window.t_end)
            if not faces:
                notes.append("no face in this window: MAE read whole frames")
        visual = self.model.encode(frames, samples, faces)
        t1 = time.perf_counter()
        subtitle = window.evidence.transcript if transcript is None else transcript
        gen = self.model.answer(visual, subtitle or "", self.model.generation_config())
        t2 = time.perf_counter()
        timings = {"encoders": round((t1 - t0) * 1e3, 1), "llm_answer": round((t2 - t1) * 1e3, 1)}
        return answer_judgement(cut_answer(gen.text), labels, self.model.wheel, notes, timings,
                                self.model.precision)  # fmt: skip
