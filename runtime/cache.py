"""Where emo-live keeps what it fetched or built for this machine (sources, calibration sets,
TensorRT engines): ``$EMOLIVE_CACHE``, else the user cache folder. Export, calibration and
the runtime all ask here, so the runtime never reaches up into ``emolive.export`` for it."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EMOLIVE_CACHE"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("emo-live"))
