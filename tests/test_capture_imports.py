"""Capture knows no inference: importing a source (``emolive.runtime.sources``: microphone, audio
files, wav reading, resampling, video) or the media types loads no ONNX Runtime, VAD, speech
to text or audio stage; the audio stage package itself loads them only when a name is used. Each check
runs in a fresh interpreter, since this one has long since imported everything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CAPTURE = (
    "emolive.runtime.audio",
    "emolive.runtime.sources",
    "emolive.runtime.sources.microphone",
    "emolive.runtime.sources.audio_files",
    "emolive.runtime.sources.wav",
    "emolive.runtime.sources.resample",
    "emolive.runtime.sources.errors",
    "emolive.runtime.media",
    "emolive.runtime.sources.video",
)
HEAVY = (
    "onnxruntime",
    "onnx",
    "faster_whisper",
    "ctranslate2",
    "emolive.runtime.audio.vad",
    "emolive.runtime.audio.stage",
    "emolive.runtime.audio.asr",
    "emolive.runtime.backends",
)


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("module", CAPTURE)
def test_capture_module_loads_no_inference(module):
    out = _fresh(
        f"import json, sys\nimport {module}\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    assert json.loads(out.strip().splitlines()[-1]) == [], f"importing {module} loaded them"


def test_every_exported_name_still_imports():
    import emolive.runtime.audio as audio

    names = list(audio.__all__)
    assert names, "emolive.runtime.audio exports nothing"
    out = _fresh(
        "import json, emolive.runtime.audio as a\n"
        "names = list(a.__all__)\n"
        "for n in names:\n"
        "    exec(f'from emolive.runtime.audio import {n}')\n"
        "print(json.dumps(sorted(n for n in names if n not in dir(a))))"
    )
    assert json.loads(out.strip().splitlines()[-1]) == []
    for name in names:  # and here, where the heavy modules may already be loaded
        value = getattr(audio, name)
        assert getattr(value, "__name__", name) == name


def test_lazy_names_are_the_defining_modules_objects():
    from emolive.runtime.audio import AudioStage, SileroVad, WhisperTranscriber
    from emolive.runtime.audio.asr import WhisperTranscriber as asr
    from emolive.runtime.audio.stage import AudioStage as stage
    from emolive.runtime.audio.vad import SileroVad as vad

    assert (AudioStage, SileroVad, WhisperTranscriber) == (stage, vad, asr)


def test_unknown_name_is_an_attribute_error():
    import emolive.runtime.audio as audio

    with pytest.raises(AttributeError, match="no_such_name"):
        audio.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from emolive.runtime.audio import no_such_name")
