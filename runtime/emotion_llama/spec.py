"""What an emotion_llama bundle holds, named once for the exporter and the runtime.

The prompt is the one the release's evaluation and demo build (eval_emotion.py with
``CONV_VISION_minigptv2``, ``MiniGPTBase.get_context_emb``): ``<s>[INST] `` + the dataset's
instruction + `` [/INST]``, split at ``<VideoHere>`` only; the first piece is tokenized with
the tokenizer's BOS (so two BOS lead: the added one and the literal ``<s>``), the rest
without, and all 260 visual and feature tokens go in at ``<VideoHere>`` (256 grouped EVA
patches, the MAE / VideoMAE / HuBERT tokens, the EVA CLS token). At inference
``<FeatureHere>`` stays literal text; training's ``prompt_wrap`` puts the last 4 tokens there
instead, which the release's generate path does not do.
"""

from __future__ import annotations

PROFILE = "emotion_llama"

# Graphs. Pixels are 0..255 in BGR order (as cv2 gives them); each graph converts.
VISION = "emollama_vision"  # pixels [1, 3, 448, 448] -> patches [256, H], cls [1, H]
FACE = "emollama_face"  # pixels [n, 3, 224, 224] -> token [1, H] (MAE, mean over frames)
VIDEO = "emollama_video"  # pixels [16, 3, 224, 224] -> token [1, H] (VideoMAE)
AUDIO = "emollama_audio"  # samples [n] raw 16 kHz mono -> token [1, H] (HuBERT)
PIXELS = "pixels"
SAMPLES = "samples"
TOKEN = "token"
PATCHES = "patches"
CLS = "cls"

# Files (manifest["files"] keys); the LLM's embeddings and tokenizer use runtime.names'.
CONFIG = "emollama_config"  # json: prompt, instructions, decoding, sampling
WHEEL = "emollama_wheel"  # json: emotion words -> base labels (AffectGPT's wheel data)

IMAGE_SIZE = 448  # EVA ViT-g input (MiniGPT-v2's image_size)
CROP_SIZE = 224  # MAE and VideoMAE inputs
FACE_FRAMES = 8  # frames of the window the MAE feature is averaged over
VIDEO_FRAMES = 16  # VideoMAE: 8 segments x 2 consecutive frames
SAMPLE_RATE = 16000
MIN_SAMPLES = 400  # HuBERT's first convolution needs at least one 25 ms frame

PLACEHOLDER = "<VideoHere>"
TEMPLATE = (
    "<s>[INST] <video><VideoHere></video> <feature><FeatureHere></feature> "
    "The person in video says: {subtitle}.  [{task}] {instruction}  [/INST]"
)
# FeatureFaceDataset's instruction pools: the "emotion" task is the one the release
# evaluates; "reason" is the first of its reasoning instructions.
INSTRUCTIONS = {
    "emotion": "Please determine which emotion label in the video represents: happy, sad, "
    "neutral, angry, worried, surprise, fear, contempt, doubt.",
    "reason": "Please analyze all the clues in the video and reason out the emotional label "
    "of the person in the video.",
}
# The labels the emotion instruction offers (FeatureFaceDataset's emos).
LABELS = ("neutral", "angry", "happy", "sad", "worried", "surprise", "fear", "contempt", "doubt")
STOP_STRING = "</s>"
ANSWER_AFTER = "[/INST]"
