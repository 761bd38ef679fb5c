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

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MER_LABELS = ("neutral", "angry", "happy", "sad", "worried", "surprise")

# LLM decoder tensors (DESIGN.md, "LLM decoder graph").
INPUTS_EMBEDS = "inputs_embeds"
ATTENTION_MASK = "attention_mask"
POSITION_IDS = "position_ids"
LOGITS = "logits"


def past_key(layer: int) -> str:
    return f"past_key_values.{layer}.key"


def past_value(layer: int) -> str:
    return f"past_key_values.{layer}.value"


def present_key(layer: int) -> str:
    return f"present.{layer}.key"


def present_value(layer: int) -> str:
    return f"present.{layer}.value"
