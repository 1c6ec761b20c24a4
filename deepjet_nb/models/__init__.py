"""Keras 3 model builders shaped from a converted dataset's manifest.

The registry maps a model name to its builder; builders live in one module each and are imported on first
use, so ``import deepjet_nb.models`` (and listing :data:`MODEL_NAMES`) does not import TensorFlow.

>>> from deepjet_nb.models import build_model                                  # doctest: +SKIP
>>> model = build_model("deepjet", dataset.manifest)                            # doctest: +SKIP

Every builder takes the manifest (``inputs``: ordered group → ``{"shape", "features"}``, ``classes``) and
keyword hyper-parameters, and returns an uncompiled ``keras.Model`` whose inputs are named after the input
groups (so a dict of arrays keyed by group name feeds it) and whose output is a softmax over the classes.
"""

from __future__ import annotations

import importlib

from ..errors import ArgumentError

# name -> "module:function"; modules are imported lazily (they import Keras).
_REGISTRY = {
    "deepcsv": "deepjet_nb.models.deepcsv:build_deepcsv",
    "deepjet": "deepjet_nb.models.deepjet:build_deepjet",
    "pcnn": "deepjet_nb.models.pcnn:build_pcnn",
    "dense": "deepjet_nb.models.dense:build_dense",
}

MODEL_NAMES = tuple(_REGISTRY)


def get_builder(name: str):
    """Return the builder function registered under ``name``.

    Raises :class:`ArgumentError` (listing the known names) for an unknown name.
    """
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ArgumentError(
            f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}"
        ) from None
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def build_model(name: str, manifest: dict, **hyper):
    """Build model ``name`` for the dataset described by ``manifest``.

    ``hyper`` are the builder's keyword hyper-parameters (e.g. ``dropout=0.1``). Returns an uncompiled
    ``keras.Model`` named ``name``. Raises :class:`ArgumentError` for an unknown model or hyper-parameter and
    :class:`ConfigError` when the manifest's input groups do not fit the architecture.
    """
    builder = get_builder(name)
    try:
        return builder(manifest, **hyper)
    except TypeError as err:
        # An unknown keyword reaches the builder's signature; name the model in the message.
        if "unexpected keyword argument" in str(err):
            raise ArgumentError(f"model {name!r}: {err}") from None
        raise
