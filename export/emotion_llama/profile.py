"""``emo-live export --profile emotion_llama``: one stage, since every graph comes from one
checkpoint: read and check it, build the model from the local folders and files, merge the
LoRA, export each graph and check it against torch before it is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from emolive.export.affectgpt.wheel import wheel_data
from emolive.export.emotion_llama import model as elm
from emolive.export.emotion_llama.checkpoint import read_checkpoint
from emolive.export.llm.bundle import save_external
from emolive.export.llm.forms import decoder_weights
from emolive.export.llm.graph import build_decoder
from emolive.export.llm.source import decoder_shape, state_dict_numpy
from emolive.export.onnx_check import TOLERANCE, GraphCheckError, export_checked
from emolive.runtime.affectgpt.prompt import answer_tokenizer
from emolive.runtime.emotion_llama import spec
from emolive.runtime.emotion_llama.prompt import (
    prompt_pieces,
    prompt_segments,
    prompt_text,
    visual_tokens,
)
from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession
from emolive.runtime.llm.generate import GenerationConfig, generate
from emolive.runtime.llm.segments import prefill
from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS, LLM_TOKENIZER

PROFILE = spec.PROFILE
# The face detector that cuts MAE's face crops and the lite VAD + Whisper that write the
# subtitle come as AffectGPT's bundle has them (export/affectgpt/stages.py).
STAGES = {
    "model": ("emolive.export.emotion_llama.profile", "export_emotion_llama"),
    "faces": ("emolive.export.affectgpt.stages", "add_face_detector"),
    "speech": ("emolive.export.affectgpt.stages", "add_speech"),
}
# emo-live export --checkpoint/--vision/--audio/--llm; required. --vision is a folder with
# eva_vit_g.pth, mae/ and videomae/ (see model.py).
OPTIONS = ("checkpoint", "vision", "audio", "llm")
MAX_NEW_TOKENS = 500  # eval_emotion.yaml's max_new_tokens
MAX_CONTEXT = 2048  # KV slots: the prompt (~320 with the 260 visual tokens) + the answer


def _decoding(llm_dir: Path, tokenizer) -> dict:
    """The release evaluation's decoding: greedy (do_sample=False, one beam, no repetition
    penalty), stop on LLaMA's eos (``</s>``)."""
    path = llm_dir / "generation_config.json"
    gen = json.loads(path.read_text()) if path.is_file() else {}
    eos = gen.get("eos_token_id", [])
    eos = [eos] if isinstance(eos, int) else list(eos)
    tid = tokenizer.token_to_id(spec.STOP_STRING)
    if tid is not None and tid not in eos:
        eos.append(tid)
    if not eos:
        raise GraphCheckError(f"{llm_dir}: no eos id (generation_config.json or '</s>')")
    return {"greedy": True, "max_new_tokens": MAX_NEW_TOKENS, "stop_ids": eos,
            "stop_strings": [spec.STOP_STRING]}  # fmt: skip


