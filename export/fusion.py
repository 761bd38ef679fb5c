"""The lite bundle's fitted fusion: the weights and uncertainty threshold fitted on labelled
development data (``python -m emolive.calibrate.fusion_lite``; the fitted model ships in the
package, ``export/fitted/lite_fusion.json``, with what it was fitted on), put in the bundle.

It was fitted on the words model's and the LLM's outputs, so it belongs only in a bundle
whose words model is the one it was fitted with: the stage checks the head's card.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from emolive.export.bundle import BundleWriter
from emolive.runtime.fusion import FusionModel
from emolive.runtime.names import FUSION_FILE, WORDS_HEAD_CARD

FITTED = Path(__file__).parent / "fitted" / "lite_fusion.json"


def load_fitted(path: Path = FITTED) -> FusionModel:
    try:
        return FusionModel.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a fitted fusion model: {e}") from e


def add_fitted_fusion(writer: BundleWriter, work: Path, log: Callable[[str], None]) -> dict:
    """Put the packaged fitted fusion in the bundle; its checks."""
    model = load_fitted()
    card_spec = writer.manifest["files"].get(WORDS_HEAD_CARD)
    if card_spec is None:
        raise ValueError(
            f"{FITTED} was fitted with the words model, and this bundle has none: export the "
            "'words' stage before 'fusion'"
        )
    card = json.loads((writer.root / card_spec["file"]).read_text(encoding="utf-8"))
    fitted_with = model.fitted_on.get("words_head")
    if fitted_with != card.get("trained_on"):
        raise ValueError(
            f"{FITTED} was fitted with a words head trained on {fitted_with!r}, the bundle's "
            f"was trained on {card.get('trained_on')!r}: refit it (python -m "
            "emolive.calibrate.fusion_lite)"
        )
    writer.add_json(FUSION_FILE, "fusion.json", model.as_dict(), role="fitted fusion")
    log(f"  fusion: weights {dict(model.weights)}, uncertain under {model.threshold}")
    fit = model.fitted_on.get("fit", {})
    return {"weights": dict(model.weights), "threshold": model.threshold, "fit": fit}
