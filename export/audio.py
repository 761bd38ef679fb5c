"""The audio stage's models in a bundle: Silero VAD (graph ``vad``) and Whisper tiny.en files.

Neither needs converting: Silero ships as ONNX and Whisper as CTranslate2 files. The VAD
graph is loaded and run through the runtime's own ``SileroVad`` before it is added (a
graph that does not load, or whose outputs are not probabilities with a carried state, is
refused with ``ExportCheckError``). The Whisper files go under ``asr/`` with their sha256 in
the manifest, so the runtime loads them from the bundle and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emolive.export.bundle import BundleWriter
from emolive.export.checks import ExportCheckError, require_at_most
from emolive.export.sources import fetch
from emolive.runtime import names
from emolive.runtime.audio.vad import CONTEXT, FRAME, SileroVad
from emolive.runtime.media import AUDIO_RATE

SILENCE_MAX_PROB = 0.1  # Silero on digital silence gives ~0.01


def vad_attrs() -> dict:
    return {"sample_rate": AUDIO_RATE, "frame": FRAME, "context": CONTEXT, "state": [2, 1, 128]}


def check_vad(path: Path) -> dict:
    """Load and run the graph the way the runtime does; return what was measured."""
    try:
        vad = SileroVad(path)
    except (RuntimeError, ValueError) as e:
        raise ExportCheckError(names.VAD, "loads", 0.0, 1.0) from e
    rng = np.random.default_rng(0)
    silence = vad.scores(np.zeros(AUDIO_RATE, np.float32))
    vad.reset()
    noise = vad.scores(rng.normal(0, 0.05, AUDIO_RATE).astype(np.float32))
    state_moved = float(np.abs(vad._state).max())
    probs = np.concatenate([silence, noise])
    if not (np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1):
        bad = float(probs[~np.isfinite(probs)][0]) if not np.isfinite(probs).all() else probs.max()
        raise ExportCheckError(names.VAD, "probability outside [0, 1]", bad, 1.0)
    if state_moved == 0.0:
        raise ExportCheckError(names.VAD, "recurrent state carried (max |state|)", 0.0, 1e-6)
    return {
        "silence_max_prob": require_at_most(
            names.VAD, "speech probability on silence", float(silence.max()), SILENCE_MAX_PROB
        ),
        "noise_max_prob": round(float(noise.max()), 4),
        "state_max_abs": round(state_moved, 4),
    }


def check_whisper(folder: Path, log: Callable[[str], None]) -> dict:
    """The CTranslate2 folder parses; when faster-whisper is installed, it loads and runs."""
    config = json.loads((folder / "config.json").read_text())
    if "suppress_ids" not in config:
        raise ExportCheckError("asr", "config.json has suppress_ids", 0.0, 1.0)
    out: dict = {"files": list(names.ASR_FILES)}
    try:
        from emolive.runtime.audio.asr import WhisperTranscriber
        from emolive.runtime.sources.errors import AudioDependencyError

        transcriber = WhisperTranscriber(folder)
    except AudioDependencyError as e:
        log(f"  whisper: not loaded here ({e}); files checked by sha256 only")
        out["loaded"] = False
        return out
    t = transcriber.transcribe(np.zeros(AUDIO_RATE, np.float32))
    out["loaded"] = True
    out["silence_text"] = t.text
    return out


def add_audio_models(
    writer: BundleWriter,
    work: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Add graph ``vad`` (fp32) and the Whisper files; returns the checks.

    Same call shape as the other stages of ``export_lite`` (writer, work folder, log);
    nothing is converted, so ``work`` is not used.
    """
    silero = fetch("silero-vad", log=log)
    vad_path = silero.path("silero_vad.onnx")
    log("checking the Silero VAD graph ...")
    vad_checks = check_vad(vad_path)
    writer.add_graph(names.VAD, {"fp32": vad_path}, attrs=vad_attrs(), checks=vad_checks)

    whisper = fetch("whisper-tiny-en", log=log)
    asr_dir = writer.root / names.ASR_DIR
    asr_dir.mkdir(parents=True, exist_ok=True)
    for name in names.ASR_FILES:
        key = f"{names.ASR_DIR}/{name}"
        writer.add_file(key, whisper.path(f"model/{name}"), name=key, role="asr")
    log("checking the Whisper tiny.en files ...")
    asr_checks = check_whisper(asr_dir, log)
    writer.add_sources([silero.record(), whisper.record()])
    return {"vad": vad_checks, "asr": asr_checks}
