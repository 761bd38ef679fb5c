"""EMER's automatic metrics (Lian et al., "Explainable Multimodal Emotion Reasoning"; the seed
``001_…`` has the prompts in Chinese notes, translated here as faithfully as we can).

On items with reference clues, a reading's prediction (its clues per modality, its label and
its explanation, as one paragraph) is scored three ways:

* clue overlap, 0–10: the emotion-related clues of the prediction against the reference;
* label overlap, 0–10: the emotional state summarised from the prediction against the
  reference label;
* modality completeness: how many of EMER's modalities (audio, visual, content) the
  prediction's reasoning covers, 0–3.

EMER asks ChatGPT: first summarise (prompt 1), then score the overlap (prompt 2). Here two
scorers run side by side: the bundle's own LLM as judge with EMER's prompts (``LlmJudge``; a
small model, so the answer is parsed leniently and an unparseable one is counted, never
guessed), and sentence-embedding similarity (``EmbeddingScorer``: cosine of
all-MiniLM-L6-v2 embeddings, scaled to 0–10; modality completeness counts the modalities
whose description is the nearest to at least one clue sentence).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# -- EMER's prompts, translated ------------------------------------------------------------------
# Figure 3, prompt 1 (summarise the clues) and prompt 2 (clue overlap).
CLUE_SUMMARY = (
    "Please extract the descriptions related to the character's emotional state, and then "
    "further summarize these descriptions.\n\nInput: {prediction}\nOutput:"
)
CLUE_OVERLAP = (
    'The "ground-truth clues" and the "predicted clues" are given below. Please calculate the '
    'overlap between the "ground-truth clues" and the "predicted clues". The higher the '
    "degree of overlap, the higher the score returned. The score ranges from 0 to 10.\n\n"
    "Ground-truth clues: raised eyebrows, smiling face\n"
    "Predicted clues: raised eyebrows\n"
    "Score: 5\n\n"
    "Ground-truth clues: {gt_clue}\n"
    "Predicted clues: {pred_clue}\n"
    "Score:"
)
# Figure 4, prompt 1 (summarise the emotional state, one example) and prompt 2 (overlap).
EMOTION_SUMMARY = (
    "Please summarize this person's emotional state:\n\n"
    "Input: He looks very happy, but in fact he is very anxious.\n"
    "Output: anxious\n\n"
    "Input: {prediction}\n"
    "Output:"
)
EMOTION_OVERLAP = (
    'The "ground-truth emotion" and the "predicted emotion" are given below. Please calculate '
    'the degree of overlap between the "ground-truth emotion" and the "predicted emotion". '
    "The higher the degree of overlap, the higher the score returned. The score ranges from "
    "0 to 10.\n\n"
    "Ground-truth emotion: happy\n"
    "Predicted emotion: happy\n"
    "Score: 10\n\n"
    "Ground-truth emotion: {gt_emo}\n"
    "Predicted emotion: {pred_emo}\n"
    "Score:"
)
# Figure 5: modality completeness.
MODALITY_COVERAGE = (
    "Please summarize how many modalities the input covers. You can choose from "
    "['audio', 'visual', 'content'].\n\n"
    "Input: He looks very happy, and the music makes me happy.\n"
    "Output: visual, audio\n\n"
    "Input: He looks very happy, and the music makes me happy. Meanwhile, he thanks the "
    "researchers.\n"
    "Output: visual, audio, content\n\n"
    "Input: {prediction}\n"
    "Output:"
)
MODALITIES = ("audio", "visual", "content")
# Words a judge may use for each of EMER's modalities.
MODALITY_WORDS = {
    "audio": ("audio", "acoustic", "auditory", "voice", "sound", "music", "tone"),
    "visual": ("visual", "vision", "video", "face", "facial", "image"),
    "content": ("content", "text", "words", "speech content", "subtitle", "transcript"),
}
# What each modality's clues are about (EMER's annotators' four aspects), for embeddings.
MODALITY_DESCRIPTIONS = {
    "visual": "facial expression, eyebrows, smile, gaze and body movement seen in the video",
    "audio": "tone of voice, intonation, pitch, loudness and speaking rate heard in the audio",
    "content": "what the person says: the words and the content of the speech",
}
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten".split())}  # fmt: skip


def prediction_text(reading: dict) -> str:
    """A reading as EMER's prediction paragraph: clues per modality, label, explanation."""
    parts = []
    clues = reading.get("clues") or {}
    names = {"visual": "Visual clues", "audio": "Audio clues", "text": "Content"}
    for key, name in names.items():
        if clues.get(key):
            parts.append(f"{name}: " + "; ".join(clues[key]) + ".")
    if reading.get("emotion"):
        parts.append(f"The person's emotional state is {reading['emotion']}.")
    if reading.get("explanation"):
        parts.append(reading["explanation"].strip())
    return " ".join(parts)