def export_emotion_llama(writer, work: Path, log, checkpoint, vision, audio, llm) -> dict:
    """Write the emotion_llama graphs and files into ``writer``; returns the checks."""
    from tokenizers import Tokenizer

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    llm_dir = Path(llm)
    log(f"reading {checkpoint} ...")
    config = json.loads((elm._folder(llm_dir, "llm") / "config.json").read_text())
    ckpt = read_checkpoint(checkpoint, llm_layers=config.get("num_hidden_layers"))
    if ckpt.unexpected:
        log(f"{checkpoint}: {len(ckpt.unexpected)} unexpected key(s) ignored: "
            f"{ckpt.unexpected[:8]}")  # fmt: skip
    model = elm.build(ckpt, vision, audio, llm_dir)
    for note in model.notes:
        log(note)
    torch.manual_seed(0)
    checks: dict = {"checkpoint": {
        "file": Path(checkpoint).name, "epoch": ckpt.epoch, "unexpected_keys": ckpt.unexpected,
        "unused_keys": len(ckpt.unused), "lora_rank": ckpt.sizes.lora_rank,
        "lora_scale": ckpt.lora_alpha / ckpt.sizes.lora_rank,
        "ln_vision": "checkpoint" if "ln_vision.weight" in ckpt.weights else "default (1, 0)",
    }}  # fmt: skip

    log("exporting the EVA vision graph ...")
    frame = torch.rand(1, 3, spec.IMAGE_SIZE, spec.IMAGE_SIZE) * 255
    vpath, checks[spec.VISION], v = export_checked(
        spec.VISION, model.vision, (frame,), work, [spec.PIXELS], [spec.PATCHES, spec.CLS]
    )
    log("exporting the MAE face graph ...")
    crops = torch.rand(3, 3, spec.CROP_SIZE, spec.CROP_SIZE) * 255
    fpath, checks[spec.FACE], f = export_checked(
        spec.FACE, model.face, (crops,), work, [spec.PIXELS], [spec.TOKEN],
        axes={spec.PIXELS: {0: "frames"}}, check_args=(crops[:2],))  # fmt: skip
    log("exporting the VideoMAE graph ...")
    clip = torch.rand(spec.VIDEO_FRAMES, 3, spec.CROP_SIZE, spec.CROP_SIZE) * 255
    cpath, checks[spec.VIDEO], c = export_checked(
        spec.VIDEO, model.video, (clip,), work, [spec.PIXELS], [spec.TOKEN]
    )
    log("exporting the HuBERT audio graph ...")
    wav = torch.randn(spec.SAMPLE_RATE * 2) * 0.1
    apath, checks[spec.AUDIO], a = export_checked(
        spec.AUDIO, model.audio, (wav,), work, [spec.SAMPLES], [spec.TOKEN],
        axes={spec.SAMPLES: {0: "samples"}}, check_args=(wav[: spec.SAMPLE_RATE + 1234],))  # fmt: skip

    log("exporting the LLaMA decoder ...")
    shape = decoder_shape(model.llm.config, MAX_CONTEXT)
    sd = state_dict_numpy(model.llm)
    dpath = work / f"{LLM_DECODER}.onnx"
    decoder = build_decoder(shape, decoder_weights(shape, sd, "fp32"), LLM_DECODER)
    save_external(decoder, dpath)  # a 7B decoder passes protobuf's 2 GB limit
    emb = sd["model.embed_tokens.weight"]
    emb_path = work / "embeddings.npy"
    np.save(emb_path, emb)
    src = llm_dir / "tokenizer.json"
    if not src.is_file():
        raise elm.EncoderFolderError(llm_dir, "llm folder has no tokenizer.json")
    tok_path = work / "tokenizer.json"
    shutil.copyfile(src, tok_path)
    tokenizer = Tokenizer.from_file(str(tok_path))
    bos = tokenizer.token_to_id("<s>")
    bos = config.get("bos_token_id") if bos is None else bos
    decoding = _decoding(llm_dir, tokenizer)
    layout = DecoderLayout(shape.layers, shape.kv_heads, shape.head_dim, shape.hidden, shape.vocab)
    visual = visual_tokens(v[spec.PATCHES], f[spec.TOKEN], c[spec.TOKEN], a[spec.TOKEN],
                           v[spec.CLS])  # fmt: skip
    answer_tok = answer_tokenizer(tok_path, decoding["stop_ids"])
    text = prompt_text(spec.TEMPLATE, "I am fine", "emotion", spec.INSTRUCTIONS["emotion"])
    pieces = prompt_pieces(answer_tok, text, bos)
    checks[LLM_DECODER] = check_generation(model.llm, dpath, emb, layout, answer_tok, pieces,
                                           visual, steps=24)  # fmt: skip

    sizes = {"pixels": 3, "size": spec.CROP_SIZE, "order": "bgr"}
    writer.add_graph(spec.VISION, {"fp32": vpath}, attrs={"size": spec.IMAGE_SIZE, "order": "bgr",
                     "frame": "first of the window"}, checks=checks[spec.VISION])  # fmt: skip
    writer.add_graph(spec.FACE, {"fp32": fpath}, attrs={**sizes, "frames": spec.FACE_FRAMES},
                     checks=checks[spec.FACE])  # fmt: skip
    writer.add_graph(spec.VIDEO, {"fp32": cpath}, attrs={**sizes, "frames": spec.VIDEO_FRAMES},
                     checks=checks[spec.VIDEO])  # fmt: skip
    writer.add_graph(spec.AUDIO, {"fp32": apath}, attrs={"rate": spec.SAMPLE_RATE},
                     checks=checks[spec.AUDIO])  # fmt: skip
    attrs = {"layers": shape.layers, "kv_heads": shape.kv_heads, "head_dim": shape.head_dim,
             "hidden": shape.hidden, "vocab": shape.vocab, "max_context": MAX_CONTEXT,
             "chat": {"kind": "llama2-inst", "stop_tokens": [spec.STOP_STRING]}}  # fmt: skip
    writer.add_graph(LLM_DECODER, {"fp32": dpath}, attrs=attrs, checks=checks[LLM_DECODER])
    writer.add_file(LLM_EMBEDDINGS, emb_path, "llm_embeddings.npy", role="token embeddings")
    writer.add_file(LLM_TOKENIZER, tok_path, "llm_tokenizer.json", role="LLaMA tokenizer")
    writer.add_json(spec.CONFIG, "emotion_llama.json", {
        "template": spec.TEMPLATE, "instructions": spec.INSTRUCTIONS, "task": "emotion", "labels": spec.LABELS,
        "placeholder": spec.PLACEHOLDER, "bos_id": bos, "decoding": decoding,
        "image_size": spec.IMAGE_SIZE, "crop_size": spec.CROP_SIZE,
        "face_frames": spec.FACE_FRAMES, "video_frames": spec.VIDEO_FRAMES,
        "sample_rate": spec.SAMPLE_RATE, "sizes": vars(ckpt.sizes),
        "visual_tokens": int(visual.shape[0]),
        "placeholder_handling": "text split at <VideoHere>; 256 patches, MAE, VideoMAE, HuBERT, "
                                "CLS spliced there; <FeatureHere> stays text (release inference)",
    }, role="prompt, instructions, decoding, sampling")  # fmt: skip
    writer.add_json(spec.WHEEL, "emotion_llama_wheel.json", _wheel(), role="emotion wheel")
    return checks


