"""Keras 3 model builders shaped from a converted dataset's manifest, and models from outside the package.

The registry maps a built-in model name to its builder; builders live in one module each and are imported on
first use, so ``import deepjet_nb.models`` (and listing :data:`MODEL_NAMES`) does not import TensorFlow.

>>> from deepjet_nb.models import build_model                                  # doctest: +SKIP
>>> model = build_model("deepjet", dataset.manifest)                            # doctest: +SKIP
>>> model = build_model("mytagger/models.py:build_deepsets", dataset.manifest)  # doctest: +SKIP

Every builder takes the manifest (``inputs``: ordered group → ``{"shape", "features"}``, ``classes``) and
keyword hyper-parameters, and returns an uncompiled ``keras.Model`` whose inputs are named after the input
groups (so a dict of arrays keyed by group name feeds it) and whose output is a softmax over the classes.
A user's own builder has the same signature and is named by an import path (``package.module:function``,
``path/to/file.py:function``) or given as a function; a finished ``keras.Model`` is accepted too
(:mod:`deepjet_nb.models.source`, docs/custom_models.md).
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError
from .source import ModelSpec, build_from_spec, check_model_fits, custom_layer_sources, source_changes

__all__ = ["MODEL_NAMES", "ModelSpec", "get_builder", "resolve", "build_model", "check_model_fits",
           "custom_layer_sources", "source_changes", "reseed_dropout"]

# name -> "module:function"; modules are imported lazily (they import Keras).
_REGISTRY = {
    "deepcsv": "deepjet_nb.models.deepcsv:build_deepcsv",
    "deepjet": "deepjet_nb.models.deepjet:build_deepjet",
    "pcnn": "deepjet_nb.models.pcnn:build_pcnn",
    "dense": "deepjet_nb.models.dense:build_dense",
}

MODEL_NAMES = tuple(_REGISTRY)

# Where the builder of each built-in model lives, for `deepjet-nb init --from NAME` (it copies the module).
BUILTIN_SOURCES = {name: target.split(":")[0] for name, target in _REGISTRY.items()}


def resolve(model) -> ModelSpec:
    """A :class:`ModelSpec` for ``model``: a built-in name, ``package.module:function``,
    ``path/to/file.py:function``, a builder function or a ``keras.Model``.

    Raises :class:`ArgumentError` for an unknown name and :class:`~deepjet_nb.errors.ModelError` for an import
    path that does not exist or does not name a function.
    """
    from .source import resolve_model

    return resolve_model(model, _REGISTRY)


def get_builder(name) -> object:
    """Return the builder function of ``name`` (any form :func:`resolve` takes but a model object).

    Raises :class:`ArgumentError` (listing the known names) for an unknown name.
    """
    spec = resolve(name)
    if spec.builder is None:
        raise ArgumentError(f"model {spec.name!r} is a model object, not a builder")
    return spec.builder


def build_model(model, manifest: dict, **hyper):
    """Build ``model`` (any form :func:`resolve` takes) for the dataset described by ``manifest``.

    ``hyper`` are the builder's keyword hyper-parameters (e.g. ``dropout=0.1``). Returns an uncompiled
    ``keras.Model``. Raises :class:`ArgumentError` for an unknown model or hyper-parameter,
    :class:`ConfigError` when the manifest's input groups do not fit a built-in architecture, and
    :class:`~deepjet_nb.errors.ModelError` when a user's builder fails or builds a model that does not fit.
    """
    spec = model if isinstance(model, ModelSpec) else resolve(model)
    return build_from_spec(spec, manifest, **hyper)


def reseed_dropout(model, seed: int, epoch: int) -> None:
    """Set the random stream of every dropout (and other seeded) layer from ``(seed, epoch)``.

    Keras keeps a layer's random state in a ``SeedGenerator`` variable that ``model.save`` does not write, so a
    model loaded from a checkpoint would draw other dropout masks than the uninterrupted run. Reseeding at the
    start of each epoch makes the masks of epoch ``e`` depend only on (seed, e): a resumed run is then
    bit-identical to an uninterrupted one.
    """
    generators = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    if not generators:
        return
    seeds = np.random.SeedSequence([seed, epoch]).generate_state(len(generators)) % (2**31 - 1)
    for variable, value in zip(generators, seeds):
        variable.assign(np.array([value, 0], dtype=variable.dtype))