def clue_sentences(reading: dict) -> list[str]:
    """The reading's clues, one sentence each, and its explanation."""
    out = [c for cs in (reading.get("clues") or {}).values() for c in cs]
    if reading.get("explanation"):
        out.append(reading["explanation"].strip())
    return out


# -- parsing a judge's answer ---------------------------------------------------------------------
def parse_score(answer: str, top: int = 10) -> float | None:
    """The first number in ``answer`` within 0..``top`` ("7", "Score: 7/10", "seven");
    None when there is none (unparseable)."""
    text = answer.strip().lower()
    m = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)", text)
    if m is not None:
        value = float(m.group(1))
        return value if 0 <= value <= top else None
    for word in re.findall(r"[a-z]+", text):
        if word in NUMBER_WORDS and NUMBER_WORDS[word] <= top:
            return float(NUMBER_WORDS[word])
    return None


def parse_modalities(answer: str) -> set[str] | None:
    """EMER's modalities named in ``answer`` (None: none named, unparseable)."""
    text = answer.lower()
    found = {m for m, words in MODALITY_WORDS.items() if any(w in text for w in words)}
    return found or None


# -- the LLM judge -----------------------------------------------------------------------------
@dataclass
class JudgeAnswer:
    score: float | None
    answer: str  # the judge's raw last answer (what was parsed)


class LlmJudge:
    """The bundle's LLM with EMER's prompts. ``ask(prompt) -> answer``: one user message, a
    greedy answer."""

    def __init__(self, ask: Callable[[str], str]) -> None:
        self.ask = ask

    @classmethod
    def from_llm(cls, llm, max_new_tokens: int = 32) -> LlmJudge:
        from emolive.runtime.llm.generate import GenerationConfig

        config = GenerationConfig(max_new_tokens=max_new_tokens, stop_strings=("\n\n",))

        def ask(prompt: str) -> str:
            return llm.chat([{"role": "user", "content": prompt}], config).text.strip()

        return cls(ask)

    def clue_overlap(self, gt_clues: str, prediction: str) -> JudgeAnswer:
        summary = self.ask(CLUE_SUMMARY.format(prediction=prediction))
        answer = self.ask(CLUE_OVERLAP.format(gt_clue=gt_clues, pred_clue=summary))
        return JudgeAnswer(parse_score(answer), answer)

    def label_overlap(self, gt_label: str, prediction: str) -> JudgeAnswer:
        summary = self.ask(EMOTION_SUMMARY.format(prediction=prediction))
        answer = self.ask(EMOTION_OVERLAP.format(gt_emo=gt_label, pred_emo=summary))
        return JudgeAnswer(parse_score(answer), answer)

    def modality_completeness(self, prediction: str) -> JudgeAnswer:
        answer = self.ask(MODALITY_COVERAGE.format(prediction=prediction))
        found = parse_modalities(answer)
        return JudgeAnswer(None if found is None else float(len(found)), answer)


