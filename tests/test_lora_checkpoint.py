"""The checkpoint checks both LLM profiles share (export/checkpoint.py), run through each
profile's own reader on its own tiny checkpoint: a damaged file, a file without the runner's
``model`` dict, and missing LoRA keys are each refused by name. Each profile's own keys
(projectors, fusion, perspectives) are tested beside its builders."""

from __future__ import annotations

import importlib

import pytest
import torch

from emolive.export.checkpoint import CheckpointError

# profile -> (its checkpoint module, the test module that builds its tiny checkpoint)
PROFILES = {
    "affectgpt": ("emolive.export.affectgpt.checkpoint", "tests.test_affectgpt_tiny"),
    "emotion_llama": ("emolive.export.emotion_llama.checkpoint", "tests.test_emotion_llama"),
}


@pytest.fixture(params=sorted(PROFILES))
def profile(request):
    reader, builders = (importlib.import_module(m) for m in PROFILES[request.param])
    return reader, builders


def test_a_damaged_file_or_one_without_weights_is_named(profile, tmp_path):
    reader, tiny = profile
    path = tiny.write_checkpoint(tmp_path / "c.pth")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"c\.pth: not a readable torch checkpoint .*trunc"):
        reader.read_checkpoint(path)
    torch.save({"state_dict": {}}, tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match=r"plain\.pth: no 'model' dict .*\['state_dict'\]"):
        reader.read_checkpoint(tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match=r"gone\.pth: no such checkpoint file"):
        reader.read_checkpoint(tmp_path / "gone.pth")


def test_missing_lora_keys_are_named(profile, tmp_path):
    reader, tiny = profile
    state = tiny.checkpoint_state()
    key = reader.lora_key(1, "self_attn.v_proj", "B")
    del state[key]
    with pytest.raises(CheckpointError, match=rf"missing 1 LoRA key\(s\), first \['{key}'\]"):
        reader.read_checkpoint(tiny.write_checkpoint(tmp_path / "c.pth", state),
                               llm_layers=tiny.LLM_LAYERS)  # fmt: skip
    no_lora = {k: v for k, v in tiny.checkpoint_state().items() if "lora" not in k}
    with pytest.raises(CheckpointError, match=r"no LoRA keys \(llama_model\.base_model"):
        reader.read_checkpoint(tiny.write_checkpoint(tmp_path / "e.pth", no_lora))
