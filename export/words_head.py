"""Train the words' emotion head on MELD + GoEmotions train; choose on dev; write .npz + card.

    python -m emolive.export.words_head --data ../shared/data --out runtime/words/heads

Sentences are embedded by the exported ONNX encoder (the graph the runtime runs, fp32),
batched by length; the embeddings are cached in ``--work`` so a second run only trains. The
head maps a 384-d embedding to FER's seven labels (MELD's labels one-to-one, GoEmotions' 27
through its Ekman mapping, single-label examples only). Training is full-batch in torch on one
thread with fixed seeds (deterministic); hyper-parameters are chosen on the dev splits by the
lower of the two corpora's weighted F1 (both must hold, the runtime never knows which kind of
text it reads), and a temperature is then fitted on dev (negative log-likelihood) so the
probabilities — the head's intensities — are calibrated. Test splits are not used (not here).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emolive.runtime.cpu import cpu_record
from emolive.runtime.names import FER_LABELS, WORDS_EMBEDDING
from emolive.runtime.words.head import HEAD_CARD_FILE, HEAD_FILE, EmotionHead
from emolive.runtime.words.tokens import WordsTokenizer

MELD_TO_FER = {
    "anger": "angry", "disgust": "disgust", "fear": "fear", "joy": "happy",
    "sadness": "sad", "surprise": "surprise", "neutral": "neutral",
}  # fmt: skip
EKMAN_TO_FER = {**MELD_TO_FER}  # GoEmotions' Ekman groups carry MELD's names


@dataclass(frozen=True)
class Split:
    corpus: str
    texts: list[str]
    labels: np.ndarray  # FER label index per text


def read_meld(path: Path) -> Split:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"Utterance", "Emotion"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: no column(s) {sorted(missing)}")
    try:
        labels = [FER_LABELS.index(MELD_TO_FER[r["Emotion"]]) for r in rows]
    except KeyError as e:
        raise ValueError(f"{path}: unknown MELD emotion {e}") from e
    return Split("meld", [r["Utterance"] for r in rows], np.array(labels, np.int64))


def read_goemotions(path: Path, emotions: Path, ekman: Path) -> Split:
    """GoEmotions examples whose labels fall in exactly one Ekman group (neutral counts as one)."""
    names = emotions.read_text(encoding="utf-8").split()
    group_of = {"neutral": "neutral"}
    for group, members in json.loads(ekman.read_text(encoding="utf-8")).items():
        group_of.update({m: group for m in members})
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if len(row) != 3:
                raise ValueError(f"{path}:{n}: expected text, label ids, id; got {len(row)} fields")
            groups = {group_of[names[int(i)]] for i in row[1].split(",")}
            if len(groups) == 1:
                texts.append(row[0])
                labels.append(FER_LABELS.index(EKMAN_TO_FER[groups.pop()]))
    return Split("goemotions", texts, np.array(labels, np.int64))


def read_splits(data: Path) -> dict[str, Split]:
    text = Path(data) / "text"
    go = text / "goemotions"
    found = {
        "meld/train": text / "meld/train_sent_emo.csv",
        "meld/dev": text / "meld/dev_sent_emo.csv",
        "goemotions/train": go / "train.tsv",
        "goemotions/dev": go / "dev.tsv",
    }
    for p in [*found.values(), go / "emotions.txt", go / "ekman_mapping.json"]:
        if not p.is_file():
            raise FileNotFoundError(
                f"{p}: missing; --data should hold text/meld and text/goemotions"
            )
    splits = {k: read_meld(v) for k, v in found.items() if k.startswith("meld")}
    for k, v in found.items():
        if k.startswith("goemotions"):
            splits[k] = read_goemotions(v, go / "emotions.txt", go / "ekman_mapping.json")
    return splits


def embed(
    texts: Sequence[str],
    run: Callable[[dict], dict],
    tokenizer: WordsTokenizer,
    batch: int = 64,
) -> np.ndarray:
    """Embeddings [n, 384] of ``texts`` by the encoder graph ``run``; sentences are grouped by
    length so a batch pads little."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), np.float32)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        feeds = tokenizer.encode([texts[i] for i in idx]).feeds()
        out[idx] = run(feeds)[WORDS_EMBEDDING]
    return out


def weighted_f1(truth: np.ndarray, pred: np.ndarray, classes: int = len(FER_LABELS)) -> float:
    """F1 per class weighted by the class's support in ``truth`` (scikit-learn's 'weighted')."""
    total = 0.0
    for c in range(classes):
        tp = np.sum((pred == c) & (truth == c))
        fp = np.sum((pred == c) & (truth != c))
        fn = np.sum((pred != c) & (truth == c))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        total += f1 * np.sum(truth == c)
    return float(total / len(truth))


