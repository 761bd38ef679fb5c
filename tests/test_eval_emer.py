"""EMER's metrics: parsing a judge's answers, and embedding scoring with a tiny random encoder."""

import re

import numpy as np
import pytest

from emolive.calibrate.eval import emer


class HashedWords:
    """A tiny random sentence encoder: the mean of a fixed random vector per lower-cased word."""

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim, self.seed, self.table = dim, seed, {}

    def _vec(self, word: str) -> np.ndarray:
        if word not in self.table:
            rng = np.random.default_rng([self.seed, *word.encode()])
            self.table[word] = rng.standard_normal(self.dim)
        return self.table[word]

    def encode(self, texts):
        out = []
        for t in texts:
            words = re.findall(r"[a-z]+", t.lower()) or ["<empty>"]
            out.append(np.mean([self._vec(w) for w in words], axis=0))
        return np.stack(out)


def test_scores_are_parsed_leniently_and_refused_when_absent():
    assert emer.parse_score("7") == 7.0
    assert emer.parse_score(" Score: 8/10, because both smile") == 8.0
    assert emer.parse_score("I would say six.") == 6.0
    assert emer.parse_score("2.5") == 2.5
    assert emer.parse_score("The clues overlap a lot.") is None
    assert emer.parse_score("42") is None  # outside 0..10: not a score
    assert emer.parse_modalities("Output: visual, audio") == {"visual", "audio"}
    assert emer.parse_modalities("facial expression and the words said") == {"visual", "content"}
    assert emer.parse_modalities("I cannot tell.") is None


def test_the_prompts_carry_emers_examples_and_fields():
    filled = emer.CLUE_OVERLAP.format(gt_clue="frowns", pred_clue="smiles")
    assert "Score: 5" in filled and filled.endswith("Predicted clues: smiles\nScore:")
    assert "Score: 10" in emer.EMOTION_OVERLAP
    assert "['audio', 'visual', 'content']" in emer.MODALITY_COVERAGE


READING = {
    "emotion": "happy",
    "clues": {"visual": ["smiling, brows raised"], "audio": [], "text": ['said: "Great news!"']},
    "explanation": "The person smiles and says the news is great.",
}


def test_prediction_paragraph_names_clues_label_and_explanation():
    text = emer.prediction_text(READING)
    assert text.startswith("Visual clues: smiling, brows raised.")
    assert 'Content: said: "Great news!".' in text
    assert "emotional state is happy." in text and text.endswith("news is great.")
    assert emer.clue_sentences(READING)[-1] == READING["explanation"]


def test_embedding_scores_with_a_tiny_random_encoder():
    scorer = emer.EmbeddingScorer(HashedWords())
    assert scorer.similarity("he smiles", "he smiles") == pytest.approx(10.0)
    same = scorer.clue_overlap(" ".join(emer.clue_sentences(READING)), READING)
    other = scorer.clue_overlap("trembling voice, clenched fists, shouting", READING)
    assert same == pytest.approx(10.0) and 0.0 <= other < same
    assert scorer.label_overlap("happy", READING) == pytest.approx(10.0)
    assert scorer.label_overlap("angry", READING) < 10.0
    # Clue sentences that are the modality descriptions themselves: nearest is each own.
    d = emer.MODALITY_DESCRIPTIONS
    two = {"clues": {"visual": [d["visual"]], "audio": [d["audio"]]}}
    assert scorer.modality_completeness(two) == 2.0
    assert scorer.modality_completeness({"clues": {}}) == 0.0


def test_a_bundle_without_the_words_encoder_is_reported_unavailable(tmp_path):
    class Bundle:
        graphs = {"expression": object()}
        root = tmp_path

    encoder, why = emer.load_encoder(Bundle())
    assert encoder is None and "no 'words_encoder' graph" in why and str(tmp_path) in why
