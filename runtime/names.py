"""Names shared by export and runtime: graph names, tensor names, label sets.

Torch-free on purpose: the exporter writes graphs with these names and the runtime binds
them, so both import this one module instead of spelling strings twice.
"""

from __future__ import annotations

# Bundle graph names (keys of manifest["graphs"]).
FACE_DETECTOR = "face_detector"  # MediaPipe BlazeFace short-range
FACE_LANDMARKS = "face_landmarks"  # MediaPipe FaceMesh, 468 points
EXPRESSION = "expression"  # mini-Xception, FER2013
VAD = "vad"
LLM_DECODER = "llm_decoder"

# Expression classifier tensors.
EXPRESSION_INPUT = "face_gray"  # [n, 1, 64, 64] float32, (x/255 - 0.5) * 2
EXPRESSION_OUTPUT = "probabilities"  # [n, 7], softmax

# Face detector (BlazeFace short-range) tensors.
FACE_DETECTOR_INPUT = "image"  # [1, 3, 128, 128] float32 RGB, x / 127.5 - 1, letterboxed
FACE_DETECTOR_BOXES = "box_regressors"  # [1, 896, 16]: box + 6 keypoints, 128-px units
FACE_DETECTOR_SCORES = "box_logits"  # [1, 896, 1], sigmoid -> face score

# Face landmarks (FaceMesh) tensors.
FACE_LANDMARKS_INPUT = "face_image"  # [faces, 3, 192, 192] float32 RGB, x / 255
FACE_LANDMARKS_POINTS = "landmarks"  # [faces, 1404, 1, 1]: 468 x (x, y, z), 192-px units
FACE_LANDMARKS_PRESENCE = "face_logit"  # [faces, 1, 1, 1], sigmoid -> face present

# Voice activity (Silero VAD, used as shipped) tensors.
VAD_INPUT = "input"  # [1, 64 + 512] float32: 64 samples of context + one 32 ms frame at 16 kHz
VAD_STATE = "state"  # [2, 1, 128] float32, carried from call to call
VAD_RATE = "sr"  # int64 scalar, 16000
VAD_PROBABILITY = "output"  # [1, 1] speech probability
VAD_STATE_OUT = "stateN"  # [2, 1, 128], the next call's state

# Whisper (CTranslate2) files in a bundle's manifest["files"], loaded by faster-whisper.
ASR_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
ASR_DIR = "asr"  # bundle subfolder holding ASR_FILES


FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Words for each FER emotion, in a label set or in text: fusion maps a label set's names onto
# the face's FER labels with them, the injection screen finds labels named in the words, and
# the explanation check finds the emotion an explanation names. One table for all three.
EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger", "annoyed", "frustrated", "furious", "mad"),
    "disgust": ("disgust", "disgusted"),
    "fear": ("fear", "afraid", "scared", "fearful", "anxious", "nervous", "worried"),
    "happy": ("happy", "happiness", "joy", "joyful", "pleased", "glad", "excited"),
    "sad": ("sad", "sadness", "unhappy", "upset", "down"),
    "surprise": ("surprise", "surprised", "amazed", "astonished", "shocked"),
    "neutral": ("neutral", "calm"),
}  # fmt: skip
# Names that mean an emotion only as a label ("none" in a label set is no emotion; "content"
# is happy there), but are ordinary words in text: fusion maps them, the screens do not.
LABEL_ONLY_WORDS: dict[str, tuple[str, ...]] = {"neutral": ("none",), "happy": ("content",)}


def fer_label_of(name: str) -> str | None:
    """The FER label a label set's ``name`` stands for (None: none of them)."""
    key = name.lower().strip()
    for fer, words in EMOTION_WORDS.items():
        if key == fer or key in words or key in LABEL_ONLY_WORDS.get(fer, ()):
            return fer
    return None


MER_LABELS = ("neutral", "angry", "happy", "sad", "worried", "surprise")

# LLM decoder tensors (DESIGN.md, "LLM decoder graph").
INPUTS_EMBEDS = "inputs_embeds"
ATTENTION_MASK = "attention_mask"
POSITION_IDS = "position_ids"
LOGITS = "logits"
# int64 [1] input of the exported decoder: logits only for the last k positions (0 = all), so a
# prefill does not pay for (or allocate) a vocabulary row per prompt token.
LOGITS_TO_KEEP = "logits_to_keep"
# The LLM's side files in a bundle's manifest["files"] (token embedding happens in the runtime).
LLM_EMBEDDINGS = "llm_embeddings"  # .npy [vocab, hidden] float32, memory-mapped
LLM_TOKENIZER = "llm_tokenizer"  # tokenizer.json (Hugging Face tokenizers)


def past_key(layer: int) -> str:
    return f"past_key_values.{layer}.key"


def past_value(layer: int) -> str:
    return f"past_key_values.{layer}.value"


def present_key(layer: int) -> str:
    return f"present.{layer}.key"


def present_value(layer: int) -> str:
    return f"present.{layer}.value"


# The LLM decoder's weight forms (export/llm/forms.py builds them; a bundle says which it has).
LLM_PRECISIONS = ("fp32", "int8", "int4", "int4f", "w8a8")

# Words: the all-MiniLM-L6-v2 sentence encoder (graph) and its tokenizer and head (files).
WORDS_ENCODER = "words_encoder"
WORDS_INPUT_IDS = "input_ids"  # [sentences, tokens] int64, WordPiece ids with [CLS] ... [SEP]
WORDS_ATTENTION_MASK = "attention_mask"  # [sentences, tokens] int64, 1 = token, 0 = padding
WORDS_EMBEDDING = "embedding"  # [sentences, 384] float32: attention-masked mean, L2-normalised
WORDS_TOKENIZER = "words_tokenizer"  # tokenizer.json (Hugging Face tokenizers)
WORDS_HEAD = "words_head"  # .npz: the emotion head's arrays (runtime/words/head.py)
WORDS_HEAD_CARD = "words_head_card"  # .json: what the head was trained on, dev metrics
WORDS_MAX_TOKENS = 64  # longer utterances are truncated (FACTS: MELD fits)

# The fitted fusion model (weights, uncertainty threshold, what fitted them): a bundle file.
FUSION_FILE = "fusion"

# BlazeFace full-range (fp32 only; same tensor names as FACE_DETECTOR, input [1, 3, 192, 192],
# outputs [1, 2304, 16] and [1, 2304, 1]): small faces, group shots.
FACE_DETECTOR_FULL = "face_detector_full"
