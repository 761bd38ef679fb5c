"""What several commands share: where the default bundle lives."""

from __future__ import annotations

import os
from pathlib import Path

BUNDLE_ENV = "EMOLIVE_BUNDLE"


def default_bundle() -> Path:
    """``$EMOLIVE_BUNDLE``, else ``bundles/lite`` under the current folder (what `make demo` writes)."""
    return Path(os.environ.get(BUNDLE_ENV, "bundles/lite"))
