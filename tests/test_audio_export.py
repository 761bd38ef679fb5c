"""The audio models in a bundle: checked on the way in, loaded from the bundle on the way out."""

from __future__ import annotations

import numpy as np
import pytest

from emolive.export.audio import add_audio_models, check_vad
from emolive.export.bundle import BundleWriter
from emolive.export.checks import ExportCheckError
from emolive.runtime import names
from emolive.runtime.audio.stage import AudioStage
from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.media import AUDIO_RATE
from emolive.runtime.sources.audio_files import SyntheticAudioSource
from tests.audio_speech import SENTENCES, speak, word_error_rate
from tests.helpers import tiny_onnx


@pytest.fixture(scope="module")
def audio_bundle(tmp_path_factory):
    pytest.importorskip("faster_whisper", reason="needs emo-live[audio]")
    root = tmp_path_factory.mktemp("bundle") / "audio"
    writer = BundleWriter(root, profile="lite")
    checks = add_audio_models(writer, log=lambda m: None)
    writer.write()
    return root, checks


def test_bundle_holds_the_vad_graph_and_whisper_files(audio_bundle):
    root, checks = audio_bundle
    bundle = Bundle.open(root)
    vad = bundle.graph(names.VAD)
    assert [i["name"] for i in vad.inputs] == [names.VAD_INPUT, names.VAD_STATE, names.VAD_RATE]
    assert vad.attrs["frame"] == 512 and vad.attrs["sample_rate"] == AUDIO_RATE
    for f in names.ASR_FILES:
        assert bundle.file(f"{names.ASR_DIR}/{f}").is_file()
    assert checks["vad"]["silence_max_prob"] < 0.1
    assert checks["asr"]["loaded"] is True and checks["asr"]["silence_text"] == ""
    sources = {s["name"] for s in bundle.manifest["sources"]}
    assert {"silero-vad", "whisper-tiny-en"} <= sources


def test_stage_runs_from_the_bundle(audio_bundle):
    root, _ = audio_bundle
    stage = AudioStage.from_bundle(Bundle.open(root))
    pad = np.zeros(AUDIO_RATE, np.float32)
    out = stage.run_inline(SyntheticAudioSource(np.concatenate([pad, speak(SENTENCES[1]), pad])))
    assert len(out) == 1 and word_error_rate(SENTENCES[1], out[0].transcript.text) <= 0.2


def test_a_changed_whisper_file_is_refused(audio_bundle, tmp_path):
    import shutil

    root, _ = audio_bundle
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    vocab = copy / names.ASR_DIR / "vocabulary.txt"
    vocab.write_text(vocab.read_text() + "tampered\n")
    with pytest.raises(BundleError, match="vocabulary.txt.*sha256 mismatch"):
        Bundle.open(copy)


def test_a_graph_that_is_not_silero_is_refused(tmp_path):
    with pytest.raises(ExportCheckError, match="'vad'"):
        check_vad(tiny_onnx(tmp_path / "not_vad.onnx"))


def test_synthetic_session_loses_no_audio_chunk(audio_bundle):
    from emolive.runtime.session import Session, SessionConfig

    root, _ = audio_bundle
    config = SessionConfig(
        bundle=root, source="synthetic", video=False, duration=3.0, realtime=True, reason=False
    )
    with Session(config) as s:
        readings = [e for e in s if e["type"] == "reading"]
    stats = s.stats()
    # 3 s of 64 ms chunks, paced in real time: the audio stage keeps up and drops none.
    # Unpaced, the source pushed them all at once (a 180 s session lost 2,299 of 2,813).
    assert stats["audio_chunks_captured"] >= 45 and stats["audio_dropped"] == 0
    assert stats["wall_s"] >= 2.5
    assert all(r["emotion"] is None for r in readings)  # silence: no label
