"""What an affectgpt bundle holds, named once for the exporter and the runtime.

Prompt, questions and placeholders as AffectGPT's release code has them (FACTS.md): one
Vicuna-style line, not ChatML, with a trailing space after ``###Assistant:``.
"""

from __future__ import annotations

PROFILE = "affectgpt"

# Graphs.
VISION = (
    "affectgpt_vision"  # pixels [n, 3, 224, 224] 0..255 BGR -> token [1, H], feature_mean [1, Dv]
)
AUDIO = "affectgpt_audio"  # clips [n, 32000] raw 16 kHz -> token [1, H], feature_mean [1, Da]
FUSION = "affectgpt_fusion"  # video_mean [1, Dv], audio_mean [1, Da] -> token [1, H]
PIXELS = "pixels"
CLIPS = "clips"
TOKEN = "token"
FEATURE_MEAN = "feature_mean"
VIDEO_MEAN = "video_mean"
AUDIO_MEAN = "audio_mean"

# Face crops (the face model): OpenFace's aligned crops are 112×112, resized to 224 at load.
FACE_CROP = 112


def view_graph(perspective: str) -> str:
    """The pooling + projector graph of an extra visual perspective (perspectives.py)."""
    return f"affectgpt_view_{perspective}"


# Files (manifest["files"] keys); the LLM's embeddings and tokenizer use runtime.names'.
CONFIG = "affectgpt_config"  # json: prompt, questions, placeholders, decoding, sampling
WHEEL = "affectgpt_wheel"  # json: open-vocabulary emotion words -> base labels

FRAMES = 8
IMAGE_SIZE = 224
SAMPLE_RATE = 16000
CLIP_SAMPLES = 32000  # 2 s

# Added to Qwen's tokenizer at load, in this order (ids 151665..151669 on Qwen2.5).
PLACEHOLDERS = ("<ImageHere>", "<AudioHere>", "<FrameHere>", "<FaceHere>", "<MultiHere>")

_HEAD = "###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. "
_AUDIO = "The audio content is as follows: <Audio><AudioHere></Audio>. "
_VIDEO = {
    "face": "Meanwhile, we uniformly sample raw frames from the video and extract faces from "
    "these frames: <Video><FaceHere></Video>. ",
    "frame": "Meanwhile, we uniformly sample raw frames from the video: <Video><FrameHere></Video>. ",
}
_TAIL = (
    "The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. Now, please answer my "
    "question based on all the provided information. {question} ###Assistant: "
)


def template(mode: str, extras: tuple[str, ...] = ()) -> str:
    """The prompt for ``mode`` ("face": OpenFace crops, "frame": raw frames); with ``extras``
    (other perspectives, PERSPECTIVES), the multi-perspective prompt naming the model's own
    perspective and each extra, in PERSPECTIVES order."""
    if not extras:
        return _HEAD + _AUDIO + _VIDEO[mode] + _TAIL
    views = [p for p in PERSPECTIVES if p == mode or p in extras]
    parts = "; ".join(_VIEW[p] for p in views)
    return (
        _HEAD + _AUDIO + f"Meanwhile, we uniformly sample raw frames from the video and look at "
        f"them from {len(views)} perspectives: {parts}. " + _TAIL
    )


# Multi-perspective visual projection (EmoLLM's idea; its paper defines it, no code does):
# face crops, whole frames and their temporal change, each pooled and projected on its own.
# The model's own perspective (face or frame) keeps AffectGPT's keys and placeholder; each
# extra has ``<p>_attention_mlp`` / ``<p>_proj`` in the checkpoint, a graph
# ``view_graph(p)`` (CLIP features [n, Dv] -> token [1, H]; temporal: the differences of
# consecutive features) and the placeholder below. New placeholders are added after
# AffectGPT's five, inside the embedding table's rows (no resize).
PERSPECTIVES = ("face", "frame", "temporal")
PERSPECTIVE_PLACEHOLDERS = {"face": "<FaceHere>", "frame": "<FrameHere>",
                            "temporal": "<TemporalHere>"}  # fmt: skip
PERSPECTIVE_PIXELS = {"face": "faces", "frame": "frames", "temporal": "frames"}
_VIEW = {
    "face": "the faces in these frames: <Face><FaceHere></Face>",
    "frame": "the whole frames: <Frame><FrameHere></Frame>",
    "temporal": "the change between consecutive frames: <Change><TemporalHere></Change>",
}
FEATURES = "features"  # [n, Dv] CLIP features: the vision graph's third output, when it has one


def placeholders(extras: tuple[str, ...] = ()) -> tuple[str, ...]:
    """AffectGPT's five, then those of the extra perspectives that need a new one."""
    new = [PERSPECTIVE_PLACEHOLDERS[p] for p in extras]
    return PLACEHOLDERS + tuple(dict.fromkeys(t for t in new if t not in PLACEHOLDERS))


QUESTIONS = {
    "ov": "Please recognize all possible emotional states of the character.",
    "reason": "Please infer the person's emotional state and provide your reasoning process.",
}
STOP_STRING = "###"
