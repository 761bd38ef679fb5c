"""The words: head inference in numpy vs torch, open label sets, the encoder export on a tiny
random BERT, the tokenizer; and the real encoder + shipped head on a few MELD dev sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emolive.runtime.names import FER_LABELS, WORDS_EMBEDDING
from emolive.runtime.words.head import HEAD_CARD_FILE, HEAD_FILE, EmotionHead, shipped_head_dir
from emolive.runtime.words.labels import routing_matrix

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _no_embedding(texts):
    raise AssertionError(f"exact label names should not need embeddings: {texts}")


@pytest.mark.parametrize("hidden", [0, 16])
def test_numpy_head_equals_the_torch_model_it_was_trained_as(hidden):
    torch = pytest.importorskip("torch")
    from emolive.export.words_head import HeadParams, to_head, train_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.integers(0, len(FER_LABELS), 120)
    params = HeadParams(hidden, 1e-3, 0.5, 1.0, epochs=30)
    model = train_head(x, y, np.ones(120), params)
    head = to_head(model, temperature=1.7)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(head.logits(x), want, rtol=1e-5, atol=1e-5)
    probs = head.probabilities(x)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    want_p = torch.softmax(torch.from_numpy(want) / 1.7, 1).numpy()
    np.testing.assert_allclose(probs, want_p, atol=1e-6)


def test_head_save_load_round_trip_and_bad_files(tmp_path):
    rng = np.random.default_rng(1)
    head = EmotionHead((rng.normal(size=(8, 7)).astype(np.float32),), (np.zeros(7, np.float32),),
                       FER_LABELS, 2.0)  # fmt: skip
    loaded = EmotionHead.load(head.save(tmp_path / "h.npz"))
    x = rng.normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded.probabilities(x), head.probabilities(x))
    with pytest.raises(ValueError, match="takes \\[n, 8\\]"):
        head.logits(np.zeros((1, 9), np.float32))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        EmotionHead.load(tmp_path / "bad.npz")


def test_shipped_head_is_in_the_package_with_its_card():
    import json

    folder = shipped_head_dir()
    head = EmotionHead.load(folder / HEAD_FILE)
    card = json.loads((folder / HEAD_CARD_FILE).read_text())
    assert head.input_size == 384 and set(head.labels) == set(FER_LABELS)
    assert card["dev"]["meld"]["weighted_f1"] > 0.3 and "meld/train" in card["trained_on"]


def test_exact_label_names_route_fer_mass_without_embeddings():
    labels = ["Anger", "disgust", "scared", "joy", "sadness", "surprised", "calm"]
    routing, how = routing_matrix(labels, _no_embedding)
    np.testing.assert_array_equal(routing, np.eye(7))
    assert how["happy"] == "exact: joy"
    # Two names of one FER label share its mass.
    routing, _ = routing_matrix(
        ["angry", "mad", "disgust", "fear", "happy", "sad", "surprise", "neutral"], _no_embedding
    )
    assert routing[0, 0] == routing[0, 1] == 0.5
    np.testing.assert_allclose(routing.sum(1), 1.0)


def test_unnamed_fer_labels_go_to_open_labels_by_how_the_head_reads_their_names():
    # What a head reads in each label's name, made by hand: "stressed" reads as fear/sad.
    reads = {"calm": [0, 0, 0.1, 0, 0, 0, 0.9], "stressed": [0.1, 0, 0.5, 0, 0.3, 0, 0.1],
             "excited": [0, 0, 0, 0.8, 0, 0.2, 0], "tense": [0.5, 0, 0.3, 0, 0, 0.1, 0.1]}  # fmt: skip

    def read_fer(texts):
        return np.array([reads[t.removeprefix("I feel ").rstrip(".")] for t in texts])

    fer = {name: i for i, name in enumerate(FER_LABELS)}
    routing, how = routing_matrix(["calm", "stressed", "excited"], read_fer)
    np.testing.assert_allclose(routing.sum(1), 1.0)
    assert routing[fer["neutral"], 0] == 1.0 and routing[fer["happy"], 2] == 1.0
    # "stressed" is the only open label: every unnamed emotion goes there, none to "calm".
    for name in ("angry", "disgust", "fear", "sad", "surprise"):
        assert routing[fer[name], 1] > 0.99, name
    assert how["fear"].startswith("read in names: stressed 1.00")
    # Two open labels share by what the head reads in them.
    routing, _ = routing_matrix(["calm", "stressed", "tense", "excited"], read_fer)
    assert routing[fer["angry"], 2] > 0.8 and routing[fer["sad"], 1] > 0.99
    # No open label: unnamed FER labels spread over all labels by the reading.
    routing, how = routing_matrix(["calm", "excited"], read_fer)
    assert routing[fer["surprise"], 1] > 0.99 and routing[fer["fear"], 0] > 0.99
    p = np.full(7, 1 / 7) @ routing
    assert abs(p.sum() - 1) < 1e-9


@pytest.mark.parametrize("labels", [[], ["happy", "Happy"], ["happy", " "]])
def test_bad_label_sets_are_refused(labels):
    with pytest.raises(ValueError):
        routing_matrix(labels, _no_embedding)


def test_encoder_export_on_a_tiny_random_bert(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from emolive.export.words import (
        check_against,
        export_encoder,
        pooled_encoder,
        reference_embeddings,
    )
    from emolive.runtime.backends.ort import OrtGraph

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=80, attn_implementation="eager",
    )  # fmt: skip
    encoder = pooled_encoder(transformers.BertModel(config).eval())
    path = export_encoder(encoder, tmp_path / "tiny.onnx")
    graph = OrtGraph(path, "fp32", threads=1)
    rng = np.random.default_rng(0)
    for n, length in ((1, 3), (3, 17), (5, 64)):
        ids = rng.integers(1, 120, (n, length)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[0, max(2, length // 2) :] = 0  # a padded row
        ids[mask == 0] = 0
        feeds = {"input_ids": ids, "attention_mask": mask}
        got = graph.run(feeds)[WORDS_EMBEDDING]
        assert got.shape == (n, 32)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        check_against("tiny", "fp32", got, reference_embeddings(encoder, feeds), 0.9999)
        # Padding does not change a sentence's embedding.
        keep = int(mask[0].sum())
        alone = graph.run({"input_ids": ids[:1, :keep], "attention_mask": mask[:1, :keep]})
        np.testing.assert_allclose(alone[WORDS_EMBEDDING][0], got[0], atol=1e-5)


@pytest.mark.weights
def test_tokenizer_truncates_and_says_so():
    from emolive.export.words import model_folder
    from emolive.runtime.words.tokens import WordsTokenizer

    tok = WordsTokenizer(model_folder() / "tokenizer.json", max_tokens=16)
    batch = tok.encode(["Hi there!", "word " * 40])
    assert batch.tokens[0] == ("[CLS]", "hi", "there", "!", "[SEP]")
    assert batch.truncated == (False, True)
    assert batch.input_ids.shape == (2, 16) and batch.attention_mask[0].sum() == 5
    with pytest.raises(TypeError):
        tok.encode("one string")


@pytest.fixture(scope="module")
def words_bundle(tmp_path_factory):
    from emolive.export.bundle import BundleWriter
    from emolive.export.words import add_words_graphs

    root = tmp_path_factory.mktemp("words")
    writer = BundleWriter(root / "bundle", profile="lite")
    add_words_graphs(writer, root / "work", log=lambda m: None)
    return writer.write()


@pytest.mark.weights
@pytest.mark.slow
def test_real_encoder_and_shipped_head_read_meld_dev_above_chance(words_bundle):
    from emolive.export.words_head import read_meld
    from emolive.runtime.backends import RuntimeConfig
    from emolive.runtime.words import WordsReader

    if not (DATA / "text/meld/dev_sent_emo.csv").is_file():
        pytest.skip(f"no MELD dev split under {DATA}")
    meld = read_meld(DATA / "text/meld/dev_sent_emo.csv")
    idx = np.arange(0, len(meld.texts), 11)[:100]  # every 11th utterance: 100 sentences
    texts = [meld.texts[i] for i in idx]
    truth = meld.labels[idx]
    readers = {
        p: WordsReader.from_bundle(words_bundle, RuntimeConfig(precision={"words_encoder": p}))
        for p in ("fp32", "int8")
    }
    preds = {p: r.fer_probabilities(texts).argmax(1) for p, r in readers.items()}
    majority = np.bincount(truth).max() / len(truth)
    assert (preds["fp32"] == truth).mean() > majority + 0.05
    assert (preds["int8"] == preds["fp32"]).mean() > 0.8

    reader = readers["fp32"]
    ev = reader.read(
        "I can't believe you did this to me, get out!", ["calm", "stressed", "excited"]
    )
    assert ev.labels == ("calm", "stressed", "excited")
    assert (
        abs(ev.probabilities.sum() - 1) < 1e-6
        and abs(sum(ev.fer_probabilities.values()) - 1) < 1e-6
    )
    assert ev.label == "stressed" and not ev.truncated and ev.tokens[0] == "[CLS]"
    assert ev.routing["angry"].startswith("read in names: stressed")
    assert reader.read("Okay, see you at five.", ["calm", "stressed", "excited"]).label == "calm"
    happy = reader.read("We won! This is the best day of my life!")
    assert max(happy.fer_probabilities, key=happy.fer_probabilities.get) == "happy"
    assert reader.read("so " * 100).truncated
    assert reader.backend_info["words_encoder"]["precision"] == "fp32"


@pytest.mark.weights
@pytest.mark.slow
def test_int8_encoder_passes_its_own_parity_probe_on_another_cpu_class(words_bundle):
    from emolive.runtime.backends.ort import OrtGraph
    from emolive.runtime.cpu import CpuInfo
    from emolive.runtime.names import WORDS_ENCODER
    from emolive.runtime.parity import check_variant

    variant = words_bundle.graph(WORDS_ENCODER).variant("int8")
    assert variant.info["weight_bits"] == 7 and variant.info["probe_tolerance"] > 0
    other = CpuInfo("test VNNI CPU", "x86_64", "x86-64-avx512-vnni", ("avx512f", "avx512_vnni"))
    run = OrtGraph(variant.path, "int8", threads=1).run
    gate = check_variant(variant.info, words_bundle.probe(WORDS_ENCODER), run, other, "words int8")
    assert gate.checked and gate.passed and gate.deviation <= variant.info["probe_tolerance"]
