"""Where a decode step of the LLM goes: one part taken out of the graph at a time.

    python benchmarks/llm_parts.py --bundle bundles/lite --form int4f --pairs 8

Builds variants of one of the bundle's decoder graphs, each without one part, and times
decode (64 greedy tokens after the ~200-token EmoPrompt, as ``benchmarks/llm.py`` does)
for the graph and each variant in alternating processes. The speed-up of a variant is the
median over same-minute pairs with the unchanged graph, so this VM's drift cancels.

* ``no_lm_head``: the lm_head cut to its first twelfth of rows (4,096 of SmolLM2's 49,152),
  the logits padded with zeros;
* ``no_attention``: GroupQueryAttention replaced by a slice of its query input (no rotary,
  no attention, no KV write; the cache buffers pass through untouched);
* ``no_remainder``: (``int4f``) the Q4_1 remainder dropped: no blocksum MatMul, no Concat,
  and the weights' extra block cut off;
* ``pad_remainder``: (``int4f``) the blocksum MatMul + Concat replaced by zero padding, so
  the weights keep their extra block;
* ``lm_head_4bit``: the 8-bit lm_head requantized to 4-bit blocks (rounding to nearest);
* ``lm_head_4bit_top256``: the same, with the 256 best tokens of each position rescored by
  the exact 8-bit rows (TopK, Gather, dequantize, MatMul, ScatterElements).

The first four compute wrong logits and serve only for timing; the lm_head variants replace
a part, and ``benchmarks/llm_requant.py`` measures what they cost in perplexity. Writes
benchmarks/results/llm_parts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from llm import (
    DECODE_TOKENS,
    benchmark_prompt,
    machine,
    paired_ratios,
    run_child,
    time_prefill_decode,
)
from onnx import helper, numpy_helper

from emolive.export.llm.quant import NBitsWeight

RESULTS = Path(__file__).parent / "results" / "llm_parts.json"
KEPT_FRACTION = 12  # no_lm_head keeps vocab // 12 rows


class _Surgery:
    """One graph's nodes and initializers, edited in place."""

    def __init__(self, model: onnx.ModelProto, head_dim: int):
        self.model = model
        self.head_dim = head_dim
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name])

    def set_array(self, name: str, value: np.ndarray) -> None:
        if name in self.inits:
            self.inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))
        else:
            self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
            self.graph.initializer.append(self.inits[name])

    def replace(self, edit) -> int:
        """``edit(node)`` returns the nodes to put in its place (``None``: keep it)."""
        nodes, changed = [], 0
        for node in self.graph.node:
            new = edit(node)
            if new is None:
                nodes.append(node)
            else:
                nodes.extend(new)
                changed += 1
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        return changed


def _rows(a: np.ndarray, n: int, keep_rows: int | None = None, keep_blocks: int | None = None):
    """A MatMulNBits input ([N, ...] or flat [N * blocks]) cut to rows and/or leading blocks,
    in its own layout."""
    rows = a.reshape(n, -1) if a.ndim == 1 else a
    rows = rows[:keep_rows] if keep_rows is not None else rows
    rows = rows[:, :keep_blocks] if keep_blocks is not None else rows
    return rows.reshape(-1) if a.ndim == 1 else rows


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _matmul_nbits(node, inputs: list[str], outputs: list[str], **changed) -> onnx.NodeProto:
    """``node`` (a MatMulNBits) with other inputs/outputs and some attributes changed."""
    return helper.make_node(
        "MatMulNBits", inputs, outputs, name=node.name, domain="com.microsoft",
        **{**_attrs(node), **changed},
    )  # fmt: skip


def _is_lm_head(node) -> bool:
    from emolive.runtime.names import LOGITS

    return node.op_type == "MatMulNBits" and LOGITS in node.output


