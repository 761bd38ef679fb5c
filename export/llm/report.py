"""What each weight form costs in quality, measured at export and written to the manifest.

Per form: perplexity on a fixed English text, top-1 agreement per position with fp32 on that
text, and label agreement with fp32 on the emotion probes below (the runtime's own label
scoring, calibrated, so the numbers describe what a reading would say).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession
from emolive.runtime.llm.model import Llm, LlmOptions
from emolive.runtime.llm.tokenizer import ChatTokenizer
from emolive.runtime.reasoning import Clues, Reasoner, ReasonerConfig

# A fixed English text every Debian/Ubuntu system has (base-files); FACTS.md's perplexities
# were measured on it. Only read at export, never bundled.
EVAL_TEXT = Path("/usr/share/common-licenses/GPL-3")
EVAL_TOKENS = 2048
CHUNK = 256  # tokens per forward: bounds the logits buffer (256 x vocab floats)
MAX_PPL_INCREASE = 0.01  # a form within 1% of fp32 may be preferred

# Hand-written clue sets, one per FER label plus a face/words conflict (expected: the words).
PROBES: tuple[tuple[str, Clues], ...] = (
    ("happy", Clues(("expression: happy 0.81", "smiling, cheeks raised"),
                    ("pitch: high and lively", "energy: loud"), (), "We won! I can't believe it!")),
    ("sad", Clues(("expression: sad 0.64", "corners of the mouth down"),
                  ("pitch: low and flat", "speaking slowly, quiet"), (),
                  "I miss her so much. Nothing feels the same.")),
    ("angry", Clues(("expression: angry 0.72", "brows lowered, lips pressed"),
                    ("energy: very loud", "pitch: raised, harsh"), (),
                    "This is the third time you lied to me!")),
    ("fear", Clues(("expression: fear 0.58", "eyes wide open"),
                   ("voice trembling", "speaking fast, pitch high"), (),
                   "Did you hear that? Someone is outside the door.")),
    ("surprise", Clues(("expression: surprise 0.77", "mouth open, brows raised"),
                       ("sudden loud exclamation",), (), "Wait, what? You're here?")),
    ("neutral", Clues(("expression: neutral 0.69",), ("pitch: steady", "energy: normal"), (),
                      "The meeting starts at ten in room four.")),
    ("disgust", Clues(("expression: disgust 0.61", "nose wrinkled, upper lip raised"),
                      ("voice: low groan",), (), "Ugh, that smell is revolting.")),
    ("sad", Clues(("expression: happy 0.66", "smiling"), ("pitch: low", "speaking slowly"), (),
                  "I lost my job today and I don't know what to do.")),
)  # fmt: skip


@dataclass(frozen=True)
class TextEval:
    nll: np.ndarray  # per predicted position
    top1: np.ndarray  # argmax per predicted position

    @property
    def perplexity(self) -> float:
        return float(np.exp(self.nll.mean()))


def eval_ids(tokenizer: ChatTokenizer, path: Path = EVAL_TEXT, n: int = EVAL_TOKENS) -> list[int]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the perplexity text is missing (Debian base-files)")
    return tokenizer.encode(path.read_text(encoding="utf-8"))[:n]


def text_sha256(path: Path = EVAL_TEXT) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluate_text(
    graph: Path,
    embeddings: np.ndarray,
    layout: DecoderLayout,
    ids: list[int],
    threads: int | None = None,
) -> TextEval:
    """Next-token NLL and argmax at every position, fed in chunks through the KV cache."""
    session = DecoderSession(graph, embeddings, layout, max_context=len(ids), threads=threads)
    nll, top1 = [], []
    for start in range(0, len(ids) - 1, CHUNK):
        chunk = ids[start : min(start + CHUNK, len(ids) - 1)]
        logits = session.forward(chunk).astype(np.float64)
        targets = np.array(ids[start + 1 : start + 1 + len(chunk)])
        m = logits.max(-1, keepdims=True)
        lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[:, 0]
        nll.append(lse - logits[np.arange(len(chunk)), targets])
        top1.append(logits.argmax(-1))
    return TextEval(np.concatenate(nll), np.concatenate(top1))


def probe_labels(llm: Llm) -> tuple[list[str], list[dict]]:
    reasoner = Reasoner(llm, ReasonerConfig(explain=False))
    readings = [reasoner.reason(clues) for _, clues in PROBES]
    return [r["emotion"] for r in readings], [r["scores"] for r in readings]


def form_report(
    forms: dict[str, Path],
    embeddings: np.ndarray,
    layout: DecoderLayout,
    tokenizer: ChatTokenizer,
    threads: int | None = None,
    text: Path = EVAL_TEXT,
    log=print,
) -> dict[str, dict]:
    """Quality of every form next to fp32 (which must be among ``forms``)."""
    ids = eval_ids(tokenizer, text)
    evals = {p: evaluate_text(g, embeddings, layout, ids, threads) for p, g in forms.items()}
    labels = {}
    for p, g in forms.items():
        llm = Llm(g, embeddings, tokenizer, layout, LlmOptions(threads=threads), precision=p)
        labels[p] = probe_labels(llm)[0]
    expected = [e for e, _ in PROBES]
    ref_eval, ref_labels = evals["fp32"], labels["fp32"]
    out = {}
    for p in forms:
        ev = evals[p]
        ppl = ev.perplexity
        out[p] = {
            "perplexity": round(ppl, 4),
            "perplexity_vs_fp32": round(ppl / ref_eval.perplexity - 1, 5),
            "top1_agreement_vs_fp32": round(float(np.mean(ev.top1 == ref_eval.top1)), 4),
            "label_agreement_vs_fp32": round(
                float(np.mean([a == b for a, b in zip(labels[p], ref_labels, strict=True)])), 4
            ),
            "probe_accuracy": round(
                float(np.mean([a == b for a, b in zip(labels[p], expected, strict=True)])), 4
            ),
            "probe_labels": labels[p],
            "eval_tokens": len(ids),
            "eval_text": str(text),
            "eval_text_sha256": text_sha256(text),
        }
        log(
            f"  {p}: perplexity {ppl:.3f} ({out[p]['perplexity_vs_fp32']:+.2%} vs fp32), top-1 "
            f"{out[p]['top1_agreement_vs_fp32']:.3f}, labels {out[p]['label_agreement_vs_fp32']:.3f}"
            f" vs fp32, probes right {out[p]['probe_accuracy']:.3f}"
        )
    return out
