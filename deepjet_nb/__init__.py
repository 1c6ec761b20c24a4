"""deepjet-nb: Jupyter-first deep-learning jet-flavour tagging.

``import deepjet_nb as djn`` is cheap: stage modules (and TensorFlow, matplotlib) load on first use,
e.g. ``djn.samples.generate(...)``.
"""

import importlib
import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) hides the progress bars; warnings still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .errors import ArgumentError, ConfigError, DatasetError, DeepJetError, InputFileError, RunError

__version__ = "0.1.0"

_LAZY_MODULES = frozenset(
    ("samples", "kernels", "config", "convert", "dataset", "models", "train", "dashboard", "predict",
     "evaluate", "plots", "widgets", "cli", "demo")
)

__all__ = ["ArgumentError", "ConfigError", "DatasetError", "DeepJetError", "InputFileError", "RunError",
           *sorted(_LAZY_MODULES)]


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'deepjet_nb' has no attribute {name!r}")