# -- the embedding scorer -----------------------------------------------------------------------
class SentenceEncoder:
    """What the embedding scorer needs: ``encode(texts) -> (n, d) float array``."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - protocol
        raise NotImplementedError


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


class EmbeddingScorer:
    """EMER's three metrics from sentence embeddings: overlap = 10 × max(0, cosine)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self._modalities = _unit(self.encoder.encode(list(MODALITY_DESCRIPTIONS.values())))

    def similarity(self, a: str, b: str) -> float:
        ea, eb = _unit(self.encoder.encode([a, b]))
        return float(10.0 * max(0.0, float(ea @ eb)))

    def clue_overlap(self, gt_clues: str, reading: dict) -> float:
        return self.similarity(gt_clues, " ".join(clue_sentences(reading)) or "nothing")

    def label_overlap(self, gt_label: str, reading: dict) -> float:
        return self.similarity(gt_label, reading.get("emotion") or "no emotion")

    def modality_completeness(self, reading: dict) -> float:
        sentences = clue_sentences(reading)
        if not sentences:
            return 0.0
        nearest = np.argmax(_unit(self.encoder.encode(sentences)) @ self._modalities.T, axis=1)
        return float(len(set(nearest.tolist())))


def load_encoder(bundle) -> tuple[object | None, str | None]:
    """The bundle's all-MiniLM-L6-v2 sentence encoder (graph ``words_encoder``, run by
    ``emolive.runtime.words.WordsReader``: ``encode`` is its ``embed``), or None and why not."""
    from emolive.runtime.names import WORDS_ENCODER

    if WORDS_ENCODER not in bundle.graphs:
        return None, (
            f"the bundle at {bundle.root} has no {WORDS_ENCODER!r} graph (the all-MiniLM-L6-v2 "
            "sentence encoder): add it with `python -m emolive.export.words --bundle ...`"
        )
    from emolive.runtime.words import WordsReader

    class _Encoder(SentenceEncoder):
        def __init__(self, reader: WordsReader) -> None:
            self.reader = reader

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return self.reader.embed(list(texts))

    try:
        return _Encoder(WordsReader.from_bundle(bundle)), None
    except Exception as e:  # reported in the report as the reason, not swallowed silently
        return None, f"the bundle's 'words' encoder did not load: {type(e).__name__}: {e}"


# -- scoring a run -----------------------------------------------------------------------------
def score_items(results, judge: LlmJudge | None, scorer: EmbeddingScorer | None) -> dict:
    """EMER metrics over the results whose item has reference clues; per item and mean per
    scorer, with the number of unparseable judge answers."""
    rows = []
    for res in results:
        if res.reading is None or res.item.clues is None:
            continue
        row = {"id": res.item.id, "label": res.item.label, "gt_clues": res.item.clues,
               "prediction": prediction_text(res.reading)}  # fmt: skip
        if judge is not None:
            clue = judge.clue_overlap(res.item.clues, row["prediction"])
            label = judge.label_overlap(res.item.label, row["prediction"])
            modal = judge.modality_completeness(row["prediction"])
            row["llm"] = {
                "clue_overlap": clue.score,
                "label_overlap": label.score,
                "modality_completeness": modal.score,
                "answers": {
                    "clue_overlap": clue.answer,
                    "label_overlap": label.answer,
                    "modality_completeness": modal.answer,
                },  # fmt: skip
            }
        if scorer is not None:
            row["embedding"] = {
                "clue_overlap": scorer.clue_overlap(res.item.clues, res.reading),
                "label_overlap": scorer.label_overlap(res.item.label, res.reading),
                "modality_completeness": scorer.modality_completeness(res.reading),
            }
        rows.append(row)
    out: dict = {"items": len(rows), "rows": rows}
    for name in ("llm", "embedding"):
        scored = [r[name] for r in rows if name in r]
        if not scored:
            continue
        summary = {}
        for metric in ("clue_overlap", "label_overlap", "modality_completeness"):
            values = [s[metric] for s in scored if s[metric] is not None]
            summary[metric] = float(np.mean(values)) if values else None
            summary[f"{metric}_unparseable"] = len(scored) - len(values)
        out[name] = summary
    return out
