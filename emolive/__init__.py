"""emo-live: explainable multimodal emotion recognition on a device, in real time."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("emo-live")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
