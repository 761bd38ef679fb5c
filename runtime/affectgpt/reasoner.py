"""The affectgpt reasoner: a window's frames and audio through the bundle's encoders, the
tokens spliced at their placeholders, the model's answer as the reading's explanation."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emolive.runtime import backends
from emolive.runtime.affectgpt import spec
from emolive.runtime.affectgpt.answers import cut_answer, parse_answer
from emolive.runtime.affectgpt.media import AudioStore, FrameStore, clips_of
from emolive.runtime.affectgpt.prompt import answer_tokenizer, prompt_segments
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession
from emolive.runtime.llm.generate import Generated, GenerationConfig, generate
from emolive.runtime.llm.segments import prefill
from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS, LLM_TOKENIZER
from emolive.runtime.reasoning.stage import Judgement
from emolive.runtime.windows import Window


@dataclass
class AffectGptModel:
    """The bundle's graphs and files, loaded through the backends."""

    config: dict
    wheel: dict[str, str]
    vision: object
    audio: object
    fusion: object
    session: DecoderSession
    tokenizer: object
    precision: str = "fp32"
    backend_info: dict = field(default_factory=dict)

    @classmethod
    def from_bundle(cls, bundle: Bundle, runtime: RuntimeConfig | None = None) -> AffectGptModel:
        runtime = runtime or RuntimeConfig()
        config = _json(bundle, spec.CONFIG)
        wheel = _json(bundle, spec.WHEEL).get("words", {})
        runners, info = {}, {}
        for name in (spec.VISION, spec.AUDIO, spec.FUSION, LLM_DECODER):
            variant = bundle.graph(name).variant(runtime.precision_for(name), runtime.device)
            runners[name] = backends.load(runtime, variant.path, variant.precision)
            info[name] = runners[name].info
        entry = bundle.graph(LLM_DECODER)
        layout = DecoderLayout.from_attrs(entry.attrs, f"{bundle.root}/manifest.json {LLM_DECODER}")
        emb_path = bundle.file(LLM_EMBEDDINGS)
        try:
            embeddings = np.load(emb_path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise BundleError(emb_path, f"not a readable .npy embedding table: {e}") from e
        session = DecoderSession(
            runners[LLM_DECODER], embeddings, layout, int(entry.attrs.get("max_context", 2048))
        )
        tokenizer = answer_tokenizer(bundle.file(LLM_TOKENIZER), config["decoding"]["stop_ids"])
        return cls(config, wheel, runners[spec.VISION], runners[spec.AUDIO], runners[spec.FUSION],
                   session, tokenizer, runners[LLM_DECODER].precision, info)  # fmt: skip

    def placeholder(self, name: str) -> int:
        return int(self.config["placeholders"][name])

    def encode(self, pixels: np.ndarray, clips: np.ndarray) -> dict[str, np.ndarray]:
        """The three modality tokens [1, H] by placeholder."""
        v = self.vision.run({spec.PIXELS: pixels})
        a = self.audio.run({spec.CLIPS: clips})
        m = self.fusion.run(
            {spec.VIDEO_MEAN: v[spec.FEATURE_MEAN], spec.AUDIO_MEAN: a[spec.FEATURE_MEAN]}
        )
        visual = "<FaceHere>" if self.config["mode"] == "face" else "<FrameHere>"
        return {visual: v[spec.TOKEN], "<AudioHere>": a[spec.TOKEN], "<MultiHere>": m[spec.TOKEN]}

    def prompt_ids(self, subtitle: str, question: str | None = None) -> list[int]:
        q = self.config["questions"][question or self.config["question"]]
        text = self.config["template"].format(
            subtitle=self.tokenizer.neutralize(subtitle), question=q
        )
        return self.tokenizer.encode(text)

    def generation_config(
        self, seed: int | None = None, greedy: bool = False, max_new_tokens: int | None = None
    ) -> GenerationConfig:
        """The bundle's decoding (sampling, top_p, top_k, stop on ### / eos); ``greedy`` for
        checks; ``max_new_tokens`` below the model's own budget (None: the model's)."""
        d = self.config["decoding"]
        room = max(1, self.session.max_context - 256)  # the prompt is ~150 tokens
        budget = int(d["max_new_tokens"]) if max_new_tokens is None else max_new_tokens
        return GenerationConfig(
            max_new_tokens=min(budget, room),
            top_p=None if greedy else d["top_p"], top_k=None if greedy else d["top_k"],
            temperature=d["temperature"], seed=seed, stop_strings=tuple(d["stop_strings"]),
        )  # fmt: skip

    def answer(self, tokens: dict[str, np.ndarray], subtitle: str, config: GenerationConfig,
               question: str | None = None) -> Generated:  # fmt: skip
        ids = self.prompt_ids(subtitle, question)
        by_id = {self.placeholder(k): v for k, v in tokens.items()}
        logits = prefill(self.session, prompt_segments(ids, by_id))[-1]
        return generate(self.session, self.tokenizer, logits, config)


def _json(bundle: Bundle, key: str) -> dict:
    path = bundle.file(key)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BundleError(path, f"not readable JSON: {e}") from e


class AffectGptReasoner:
    """``WindowReasoner``: 8 frames and 8 clips over the window, one answer per window."""

    def __init__(self, model: AffectGptModel, frames: FrameStore | None,
                 audio: AudioStore | None, seed: int | None = None) -> None:  # fmt: skip
        self.model, self.frames, self.audio, self.seed = model, frames, audio, seed
        self.load_notes: list[str] = []
        self.backend_info = dict(model.backend_info)
        faces = getattr(frames, "faces", None)
        self.backend_info.update(getattr(faces, "backend_info", {}))

    def _visual(self, window: Window) -> tuple[np.ndarray | None, str | None]:
        """The window's pixels for the vision graph (8 frames, or 8 face crops for the face
        model), or why there are none: a face model with no face in the window has no face
        evidence, and the reading abstains rather than read frames it was not trained on."""
        t0, t1 = window.t_start, window.t_end
        if self.frames is None:
            return None, "affectgpt reads video and audio together: no frames in this window"
        if self.model.config["mode"] != "face":
            pixels = self.frames.sample(t0, t1)
            if pixels is None:
                return None, "affectgpt reads video and audio together: no frames in this window"
            return pixels, None
        pixels = self.frames.sample_faces(t0, t1)
        if pixels is None:
            _, looked = self.frames.faces_between(t0, t1)
            return None, (
                f"affectgpt face model: no face in this window's {looked} frame(s), so no face "
                "evidence: no reading"
            )
        return pixels, None

    def judge(self, window: Window, labels: Sequence[str], transcript: str | None = None,
              score: bool = True) -> Judgement:  # fmt: skip
        t0 = time.perf_counter()
        pixels, missing = self._visual(window)
        samples = self.audio.between(window.t_start, window.t_end) if self.audio else None
        if missing is None and (samples is None or not len(samples)):
            missing = "affectgpt reads video and audio together: no audio in this window"
        if missing is not None:
            return Judgement(abstained=missing, notes=[missing])
        tokens = self.model.encode(pixels, clips_of(samples))
        t1 = time.perf_counter()
        subtitle = window.evidence.transcript if transcript is None else transcript
        gen = self.model.answer(tokens, subtitle or "", self.model.generation_config(self.seed))
        t2 = time.perf_counter()
        answer = cut_answer(gen.text)
        parsed = parse_answer(answer, labels, self.model.wheel)
        notes, abstained = [], None
        if parsed.open_labels:
            notes.append(
                "open-vocabulary emotions outside the labels: " + ", ".join(parsed.open_labels)
            )
        if parsed.probs is None:
            abstained = "the answer names no emotion of this session's labels"
            notes.append(abstained)
        return Judgement(
            probs=parsed.probs, abstained=abstained, notes=notes,
            latency_ms={"encoders": round((t1 - t0) * 1e3, 1),
                        "llm_answer": round((t2 - t1) * 1e3, 1)},
            backend={"llm": self.model.precision},
            explain=lambda label: answer or None,
        )  # fmt: skip