@dataclass(frozen=True)
class HeadParams:
    hidden: int  # 0: logistic regression
    weight_decay: float  # L2 on the weights (C = 1 / (n * weight_decay) in scikit-learn's terms)
    class_power: float  # class weight = (share of the class) ** -class_power; 0: none
    goemotions_weight: float  # each GoEmotions example's weight relative to a MELD one
    epochs: int = 300


def train_head(
    x: np.ndarray, y: np.ndarray, corpus_weight: np.ndarray, params: HeadParams, seed: int = 0
):
    """A torch model fitted full-batch (Adam) on (x, y); returns it in eval mode."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    counts = np.bincount(y, minlength=len(FER_LABELS)).astype(np.float64)
    class_w = (counts / counts.sum()) ** -params.class_power
    w = class_w[y] * corpus_weight
    wt = torch.from_numpy((w / w.mean()).astype(np.float32))
    dims = [x.shape[1], *([params.hidden] if params.hidden else []), len(FER_LABELS)]
    layers: list = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers += [torch.nn.ReLU(), torch.nn.Dropout(0.1)]
    model = torch.nn.Sequential(*layers)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": params.weight_decay},
            {"params": rest, "weight_decay": 0},
        ],
        lr=0.01,
    )
    model.train()
    for _ in range(params.epochs):
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(model(xt), yt, reduction="none") * wt).mean()
        loss.backward()
        opt.step()
    return model.eval()


def to_head(model, temperature: float = 1.0) -> EmotionHead:
    import torch

    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    return EmotionHead(
        tuple(m.weight.detach().numpy().T.copy() for m in linear),
        tuple(m.bias.detach().numpy().copy() for m in linear),
        FER_LABELS,
        float(temperature),
    )


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the mean negative log-likelihood of softmax(logits / T) (grid, 0.25–4)."""
    best, best_t = np.inf, 1.0
    for t in np.exp(np.linspace(np.log(0.25), np.log(4.0), 161)):
        z = logits / t
        z = z - z.max(1, keepdims=True)
        nll = -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean()
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


