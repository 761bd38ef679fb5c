"""The torch-free runtime: bundles, backends, sources, stages and readings.

from emolive.runtime import Session, SessionConfig
with Session(SessionConfig(bundle="bundles/lite", source="0")) as session:
    for event in session:
        ...
"""

from __future__ import annotations

__all__ = ["Session", "SessionConfig", "SessionError"]


def __getattr__(name: str):
    # Lazy: `import emolive.runtime.names` must not load OpenCV and ONNX Runtime.
    if name in __all__:
        from emolive.runtime import session

        return getattr(session, name)
    raise AttributeError(f"module 'emolive.runtime' has no attribute {name!r}")
