"""``emo-live export --profile affectgpt``: the model stage makes every graph of the
checkpoint (read and check it, build the model from the local folders, merge the LoRA,
export each graph and check it against torch before it is written); the ``faces`` stage adds
the face detector a face-crop model needs, ``speech`` the VAD + ASR that write the subtitle
(stages.py). ``--stage model`` alone: a bundle without either."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from emolive.export.affectgpt import model as agm
from emolive.export.affectgpt.checkpoint import LORA_ALPHA, choose_mode, read_checkpoint
from emolive.export.affectgpt.decoder import qwen2_decoder
from emolive.export.affectgpt.wheel import wheel_data
from emolive.export.llm.bundle import save_external
from emolive.export.onnx_check import TOLERANCE, GraphCheckError, compare_outputs, export_checked
from emolive.runtime.affectgpt import spec
from emolive.runtime.affectgpt.prompt import answer_tokenizer, prompt_segments
from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession
from emolive.runtime.llm.generate import GenerationConfig, generate
from emolive.runtime.llm.segments import prefill
from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS, LLM_TOKENIZER

PROFILE = spec.PROFILE
STAGES = {
    "model": ("emolive.export.affectgpt.profile", "export_affectgpt"),
    "faces": ("emolive.export.affectgpt.stages", "add_face_detector"),
    "speech": ("emolive.export.affectgpt.stages", "add_speech"),
}
# Options every stage takes (emo-live export --checkpoint/--vision/--audio/--llm): required;
# --mode: optional, None lets the checkpoint's saved config decide (choose_mode).
OPTIONS = ("checkpoint", "vision", "audio", "llm")
OPTIONAL_OPTIONS = {"mode": None}
MAX_NEW_TOKENS = 1200  # AffectGPT's max_new_tokens
MAX_CONTEXT = 2048  # KV slots the runtime allocates: the prompt (~150) + the answer


def _tokenizer(
    llm_dir: Path, rows: int, out: Path, names: tuple[str, ...] = spec.PLACEHOLDERS
) -> tuple[dict[str, int], Path]:
    """Qwen's tokenizer.json with the placeholders added in AffectGPT's order (then those of
    the extra perspectives)."""
    from tokenizers import AddedToken, Tokenizer

    src = llm_dir / "tokenizer.json"
    if not src.is_file():
        raise agm.EncoderFolderError(llm_dir, "llm folder has no tokenizer.json")
    tok = Tokenizer.from_file(str(src))
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in names])
    ids = {p: tok.token_to_id(p) for p in names}
    order = [ids[p] for p in names]
    if order != list(range(order[0], order[0] + len(order))):
        raise GraphCheckError(f"{src}: placeholders got ids {ids}, not consecutive")
    if max(order) >= rows:
        raise GraphCheckError(
            f"{src}: placeholder {names[-1]} has id {max(order)}, past the "
            f"embedding table's {rows} rows (AffectGPT does not resize it)"
        )
    tok.save(str(out))
    return ids, out


def _decoding(llm_dir: Path, tokenizer) -> dict:
    """AffectGPT's sampling (temperature 1, top_p 0.9) with the rest from the LLM folder's
    generation_config.json (Qwen's top_k 20; transformers' default 50 where it has none)."""
    gen = {}
    path = llm_dir / "generation_config.json"
    if path.is_file():
        gen = json.loads(path.read_text())
    eos = gen.get("eos_token_id")
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    for t in ("<|im_end|>", "<|endoftext|>"):
        tid = tokenizer.token_to_id(t)
        if tid is not None and tid not in eos:
            eos.append(tid)
    return {
        "temperature": 1.0, "top_p": 0.9, "top_k": int(gen.get("top_k", 50)),
        "max_new_tokens": MAX_NEW_TOKENS, "stop_ids": eos, "stop_strings": [spec.STOP_STRING],
    }  # fmt: skip


def export_affectgpt(
    writer, work: Path, log, checkpoint, vision, audio, llm, mode: str | None = None
) -> dict:
    """Write the affectgpt graphs and files into ``writer``; returns the checks. ``mode``:
    "face" (OpenFace crops) or "frame" (raw frames); None: as the checkpoint's saved training
    config says (``face_or_frame``), "frame" where it says nothing. A mode that contradicts
    the saved config is followed, with a logged warning kept in the checks (choose_mode)."""
    from tokenizers import Tokenizer

    if mode not in (None, "frame", "face"):
        raise ValueError(f"option 'mode' must be 'frame' or 'face', got {mode!r}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    llm_dir = Path(llm)
    log(f"reading {checkpoint} ...")
    llm_config = agm._folder(llm_dir, "llm")
    layers = json.loads((llm_config / "config.json").read_text()).get("num_hidden_layers")
    ckpt = read_checkpoint(checkpoint, llm_layers=layers)
    if ckpt.unexpected:
        log(
            f"{checkpoint}: {len(ckpt.unexpected)} unexpected key(s) ignored: {ckpt.unexpected[:8]}"
        )
    mode, why, warning = choose_mode(ckpt, mode)
    if warning:
        log(f"warning: {checkpoint}: {warning}")
    log(f"{checkpoint}: the {mode} model ({why})")
    model = agm.build(ckpt, vision, audio, llm_dir, mode)
    torch.manual_seed(0)
    checks: dict = {"checkpoint": {"file": Path(checkpoint).name, "epoch": ckpt.epoch,
                                   "unexpected_keys": ckpt.unexpected,
                                   "lora_rank": ckpt.sizes.lora_rank,
                                   "lora_scale": LORA_ALPHA / ckpt.sizes.lora_rank,
                                   "mode": mode, "mode_from": why,
                                   **({"mode_warning": warning} if warning else {})}}  # fmt: skip

    log("exporting the vision graph ...")
    extras = tuple(model.views)
    pixels = torch.rand(spec.FRAMES, 3, spec.IMAGE_SIZE, spec.IMAGE_SIZE) * 255
    outputs = [spec.TOKEN, spec.FEATURE_MEAN, *([spec.FEATURES] if extras else [])]
    axes = {name: {0: "frames"} for name in (spec.PIXELS, *outputs[2:])}
    vpath, checks[spec.VISION], v = export_checked(spec.VISION, model.vision, (pixels,), work,
                                                   [spec.PIXELS], outputs, axes)  # fmt: skip
    vt, vm = v[spec.TOKEN], v[spec.FEATURE_MEAN]
    view_tokens, view_paths = {}, {}
    for p, head in model.views.items():
        log(f"exporting the {p} perspective ...")
        name = spec.view_graph(p)
        feats = torch.from_numpy(v[spec.FEATURES])
        view_paths[p], checks[name], t = export_checked(
            name, head, (feats,), work, [spec.FEATURES], [spec.TOKEN],
            {spec.FEATURES: {0: "frames"}})  # fmt: skip
        view_tokens[p] = t[spec.TOKEN]
        with torch.no_grad():
            fewer = head(feats[:5]).numpy()  # another frame count through the same graph
        compare_outputs(name, view_paths[p], {spec.FEATURES: v[spec.FEATURES][:5]},
                        {spec.TOKEN: fewer})  # fmt: skip

    log("exporting the audio graph ...")
    clips = torch.randn(spec.FRAMES, spec.CLIP_SAMPLES) * 0.1
    apath, checks[spec.AUDIO], a = export_checked(spec.AUDIO, model.audio, (clips,), work,
                                                  [spec.CLIPS], [spec.TOKEN, spec.FEATURE_MEAN],
                                                  {spec.CLIPS: {0: "clips"}})  # fmt: skip
    at, am = a[spec.TOKEN], a[spec.FEATURE_MEAN]

    log("exporting the fusion graph ...")
    fpath, checks[spec.FUSION], m = export_checked(
        spec.FUSION, model.fusion, (torch.from_numpy(vm), torch.from_numpy(am)), work,
        [spec.VIDEO_MEAN, spec.AUDIO_MEAN], [spec.TOKEN])  # fmt: skip
    mt = m[spec.TOKEN]

    log("exporting the LLM decoder ...")
    emb = model.llm.get_input_embeddings().weight.detach().float().numpy()
    tok_path = work / "tokenizer.json"
    placeholder_ids, _ = _tokenizer(llm_dir, emb.shape[0], tok_path, spec.placeholders(extras))
    tokenizer = Tokenizer.from_file(str(tok_path))
    decoder, shape = qwen2_decoder(model.llm, MAX_CONTEXT, LLM_DECODER)
    dpath = work / f"{LLM_DECODER}.onnx"
    save_external(decoder, dpath)  # a 7B decoder passes protobuf's 2 GB limit
    emb_path = work / "embeddings.npy"
    np.save(emb_path, emb)
    layout = DecoderLayout(shape.layers, shape.kv_heads, shape.head_dim, shape.hidden, shape.vocab)
    decoding = _decoding(llm_dir, tokenizer)
    prompt = spec.template(mode, extras).format(subtitle="", question=spec.QUESTIONS["reason"])
    ids = tokenizer.encode(prompt, add_special_tokens=False).ids
    tokens = {placeholder_ids["<MultiHere>"]: mt, placeholder_ids["<AudioHere>"]: at,
              placeholder_ids[f"<{mode.capitalize()}Here>"]: vt}  # fmt: skip
    for p, tok in view_tokens.items():
        tokens[placeholder_ids[spec.PERSPECTIVE_PLACEHOLDERS[p]]] = tok
    checks[LLM_DECODER] = check_generation(model.llm, dpath, emb, layout, tok_path, ids, tokens,
                                           decoding["stop_ids"], steps=24)  # fmt: skip

    writer.add_graph(spec.VISION, {"fp32": vpath}, attrs={"mode": mode, "frames": spec.FRAMES,
                     "size": spec.IMAGE_SIZE, "order": "bgr"}, checks=checks[spec.VISION])  # fmt: skip
    for p, path in view_paths.items():
        writer.add_graph(spec.view_graph(p), {"fp32": path}, attrs=_view_attrs(p),
                         checks=checks[spec.view_graph(p)])  # fmt: skip
    writer.add_graph(spec.AUDIO, {"fp32": apath}, attrs={"clips": spec.FRAMES,
                     "samples": spec.CLIP_SAMPLES, "rate": spec.SAMPLE_RATE},
                     checks=checks[spec.AUDIO])  # fmt: skip
    writer.add_graph(spec.FUSION, {"fp32": fpath}, checks=checks[spec.FUSION])
    attrs = {
        "layers": shape.layers, "kv_heads": shape.kv_heads, "head_dim": shape.head_dim,
        "hidden": shape.hidden, "vocab": shape.vocab, "max_context": MAX_CONTEXT,
        "chat": {"kind": "chatml", "stop_tokens": [t for t in ("<|im_end|>", "<|endoftext|>")
                                                   if tokenizer.token_to_id(t) is not None]},
    }  # fmt: skip
    writer.add_graph(LLM_DECODER, {"fp32": dpath}, attrs=attrs, checks=checks[LLM_DECODER])
    writer.add_file(LLM_EMBEDDINGS, emb_path, "llm_embeddings.npy", role="token embeddings")
    writer.add_file(LLM_TOKENIZER, tok_path, "llm_tokenizer.json",
                    role="Qwen tokenizer + AffectGPT placeholders")  # fmt: skip
    writer.add_json(spec.CONFIG, "affectgpt.json", {
        "mode": mode, "template": spec.template(mode, extras), "questions": spec.QUESTIONS,
        "perspectives": {p: _view_attrs(p) for p in extras},
        "question": "reason", "placeholders": placeholder_ids,
        "placeholder_handling": "ids -> 0, embedded, each row replaced by its modality token",
        "decoding": decoding, "frames": spec.FRAMES, "image_size": spec.IMAGE_SIZE,
        "clip_samples": spec.CLIP_SAMPLES, "sample_rate": spec.SAMPLE_RATE,
        "sizes": vars(ckpt.sizes),
    }, role="prompt, placeholders, decoding, sampling")  # fmt: skip
    writer.add_json(spec.WHEEL, "affectgpt_wheel.json", wheel_data(), role="emotion wheel")
    return checks


def _view_attrs(perspective: str) -> dict:
    return {"perspective": perspective, "pixels": spec.PERSPECTIVE_PIXELS[perspective],
            "placeholder": spec.PERSPECTIVE_PLACEHOLDERS[perspective],
            "input": "CLIP features of the vision graph [n, Dv]" + (
                ", differenced over consecutive frames" if perspective == "temporal" else "")}  # fmt: skip


def check_generation(
    llm, graph: Path, emb, layout, tokenizer_path: Path, ids, tokens, stop_ids, steps: int
) -> dict:
    """The decoder graph against torch: greedy tokens after the spliced prompt must be
    identical, and the prompt's last logits close."""
    session = DecoderSession(graph, emb, layout, max_context=len(ids) + steps + 1)
    segments = prompt_segments(ids, tokens)
    logits = prefill(session, segments)[-1]
    embeds = agm.splice(llm, ids, tokens)
    with torch.no_grad():
        ref = llm(inputs_embeds=embeds).logits[0, -1].numpy()
    err = float(np.max(np.abs(logits - ref)))
    if not err <= TOLERANCE * max(1.0, float(np.max(np.abs(ref)))):
        raise GraphCheckError(f"{LLM_DECODER}: prompt logits differ from torch by {err:.3g}")
    want = agm.greedy(llm, embeds, steps, set(stop_ids))

    tokenizer = answer_tokenizer(tokenizer_path, stop_ids)
    got = list(generate(session, tokenizer, logits, GenerationConfig(max_new_tokens=steps)).ids)
    if got != want:
        raise GraphCheckError(f"{LLM_DECODER}: greedy tokens {got} differ from torch's {want}")
    return {"prompt_logits_max_abs_diff": err, "greedy_tokens_identical": len(want)}