def dev_metrics(head: EmotionHead, dev: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    out = {}
    for name, (x, y) in dev.items():
        pred = head.probabilities(x).argmax(1)
        out[name] = {
            "weighted_f1": round(weighted_f1(y, pred), 4),
            "accuracy": round(float((pred == y).mean()), 4),
            "n": int(len(y)),
        }
    return out


GRID = {
    "hidden": (0,),  # 128-unit MLP, 300 steps: MELD dev 0.50, GoEmotions 0.52-0.53 (overfits)
    "weight_decay": (1e-4,),  # 1e-3 measured the same to 3 decimals (Adam, 300 steps)
    "class_power": (0.3, 0.4, 0.5),  # 0 (no class weights) measured 0.02-0.04 lower on MELD
    "goemotions_weight": (0.5, 0.75, 1.0, 1.5),  # 0 and 0.25: GoEmotions dev 0.42-0.52
}
# Dev weighted F1 each corpus should reach (issue 12); the grid point chosen is the one whose
# smaller margin over these is largest, so neither corpus is traded away for the other.
DEV_TARGETS = {
    "meld": 0.52,
    "goemotions": 0.55,
}  # GoEmotions train examples used (a seeded sample of the 39,555 single-label ones): embedding
# all took too long on a shared 2-core machine (16 ms a sentence there).
GOEMOTIONS_TRAIN_MAX = 8000


def embeddings_for(
    splits: dict[str, Split], encoder: Path, tokenizer: WordsTokenizer, work: Path, log
) -> dict[str, np.ndarray]:
    """Each split's embeddings, from ``work``'s cache when the encoder and texts match."""
    from emolive.runtime.backends.ort import OrtGraph
    from emolive.runtime.bundle import sha256_of

    work.mkdir(parents=True, exist_ok=True)
    key = sha256_of(encoder)[:16]
    run = None
    out = {}
    for name, split in splits.items():
        cache = work / f"{name.replace('/', '_')}.{key}.npy"
        if cache.is_file():
            emb = np.load(cache)
            if len(emb) == len(split.texts):
                out[name] = emb
                continue
        run = run or OrtGraph(encoder, "fp32", threads=2).run
        t = time.perf_counter()
        out[name] = embed(split.texts, run, tokenizer)
        took = time.perf_counter() - t
        log(f"  embedded {name}: {len(split.texts)} sentences in {took:.1f} s "
            f"({1000 * took / len(split.texts):.2f} ms each, batches of 64, 2 threads)")  # fmt: skip
        np.save(cache, out[name])
    return out


def train(
    data: Path,
    out: Path,
    work: Path,
    log: Callable[[str], None] = print,
    goemotions_max: int = GOEMOTIONS_TRAIN_MAX,
) -> dict:
    from emolive.export.words import (
        export_encoder,
        load_reference,
        model_folder,
        pooled_encoder,
    )

    splits = read_splits(data)
    go = splits["goemotions/train"]
    if len(go.texts) > goemotions_max:
        keep = np.sort(np.random.default_rng(0).permutation(len(go.texts))[:goemotions_max])
        splits["goemotions/train"] = Split(go.corpus, [go.texts[i] for i in keep], go.labels[keep])
    folder = model_folder(log)
    tokenizer = WordsTokenizer(folder / "tokenizer.json")
    encoder = work / "words_encoder.fp32.onnx"
    if not encoder.is_file():
        export_encoder(pooled_encoder(load_reference(folder)), encoder)
    emb = embeddings_for(splits, encoder, tokenizer, work, log)
    mx, my = emb["meld/train"], splits["meld/train"].labels
    gx, gy = emb["goemotions/train"], splits["goemotions/train"].labels
    dev = {
        "meld": (emb["meld/dev"], splits["meld/dev"].labels),
        "goemotions": (emb["goemotions/dev"], splits["goemotions/dev"].labels),
    }
    results = []
    for values in itertools.product(*GRID.values()):
        params = HeadParams(**dict(zip(GRID, values, strict=True)))
        if params.goemotions_weight > 0:
            x, y = np.concatenate([mx, gx]), np.concatenate([my, gy])
            cw = np.concatenate([np.ones(len(my)), np.full(len(gy), params.goemotions_weight)])
        else:
            x, y, cw = mx, my, np.ones(len(my))
        model = train_head(x, y, cw, params)
        metrics = dev_metrics(to_head(model), dev)
        score = min(metrics[k]["weighted_f1"] - t for k, t in DEV_TARGETS.items())
        log(
            f"  {asdict(params)}: "
            + ", ".join(f"{k} {v['weighted_f1']}" for k, v in metrics.items())
        )
        results.append((score, params, model, metrics))
    score, params, model, _ = max(results, key=lambda r: r[0])
    head = to_head(model)
    dev_x = np.concatenate([d[0] for d in dev.values()])
    dev_y = np.concatenate([d[1] for d in dev.values()])
    temperature = fit_temperature(head.logits(dev_x), dev_y)
    head = to_head(model, temperature)
    metrics = dev_metrics(head, dev)
    out.mkdir(parents=True, exist_ok=True)
    head.save(out / HEAD_FILE)
    card = {
        "what": "emotion head over all-MiniLM-L6-v2 sentence embeddings (mean-pooled, "
        "L2-normalised, max 64 tokens) -> FER's 7 labels; probabilities calibrated by a "
        "temperature fitted on dev; a label's probability is its intensity",
        "labels": list(FER_LABELS),
        "trained_on": {
            "meld/train": int(len(my)),
            "goemotions/train (single-label Ekman groups, seeded sample)": int(len(gy)),
            "data": "../shared/data (train splits; dev for choosing and the temperature)",
        },
        "label_mapping": {"meld": MELD_TO_FER, "goemotions": "ekman_mapping.json, then as MELD"},
        "chosen_on_dev": {
            **asdict(params),
            "selection": f"max over the grid of the smaller margin of dev weighted F1 over {DEV_TARGETS}",
        },
        "grid": {k: list(v) for k, v in GRID.items()},
        "training": "full-batch AdamW, lr 0.01, seed 0, 1 torch thread, deterministic",
        "temperature": round(temperature, 4),
        "dev": metrics,
        "date": _dt.date.today().isoformat(),
        "cpu": cpu_record(),
    }
    (out / HEAD_CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    log(f"chose {asdict(params)}, T={temperature:.3f}: {metrics}")
    return card


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the words' emotion head.")
    parser.add_argument(
        "--data", type=Path, required=True, help="folder with text/meld, text/goemotions"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for words_head.npz/.json")
    parser.add_argument("--work", type=Path, default=Path("build/words"), help="embedding cache")
    parser.add_argument(
        "--goemotions-train", type=int, default=GOEMOTIONS_TRAIN_MAX, help="examples used at most"
    )
    args = parser.parse_args(argv)
    train(args.data, args.out, args.work, goemotions_max=args.goemotions_train)


if __name__ == "__main__":
    main()
