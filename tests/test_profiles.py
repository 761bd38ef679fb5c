"""Profiles: a session runs whatever profile its bundle names, built by that profile's module.

A tiny extra profile (random-weight graph made here, one module: tests/tiny_profile.py) is
registered and a whole session runs on it; the session code knows nothing of it."""

from __future__ import annotations

import numpy as np
import pytest

from emolive.export.bundle import BundleWriter
from emolive.runtime import profiles
from emolive.runtime.bundle import BundleError
from emolive.runtime.readings import validate
from emolive.runtime.session import Session, SessionConfig
from emolive.runtime.sources.video import SyntheticVideo
from tests import tiny_profile


@pytest.fixture
def tiny_bundle(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    weights = tiny_profile.write_graph(work / "tiny.onnx")
    writer = BundleWriter(tmp_path / "bundle", profile=tiny_profile.NAME)
    writer.add_graph(tiny_profile.GRAPH, {"fp32": work / "tiny.onnx"})
    writer.write()
    return tmp_path / "bundle", weights


def test_a_registered_profile_runs_a_whole_session(tiny_bundle, monkeypatch):
    bundle, weights = tiny_bundle
    monkeypatch.setitem(profiles._BUILDERS, tiny_profile.NAME, tiny_profile.build)
    config = SessionConfig(
        bundle=bundle, source="synthetic", audio=False, duration=2.0, every_s=1.0,
        labels=tiny_profile.LABELS,
    )  # fmt: skip
    with Session(config) as session:
        events = list(session)
    expressions = [e for e in events if e["type"] == "expression"]
    readings = [e for e in events if e["type"] == "reading"]
    for e in events:
        validate(e)
    assert len(expressions) == 60  # 2 s at 30 fps, every frame through the tiny graph
    # The scores are the tiny graph's on the frame: recompute one by hand.
    frame = next(SyntheticVideo(seconds=0.1).frames())
    x = tiny_profile.thumbnail(frame.image)
    logits = x @ weights
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = [expressions[0]["scores"][k] for k in tiny_profile.LABELS]
    np.testing.assert_allclose(got, want[0], atol=1e-4)
    # Readings come from the standard reasoning stage, fused from the tiny face evidence.
    # Windows of at least every_s tile the clip, up to its last frame (59/30 s).
    spans = [(r["t_start"], r["t_end"]) for r in readings]
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(59 / 30, abs=0.01), spans
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    top = tiny_profile.LABELS[int(np.argmax(want))]
    assert readings and all(r["emotion"] == top and r["modalities"] == ["visual"] for r in readings)
    assert "tiny profile: readings rest on the face" in readings[0]["notes"]
    graph_info = readings[0]["backend"]["graphs"][tiny_profile.GRAPH]
    assert graph_info["device"] == "cpu" and graph_info["precision"] == "fp32"
    assert session.stats()["frames_analysed"] == 60


def test_a_bundle_of_an_unknown_profile_is_refused_by_name(tiny_bundle):
    bundle, _ = tiny_bundle
    assert tiny_profile.NAME not in profiles._BUILDERS
    with pytest.raises(
        BundleError, match=r"manifest.json: field 'profile': no runtime profile 'tiny'"
    ):
        Session(SessionConfig(bundle=bundle, source="synthetic", audio=False))


def test_every_listed_profile_has_a_builder_and_an_exporter():
    import importlib

    from emolive.export.profiles import PROFILES as EXPORTS

    assert set(profiles.PROFILES) == set(EXPORTS)  # each profile has both sides
    for name, module in profiles.PROFILES.items():
        assert callable(importlib.import_module(module).build), name
        export = importlib.import_module(EXPORTS[name])
        assert export.PROFILE == name and export.STAGES
