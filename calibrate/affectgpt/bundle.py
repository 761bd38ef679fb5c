"""Calibrate an LLM profile's bundle (affectgpt, emotion_llama): int8 encoders and the LLM's
weight forms, checked, written. What differs by profile is in ``profiles``.

An encoder's int8 variant is written only if it meets both bounds (token cosine on every
check window, identical greedy answers with it in place), and the written ones must also
keep the answers identical together; a refused one is named in the report with the reason.
The LLM's forms are written as the lite export writes them: all of them, each with its
report, the bundle preferring on CPU the first within 1% perplexity of fp32. Every variant
records the CPU that measured it and its deviation on the graph's parity probe, so the
runtime can re-check it on another CPU class. When nothing passes, the bundle is untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.calibrate.affectgpt import answers as ans
from emolive.calibrate.affectgpt import encoders as enc
from emolive.calibrate.affectgpt.forms import FORMS, Fp32Decoder, calibration_ids, input_absmax
from emolive.calibrate.affectgpt.profiles import ALL_ENCODERS, PROFILES, Profile, profile_of
from emolive.calibrate.affectgpt.report import (
    REPORT_JSON,
    REPORT_MD,
    build_report,
    render_markdown,
    summary,
)
from emolive.calibrate.affectgpt.windows import WINDOW_S, silent, voiced, windows
from emolive.calibrate.media import (
    CALIBRATION,
    CALIBRATION_MEDIA,
    EVALUATION,
    EVALUATION_MEDIA,
    MediaFile,
    MediaSplitError,
    check_disjoint,
)
from emolive.calibrate.qdq import QuantConfig
from emolive.calibrate.report import latency_block
from emolive.calibrate.sets import evenly
from emolive.calibrate.vision import CalibrationRefused, _latency
from emolive.export.bundle import BundleWriter
from emolive.export.llm.bundle import external_data_of, preferred_form
from emolive.export.llm.check import probe_forms
from emolive.export.llm.report import form_report
from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.bundle import Bundle, BundleError, sha256_of
from emolive.runtime.cpu import this_cpu
from emolive.runtime.llm.tokenizer import ChatFormat, ChatTokenizer
from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS, LLM_TOKENIZER
from emolive.runtime.parity import Probe, probe_key

PROBE_TOKENS = 16


@dataclass(frozen=True)
class LlmCalibrationConfig:
    quant: QuantConfig = QuantConfig()
    calibration_media: tuple[MediaFile, ...] = CALIBRATION_MEDIA
    evaluation_media: tuple[MediaFile, ...] = EVALUATION_MEDIA
    window_s: float = WINDOW_S
    samples: int | None = None  # most calibration windows; None: all
    encoders: tuple[str, ...] | None = None  # None: every encoder of the bundle's profile
    llm_forms: tuple[str, ...] = FORMS
    min_token_cosine: float = enc.MIN_TOKEN_COSINE
    answer_prompts: int = 4
    answer_tokens: int = 24
    latency_repeats: int = 20
    threads: int | None = None

    def __post_init__(self):
        for g in self.encoders or ():
            if g not in ALL_ENCODERS:
                raise ValueError(f"unknown encoder {g!r}; choose from {', '.join(ALL_ENCODERS)}")
        for p in self.llm_forms:
            if p not in FORMS:
                raise ValueError(f"unknown LLM form {p!r}; choose from {', '.join(FORMS)}")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.answer_prompts < 1 or self.answer_tokens < 1 or self.latency_repeats < 1:
            raise ValueError("answer_prompts, answer_tokens and latency_repeats must be >= 1")


def calibrate_llm_bundle(
    bundle_dir: Path | str,
    config: LlmCalibrationConfig = LlmCalibrationConfig(),
    log: Callable[[str], None] = print,
) -> dict:
    """Add the variants that pass to ``bundle_dir``; return the report (see module doc)."""
    bundle = Bundle.open(bundle_dir)
    profile = profile_of(bundle)
    if profile is None:
        raise BundleError(bundle.root / "manifest.json", f"profile is {bundle.profile!r}, not "
                          f"one of {', '.join(PROFILES)}")  # fmt: skip
    chosen = profile.encoders if config.encoders is None else config.encoders
    other = [g for g in chosen if g not in profile.encoders]
    if other:
        raise ValueError(f"{', '.join(other)}: not an encoder of this {profile.name} bundle "
                         f"({', '.join(profile.encoders)})")  # fmt: skip
    check_disjoint(config.calibration_media, config.evaluation_media)
    size, crop, only = profile.frame_size, profile.cropper(bundle), profile.face_only
    cut = {s: windows(media, config.window_s, size, crop, only) for s, media in
           ((CALIBRATION, config.calibration_media), (EVALUATION, config.evaluation_media))}  # fmt: skip
    cut_counts = {s: len(ws) for s, ws in cut.items()}
    if only:  # a session on a face model abstains on a window with no face: so do the checks
        cut = {s: _with_face(ws, s, profile) for s, ws in cut.items()}
    calibration, voices = voiced(cut[CALIBRATION])
    calibration = [calibration[i] for i in evenly(np.arange(len(calibration)), config.samples)]
    check = cut[EVALUATION]
    faced = _face_windows(profile, cut_counts, cut)
    prompts = ans.prompts(check, config.answer_prompts)
    log(f"windows: {len(calibration)} calibration ({voices} voiced), {len(check)} check")
    reference = ans.fp32_model(bundle, profile, config.threads)
    ref_tokens = ans.encode(reference, prompts, profile)
    ref_answers = ans.answers(reference, prompts, config.answer_tokens, profile, ref_tokens)

    with tempfile.TemporaryDirectory(prefix=f"emolive-{profile.name}-") as tmp:
        tmp = Path(tmp)
        encoders, runners = {}, {}
        for g in chosen:
            encoders[g], runners[g] = _encoder(bundle, profile, g, calibration, check, prompts,
                                               ref_answers, reference, tmp, config, log)  # fmt: skip
        together = None
        passing = {g: runners[g] for g, e in encoders.items() if e["written"]}
        if len(passing) > 1:
            together = ans.compare(ref_answers, ans.answers(
                ans.with_encoders(reference, passing, profile), prompts, config.answer_tokens,
                profile))  # fmt: skip
            if not together["all_equal"]:
                for g in passing:
                    encoders[g]["written"] = False
                    encoders[g]["failures"].append("together with the other int8 encoders it "
                                                   "changes a greedy answer")  # fmt: skip
        llm, form_paths, records = {}, {}, {}
        if config.llm_forms:
            llm, form_paths, records = _forms(bundle, profile, reference, prompts, ref_tokens,
                                              ref_answers, tmp, config, log)  # fmt: skip
        report = build_report(
            profile=profile.name, encoders=encoders, together=together, llm=llm,
            config={**config.quant.info(), "window_s": config.window_s,
                    "samples_limit": config.samples, "answer_tokens": config.answer_tokens,
                    "encoders": list(chosen), "llm_forms": list(config.llm_forms)},
            bounds={"token_cosine_min": config.min_token_cosine,
                    "answers": "identical greedy answers on every prompt"},
            media={CALIBRATION: [m.record() for m in config.calibration_media if m.is_video],
                   EVALUATION: [m.record() for m in config.evaluation_media if m.is_video]},
            windows={"calibration": len(calibration), "voiced": voices, "check": len(check),
                     "prompts": len(prompts), **faced,
                     "prompt_windows": [{**p.window.record(), "subtitle": p.subtitle}
                                        for p in prompts]},
            notes=_notes(profile, voices, sum(map(silent, calibration)), encoders)
            + _face_notes(profile, crop, calibration, check, faced) + llm.get("notes", []),
        )  # fmt: skip
        if not report["written"]:
            raise CalibrationRefused(bundle.root, _refusal(report))
        quant = {**config.quant.info(), "window_s": config.window_s}
        _write(bundle, profile, report, encoders, runners, check, form_paths, records, quant, tmp)
    return report


def _encoder(bundle, profile: Profile, g, calibration, check, prompts, ref_answers, reference,
             tmp, config, log):  # fmt: skip
    fp32_path = bundle.graph(g).variant("fp32").path
    out = tmp / f"{g}.int8.onnx"
    quantization = enc.quantize(fp32_path, out, enc.feeds(g, calibration, profile), config.quant,
                                profile.heads)  # fmt: skip
    fp32 = OrtGraph(fp32_path, "fp32", threads=config.threads)
    int8 = OrtGraph(out, "int8", threads=config.threads)
    agreement = enc.agreement(fp32, int8, enc.feeds(g, check, profile), profile.tokens[g])
    failures = enc.bound_failures(agreement, config.min_token_cosine)
    got = ans.answers(ans.with_encoders(reference, {g: int8}, profile), prompts,
                      config.answer_tokens, profile)  # fmt: skip
    answers = ans.compare(ref_answers, got)
    if not answers["all_equal"]:
        failures.append(f"greedy answers differ from fp32's on "
                        f"{answers['prompts'] - answers['answers_equal']} of "
                        f"{answers['prompts']} prompts")  # fmt: skip
    feed = enc.feeds(g, check[:1], profile)[0]
    ms = _latency(fp32_path, out, feed, config.latency_repeats)
    log(f"  {g}: token cosine min {agreement['token_cosine_min']:.4f}, answers "
        f"{answers['answers_equal']}/{answers['prompts']} equal, fp32 {ms['fp32']:.2f} ms, "
        f"int8 {ms['int8']:.2f} ms" + (f"; refused: {'; '.join(failures)}" if failures else ""))  # fmt: skip
    record = {
        "written": not failures, "failures": failures, "agreement": agreement,
        "answers": answers, "quantization": quantization,
        "latency_cpu": latency_block(ms["fp32"], ms["int8"], 1, config.latency_repeats),
        "bytes_fp32": fp32_path.stat().st_size, "bytes_int8": out.stat().st_size,
    }  # fmt: skip
    return record, int8


def _forms(bundle, profile, reference, prompts, ref_tokens, ref_answers, tmp, config, log):
    entry = bundle.graph(LLM_DECODER)
    embeddings = np.load(bundle.file(LLM_EMBEDDINGS), mmap_mode="r")
    decoder = Fp32Decoder.read(entry.variant("fp32").path, embeddings)
    tokenizer, chat_note = _form_tokenizer(
        bundle.file(LLM_TOKENIZER), entry.attrs.get("chat") or {}
    )
    # The forms are built from weights read back out of the fp32 graph: rebuilt as fp32 they
    # must give its logits exactly, or the reading is wrong and no form is made.
    paths = {"fp32": decoder.path, "fp32_rebuilt": decoder.form("fp32", tmp / "rebuilt.onnx")}
    ids = calibration_ids(tokenizer, decoder.shape.vocab)
    absmax = input_absmax(decoder, ids) if "w8a8" in config.llm_forms else None
    for p in config.llm_forms:
        paths[p] = decoder.form(p, tmp / f"{LLM_DECODER}.{p}.onnx", absmax if p == "w8a8" else None)
    probe, records = probe_forms(paths, embeddings, decoder.layout, ids[:PROBE_TOKENS])
    rebuilt = records.pop("fp32_rebuilt")["probe_deviation"]
    if rebuilt > 1e-5:
        raise BundleError(decoder.path, f"its weights read back give logits {rebuilt:.3g} "
                          "away (relative) from the graph's own: not the layout forms are built from")  # fmt: skip
    del paths["fp32_rebuilt"]
    report = form_report(paths, embeddings, decoder.layout, tokenizer, config.threads, log=log)
    forms = {}
    for p in config.llm_forms:
        form = ans.with_decoder(reference, paths[p], p)
        got = ans.answers(form, prompts, config.answer_tokens, profile, ref_tokens)
        size = paths[p].stat().st_size + external_data_of(paths[p]).stat().st_size
        forms[p] = {**report[p], "answers": ans.compare(ref_answers, got), "bytes": size,
                    "probe_deviation": records[p]["probe_deviation"]}  # fmt: skip
        log(f"  llm {p}: answers {forms[p]['answers']['answers_equal']}/"
            f"{forms[p]['answers']['prompts']} equal, {size / 1e6:.2f} MB")  # fmt: skip
    fp32 = report["fp32"]
    llm = {"forms": forms, "fp32": {**fp32, "bytes": decoder.path.stat().st_size},
           "prefer": preferred_form(report), "eval_text": fp32["eval_text"],
           "eval_tokens": fp32["eval_tokens"], "notes": [chat_note] if chat_note else []}  # fmt: skip
    probe_file = probe.save(tmp / f"{LLM_DECODER}.probe.npz")
    return llm, {p: paths[p] for p in config.llm_forms}, {"probe": probe_file, **records}


def _form_tokenizer(path: Path, chat: dict) -> tuple[ChatTokenizer, str | None]:
    """The tokenizer the lite LLM's form report runs; its label probes are ChatML chats, so a
    bundle in another chat format (emotion_llama's LLaMA-2 ``[INST]``) gets them in ChatML
    written as plain text, with a note: they then compare each form with fp32, nothing more."""
    kind = chat.get("kind", "chatml")
    if kind == "chatml":
        return ChatTokenizer(path, ChatFormat.from_attrs(chat)), None
    stops = tuple(chat.get("stop_tokens") or ())
    note = (f"The LLM forms' label probes are the lite LLM's ChatML chats, not this model's "
            f"{kind!r} prompt: their labels compare each form with fp32 only; the greedy answers "
            "on the prompt set use the model's own prompt.")  # fmt: skip
    return ChatTokenizer(path, ChatFormat(stop_tokens=stops)), note


def _with_face(got: list, side: str, profile: Profile) -> list:
    kept = [w for w in got if w.face_pixels is not None]
    if not kept:
        raise MediaSplitError(f"no {side} window has a face the bundle's detector finds: the "
                              f"{profile.face_encoder} face model reads only face crops")  # fmt: skip
    return kept


def _face_only_note(profile: Profile, counts: dict) -> str:
    cal, ev = counts[CALIBRATION], counts[EVALUATION]
    return (f"{profile.face_encoder} is a face model: it read the face crops of the bundle's "
            "detector, 8 per window sampled and resized to 224 as a session's FrameStore does; "
            f"{cal['with_face']} of {cal['windows']} calibration and {ev['with_face']} of "
            f"{ev['windows']} check windows have a face, the others are left out of "
            "calibration and of the cosine and answer checks (a session abstains on them)")  # fmt: skip


def _face_windows(profile: Profile, cut_counts: dict, cut: dict) -> dict:
    """For a face-only model: what its vision graph read, and how many windows had a face."""
    if not profile.face_only:
        return {}
    return {"vision_input": "face crops",
            "with_face": {s: {"windows": cut_counts[s], "with_face": len(cut[s])}
                          for s in (CALIBRATION, EVALUATION)}}  # fmt: skip


def _face_notes(profile: Profile, crop, calibration, check, faced: dict) -> list[str]:
    if profile.face_encoder is None:
        return []
    if faced:
        return [_face_only_note(profile, faced["with_face"])]
    if crop is None:
        return [f"{profile.face_encoder} reads whole frames: the bundle has no face detector, "
                "so a session on it reads them too"]  # fmt: skip
    have = [sum(bool(w.faces) for w in ws) for ws in (calibration, check)]
    return [f"{profile.face_encoder} reads the face crops of the bundle's detector, as a session "
            f"does: {have[0]} of {len(calibration)} calibration and {have[1]} of {len(check)} "
            "check windows have a face; the others read whole frames"]  # fmt: skip


def _notes(profile: Profile, voices: int, silent: int, encoders: dict) -> list[str]:
    notes = []
    if silent:
        notes.append(f"{silent} calibration windows have a silent track (espeak-ng is not "
                     "installed to voice them): the audio encoder's ranges there are fitted on silence")  # fmt: skip
    if voices:
        notes.append(f"{voices} calibration windows had a silent track and were voiced with "
                     "espeak-ng speech: the audio encoder's ranges are fitted on a voice")  # fmt: skip
    slower = [g for g, e in encoders.items() if e["written"]
              and not e["latency_cpu"]["int8_faster_on_cpu"]]  # fmt: skip
    if slower:
        notes.append(f"int8 is slower than fp32 on this CPU for {', '.join(slower)}: the bundle "
                     "keeps preferring fp32 there on CPU (`--precision int8` still loads it)")  # fmt: skip
    return notes + list(profile.notes)


def _refusal(report: dict) -> dict:
    """The report in the shape ``CalibrationRefused`` reads (graph -> floor failures)."""
    return {**report, "graphs": {g: {"floor_failures": f} for g, f in report["refused"].items()}}


def _write(bundle, profile, report, encoders, runners, check, form_paths, records, quant, tmp):
    writer = BundleWriter.reopen(bundle.root)
    for g, e in encoders.items():
        if not e["written"]:
            continue
        fp32 = OrtGraph(bundle.graph(g).variant("fp32").path, "fp32", threads=1)
        feed = enc.feeds(g, check[:1], profile)[0]
        probe = Probe(feed, fp32.run(feed))
        probe_file = probe.save(tmp / f"{g}.probe.npz")
        writer.add_file(probe_key(g), probe_file, probe_file.name, role="parity probe")
        info = {**quant, "report": REPORT_JSON,
                "calibration_windows": e["quantization"]["calibration_windows"],
                "token_cosine_min": e["agreement"]["token_cosine_min"],
                **probe.record(runners[g].run)}  # fmt: skip
        writer.add_variant(g, "int8", runners[g].path, info=info)
        prefer = dict(bundle.graph(g).prefer)
        prefer["cpu"] = "int8" if e["latency_cpu"]["int8_faster_on_cpu"] else "fp32"
        writer.set_graph_field(g, "prefer", prefer)
    if form_paths:
        for p, path in form_paths.items():
            writer.add_variant(LLM_DECODER, p, path, info={**records[p], "report": REPORT_JSON})
            data = external_data_of(path)
            shutil.copyfile(data, bundle.root / data.name)
            writer.update_variant(LLM_DECODER, p, {"external_data": [{
                "file": data.name, "sha256": sha256_of(bundle.root / data.name),
                "bytes": data.stat().st_size}]})  # fmt: skip
        writer.add_file(probe_key(LLM_DECODER), records["probe"], records["probe"].name,
                        role="parity probe")  # fmt: skip
        entry = writer.manifest["graphs"][LLM_DECODER]
        entry["attrs"]["reports"] = {"fp32": report["llm"]["fp32"], **report["llm"]["forms"]}
        entry["attrs"]["measured_on"] = this_cpu().record()
        entry["prefer"] = {**entry.get("prefer", {}), "cpu": report["llm"]["prefer"]}
    writer.add_json("calibration_report", REPORT_JSON, report, role="calibration report")
    md = tmp / REPORT_MD
    md.write_text(render_markdown(report))
    writer.add_file("calibration_report_md", md, REPORT_MD, role="calibration report")
    writer.set_calibration(summary(report))
    writer.write()
