"""Checks every LLM export ends with: the ONNX graph against the torch model it came from.

* logits: max abs difference over a whole chat prompt (prefill) <= ``MAX_LOGIT_DIFF``;
* greedy decoding: the same ``GREEDY_STEPS`` tokens, the ONNX side run by the runtime's own
  ``DecoderSession`` (preallocated KV buffers, IOBinding), so the check covers the runtime;
* the chat format the runtime renders equals the model's own chat template, token for token.

A failed check raises ``LlmCheckError`` naming the graph and the difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession
from emolive.runtime.llm.tokenizer import ChatFormat
from emolive.runtime.parity import Probe

MAX_LOGIT_DIFF = 1e-3  # fp32 graph vs torch (measured ~1e-4 on SmolLM2)
GREEDY_STEPS = 32

CHECK_CHAT = (
    {"role": "system", "content": "You read emotions from clues and explain your reading."},
    {
        "role": "user",
        "content": 'Face: smiling, eyes wide. Voice: fast, high pitch. Words: "We won the '
        'final!" What is the emotion, and why?',
    },
)


class LlmCheckError(RuntimeError):
    def __init__(self, graph: str, problem: str):
        super().__init__(f"LLM graph {graph}: {problem}")


def torch_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def torch_greedy(model, ids: list[int], steps: int) -> list[int]:
    """Greedy tokens with the model's own KV cache (no early stop: a fixed number of steps)."""
    import torch

    out = []
    with torch.no_grad():
        res = model(torch.tensor([ids]), use_cache=True)
        for _ in range(steps):
            tok = int(res.logits[0, -1].argmax())
            out.append(tok)
            res = model(torch.tensor([[tok]]), past_key_values=res.past_key_values, use_cache=True)
    return out


def onnx_greedy(session: DecoderSession, ids: list[int], steps: int) -> tuple[np.ndarray, list]:
    session.reset()
    logits = session.forward(ids)
    prefill = logits.copy()
    out = []
    for _ in range(steps):
        tok = int(logits[-1].argmax())
        out.append(tok)
        logits = session.forward([tok])
    return prefill, out


def check_decoder(
    name: str,
    model,
    graph: Path,
    embeddings: np.ndarray,
    layout: DecoderLayout,
    ids: list[int],
    exact: bool = True,
    threads: int | None = None,
) -> dict:
    """Compare one graph with torch; ``exact`` graphs must meet the limits, others report."""
    session = DecoderSession(
        graph, embeddings, layout, max_context=len(ids) + GREEDY_STEPS + 1, threads=threads
    )
    prefill, greedy = onnx_greedy(session, ids, GREEDY_STEPS)
    ref = torch_logits(model, ids)
    ref_greedy = torch_greedy(model, ids, GREEDY_STEPS)
    diff = float(np.abs(prefill - ref).max())
    same = int(np.sum(np.array(greedy) == np.array(ref_greedy)))
    first_diff = next(
        (i for i, (a, b) in enumerate(zip(greedy, ref_greedy, strict=True)) if a != b), None
    )
    if exact and diff > MAX_LOGIT_DIFF:
        raise LlmCheckError(
            name, f"logits differ from torch by {diff:.3g} (limit {MAX_LOGIT_DIFF}) on the prompt"
        )
    if exact and first_diff is not None:
        raise LlmCheckError(
            name,
            f"greedy tokens differ from torch at step {first_diff} of {GREEDY_STEPS}: "
            f"{greedy[first_diff]} vs {ref_greedy[first_diff]}",
        )
    return {
        "prompt_tokens": len(ids),
        "logits_max_abs_diff": diff,
        "greedy_steps": GREEDY_STEPS,
        "greedy_tokens_equal": same,
    }


def check_chat_format(tokenizer, chat: ChatFormat) -> list[int]:
    """The runtime's ChatML rendering must equal the model's template; returns the check ids."""
    for messages in (list(CHECK_CHAT), list(CHECK_CHAT[1:])):
        want = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        got = chat.render(messages)
        if got != want:
            raise LlmCheckError(
                "chat format", f"runtime renders {got[:120]!r}..., the template {want[:120]!r}..."
            )
    text = chat.render(list(CHECK_CHAT))
    return tokenizer.encode(text, add_special_tokens=False)


def probe_forms(
    graphs: dict[str, Path],
    embeddings: np.ndarray,
    layout: DecoderLayout,
    ids: list[int],
    threads: int | None = None,
) -> tuple[Probe, dict[str, dict]]:
    """The LLM's parity probe (``ids`` and fp32's logits on them) and, per reduced form, what
    its manifest info records: the CPU that measured it and how far it strays from fp32."""

    def session(precision: str) -> DecoderSession:
        return DecoderSession(
            graphs[precision], embeddings, layout, max_context=len(ids), threads=threads
        )

    feed = {"token_ids": np.asarray(ids, np.int64)}
    probe = Probe(feed, session("fp32").probe(feed))
    return probe, {p: probe.record(session(p).probe) for p in graphs if p != "fp32"}