def _wheel() -> dict:
    """AffectGPT's wheel, plus the instruction's own labels the wheel lacks (e.g. "doubt")
    as their own bases: named in an answer, they map to a session label of that name or are
    kept as open labels, never dropped."""
    data = wheel_data()
    for label in spec.LABELS:
        data["words"].setdefault(label, label)
    data["bases"] = sorted(set(data["words"].values()))
    return data


def check_generation(llm, graph: Path, emb, layout, tokenizer, pieces, visual, steps: int) -> dict:
    """The decoder graph against torch: the prompt's last logits close and greedy tokens
    after it identical."""
    from emolive.export.affectgpt.model import greedy

    session = DecoderSession(graph, emb, layout, max_context=sum(map(len, pieces)) + 300 + steps)
    logits = prefill(session, prompt_segments(pieces, visual))[-1]
    embeds = elm.embed_prompt(llm, pieces, visual)
    with torch.no_grad():
        ref = llm(inputs_embeds=embeds).logits[0, -1].numpy()
    err = float(np.max(np.abs(logits - ref)))
    if not err <= TOLERANCE * max(1.0, float(np.max(np.abs(ref)))):
        raise GraphCheckError(f"{LLM_DECODER}: prompt logits differ from torch by {err:.3g}")
    want = greedy(llm, embeds, steps, set(tokenizer.stop_ids))
    got = list(generate(session, tokenizer, logits, GenerationConfig(max_new_tokens=steps)).ids)
    if got != want:
        raise GraphCheckError(f"{LLM_DECODER}: greedy tokens {got} differ from torch's {want}")
    return {"prompt_logits_max_abs_diff": err, "greedy_tokens_identical": len(want),
            "prompt_tokens": sum(map(len, pieces)) + int(visual.shape[0])}  # fmt: skip