def _remainders(s: _Surgery) -> list[tuple[onnx.NodeProto, str, onnx.NodeProto, onnx.NodeProto]]:
    """Each MatMulNBits fed [x, blocksum(x)], as (that node, x, blocksum MatMul, Concat)."""
    out = []
    for node in s.graph.node:
        concat = s.producer.get(node.input[0])
        if node.op_type != "MatMulNBits" or concat is None or concat.op_type != "Concat":
            continue
        sums = s.producer.get(concat.input[1])
        if sums is not None and sums.op_type == "MatMul":
            out.append((node, concat.input[0], sums, concat))
    return out


def no_lm_head(s: _Surgery) -> int:
    from emolive.runtime.names import LOGITS

    def edit(node):
        if not _is_lm_head(node):
            return None
        vocab = _attrs(node)["N"]
        kept = max(1, vocab // KEPT_FRACTION)
        for name in node.input[1:]:
            s.set_array(name, _rows(s.array(name), vocab, keep_rows=kept))
        s.set_array("parts/pad", np.array([0, 0, 0, 0, 0, vocab - kept], np.int64))
        cut = _matmul_nbits(node, list(node.input), ["parts/logits_cut"], N=kept)
        return [cut, helper.make_node("Pad", ["parts/logits_cut", "parts/pad"], [LOGITS])]

    return s.replace(edit)


def no_attention(s: _Surgery) -> int:
    def edit(node):
        if node.op_type != "GroupQueryAttention":
            return None
        a = _attrs(node)
        width = a["num_heads"] * s.head_dim
        s.set_array("parts/zero", np.array([0], np.int64))
        s.set_array(f"parts/q{width}", np.array([width], np.int64))
        s.set_array("parts/last", np.array([-1], np.int64))
        q = helper.make_node(
            "Slice", [node.input[0], "parts/zero", f"parts/q{width}", "parts/last"],
            [node.output[0]], name=node.name,
        )  # fmt: skip
        # Same buffer in and out under IOBinding: Identity copies nothing onto itself.
        keys = helper.make_node("Identity", [node.input[3]], [node.output[1]])
        values = helper.make_node("Identity", [node.input[4]], [node.output[2]])
        return [q, keys, values]

    return s.replace(edit)


def no_remainder(s: _Surgery) -> int:
    from emolive.export.llm.quant import pack_zero_points, unpack_zero_points

    cut, dropped = {}, set()
    for node, x, sums, concat in _remainders(s):
        a = _attrs(node)
        k = s.array(sums.input[1]).shape[0]
        kb, n = k // a["block_size"], a["N"]
        s.set_array(node.input[1], s.array(node.input[1])[:, :kb])
        s.set_array(node.input[2], _rows(s.array(node.input[2]), n, keep_blocks=kb))
        if len(node.input) > 3 and node.input[3]:
            packed = s.array(node.input[3])
            zp = pack_zero_points(
                unpack_zero_points(packed.reshape(n, -1), a["bits"], kb), a["bits"]
            )
            s.set_array(node.input[3], zp.reshape(-1) if packed.ndim == 1 else zp)
        cut[node.name] = _matmul_nbits(node, [x, *node.input[1:]], list(node.output), K=k)
        dropped |= {sums.output[0], concat.output[0]}

    def edit(node):
        if node.name in cut:
            return [cut[node.name]]
        return [] if node.output[0] in dropped else None

    return s.replace(edit)


def pad_remainder(s: _Surgery) -> int:
    pads, dropped = {}, set()
    for _, x, sums, concat in _remainders(s):
        width = s.array(sums.input[1]).shape[1]
        s.set_array(f"parts/pad{width}", np.array([0, 0, 0, 0, 0, width], np.int64))
        pads[concat.output[0]] = helper.make_node(
            "Pad", [x, f"parts/pad{width}"], [concat.output[0]]
        )
        dropped.add(sums.output[0])

    def edit(node):
        if node.output[0] in pads:
            return [pads[node.output[0]]]
        return [] if node.output[0] in dropped else None

    return s.replace(edit)


def _lm_head_weight(s: _Surgery, node) -> NBitsWeight | None:
    """The lm_head's weight when it is 8-bit without zero points (the Q8_0 mapping)."""
    a = _attrs(node)
    if a["bits"] != 8 or (len(node.input) > 3 and node.input[3]):
        return None
    n, k, block = a["N"], a["K"], a["block_size"]
    packed = s.array(node.input[1]).reshape(n, k // block, block)
    scales = s.array(node.input[2]).reshape(n, k // block)
    return NBitsWeight(8, block, k, n, packed, scales, None)


def _lm_head_4bit(s: _Surgery, rescore: int) -> int:
    from emolive.export.llm.quant import quantize_blocks
    from emolive.runtime.names import LOGITS

    def edit(node):
        if not _is_lm_head(node):
            return None
        w = _lm_head_weight(s, node)
        if w is None:
            return None
        q4 = quantize_blocks(w.dequantize(), bits=4, block=w.block, symmetric=False)
        for part, value in (("B", q4.packed), ("scales", q4.scales), ("zp", q4.zero_points)):
            s.set_array(f"parts/lm4.{part}", value)
        hidden = node.input[0]
        approx = "parts/lm4_logits" if rescore else LOGITS
        lm4 = [hidden, "parts/lm4.B", "parts/lm4.scales", "parts/lm4.zp"]
        nodes = [_matmul_nbits(node, lm4, [approx], bits=4)]
        if not rescore:
            return nodes
        kb = w.k // w.block
        s.set_array("parts/lm8.codes", w.packed.reshape(w.n, w.k))
        s.set_array("parts/lm8.scales", w.scales)
        s.set_array("parts/k", np.array([rescore], np.int64))
        s.set_array("parts/zero_point", np.array(2 ** (w.bits - 1), np.float32))
        s.set_array("parts/blocks", np.array([0, 0, 0, kb, w.block], np.int64))
        s.set_array("parts/row", np.array([0, 0, 0, w.k], np.int64))
        s.set_array("parts/last", np.array([-1], np.int64))
        steps = [
            ("TopK", [approx, "parts/k"], ["parts/top_logits", "parts/top"], {"axis": -1, "sorted": 0}),
            ("Gather", ["parts/lm8.codes", "parts/top"], ["parts/codes"], {"axis": 0}),
            ("Gather", ["parts/lm8.scales", "parts/top"], ["parts/scales"], {"axis": 0}),
            ("Cast", ["parts/codes"], ["parts/codes_f"], {"to": onnx.TensorProto.FLOAT}),
            ("Sub", ["parts/codes_f", "parts/zero_point"], ["parts/centred"], {}),
            ("Reshape", ["parts/centred", "parts/blocks"], ["parts/by_block"], {}),
            ("Unsqueeze", ["parts/scales", "parts/last"], ["parts/scales_1"], {}),
            ("Mul", ["parts/by_block", "parts/scales_1"], ["parts/rows_b"], {}),
            ("Reshape", ["parts/rows_b", "parts/row"], ["parts/rows"], {}),
            ("Unsqueeze", [hidden, "parts/last"], ["parts/hidden_col"], {}),
            ("MatMul", ["parts/rows", "parts/hidden_col"], ["parts/exact_col"], {}),
            ("Squeeze", ["parts/exact_col", "parts/last"], ["parts/exact"], {}),
            ("ScatterElements", [approx, "parts/top", "parts/exact"], [LOGITS], {"axis": -1}),
        ]  # fmt: skip
        return nodes + [helper.make_node(op, i, o, **kw) for op, i, o, kw in steps]

    return s.replace(edit)


VARIANTS = {
    "no_lm_head": no_lm_head,
    "no_attention": no_attention,
    "no_remainder": no_remainder,
    "pad_remainder": pad_remainder,
    "lm_head_4bit": lambda s: _lm_head_4bit(s, rescore=0),
    "lm_head_4bit_top256": lambda s: _lm_head_4bit(s, rescore=256),
}
REMOVALS = ("no_lm_head", "no_attention", "no_remainder", "pad_remainder")


def build_variant(graph: Path, name: str, head_dim: int, out_dir: Path) -> Path | None:
    """The graph without one part, or None when the graph has no such part."""
    s = _Surgery(onnx.load(str(graph)), head_dim)
    if VARIANTS[name](s) == 0:
        return None
    unused = {t.name for t in s.graph.initializer} - {i for n in s.graph.node for i in n.input}
    kept = [t for t in s.graph.initializer if t.name not in unused]
    del s.graph.initializer[:]
    s.graph.initializer.extend(kept)
    path = out_dir / f"{name}.onnx"
    onnx.save(s.model, str(path), save_as_external_data=True, location=f"{name}.onnx.data")
    return path


# -- child ------------------------------------------------------------------------------


def child(bundle: str, graph: str, threads: int, rounds: int) -> dict:
    from emolive.runtime.llm import Llm, LlmOptions

    llm = Llm.from_bundle(bundle, LlmOptions(threads=threads), graph=graph)
    ids, _ = benchmark_prompt(llm.tokenizer)
    _, decode = time_prefill_decode(llm.session, ids, rounds)
    return {"decode_tok_s": DECODE_TOKENS / statistics.median(decode)}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(*json.loads(sys.argv[2]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default=os.environ.get("EMOLIVE_BUNDLE", "bundles/lite"))
    ap.add_argument("--form", default="int4f", help="the decoder form to take apart")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="decode runs per process (median)")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from emolive.runtime.bundle import Bundle
    from emolive.runtime.llm.decoder import DecoderLayout
    from emolive.runtime.names import LLM_DECODER

    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown} (have {', '.join(VARIANTS)})")
    entry = Bundle.open(args.bundle).graph(LLM_DECODER)
    graph = entry.variant(args.form, "cpu").path
    head_dim = DecoderLayout.from_attrs(entry.attrs).head_dim
    started = machine()
    with tempfile.TemporaryDirectory(prefix="emolive-parts-") as tmp:
        built = {}
        for name in names:
            path = build_variant(graph, name, head_dim, Path(tmp))
            if path is None:
                print(f"{args.form} has no part for {name}; skipped", file=sys.stderr)
            else:
                built[name] = path
        if not built:
            raise SystemExit(f"no variant applies to the {args.form} graph")
        runs: dict[str, list] = {args.form: [], **{n: [] for n in built}}
        for r in range(args.pairs):
            print(f"[{r + 1}/{args.pairs}] {args.form} + {len(built)} variants", file=sys.stderr)
            for name, path in [(args.form, graph), *built.items()]:
                runs[name].append(
                    run_child([args.bundle, str(path), args.threads, args.rounds], __file__)
                )
    base = runs[args.form]
    parts = {}
    for name in built:
        paired = paired_ratios(runs[name], base, "decode_tok_s")
        parts[name] = {
            "speedup": paired,
            "decode_tok_s": [round(r["decode_tok_s"], 1) for r in runs[name]],
        }
        if name in REMOVALS:
            parts[name]["share_of_step"] = 1 - 1 / paired["median"]
    doc = {
        "benchmark": "decode step, one part taken out at a time",
        "machine": {**started, "load_avg_at_end": os.getloadavg()},
        "form": args.form,
        "threads": args.threads,
        "pairs": args.pairs,
        "decode_tokens": DECODE_TOKENS,
        "bundle": str(args.bundle),
        "decode_tok_s": [round(r["decode_tok_s"], 1) for r in base],
        "parts": parts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    for name, p in parts.items():
        sp = p["speedup"]
        share = f"  share of a step {p['share_of_step']:.1%}" if "share_of_step" in p else ""
        print(f"{name:20s} speed-up {sp['median']:.3f} ({sp['min']:.2f}-{sp['max']:.2f}){share}")


if __name__ == "__main__":
    main()
