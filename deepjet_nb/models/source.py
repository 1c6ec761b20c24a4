"""A model as the user names it: a built-in name, an import path, a builder callable or a ``keras.Model``.

:func:`resolve_model` turns any of these into a :class:`ModelSpec`: what to build and a record of where it came
from (``source``), which a training run keeps in ``train_config.json`` (docs/custom_models.md):

==================  =====================================  ======================================================
given               ``spec`` (train_config "model")        ``source``
==================  =====================================  ======================================================
``"deepjet"``       ``"deepjet"``                           kind "builtin"
``"pkg.mod:fn"``    ``"pkg.mod:fn"``                        kind "module": module, its file, the file's sha256
``"m.py:fn"``       ``"/abs/path/m.py:fn"``                 kind "file": the file, its sha256
a function          ``"module:qualname"``                   kind "callable": its file (or cell text) and sha256
a ``keras.Model``   ``"object:<model name>"``               kind "object": a fingerprint of the architecture
==================  =====================================  ======================================================

A built model is checked against the dataset (:func:`check_model_fits`): one input per input group, named after
it, of the group's shape, and one output of one column per class. Nothing here imports Keras at import time.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, DeepJetError, ModelError
from ..userimport import (is_file_path, is_import_path, load_object, object_source,
                          split_import_path)

__all__ = ["ModelSpec", "resolve_model", "build_from_spec", "check_model_fits", "custom_layer_sources",
           "source_changes"]

# Layers of these packages need no import before loading a model.
_KNOWN_PACKAGES = ("keras", "deepjet_nb", "tensorflow", "tf_keras")


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`resolve_model` makes of the ``model`` argument.

    ``name`` a short name (built-in name, builder function name or model name: titles, cards); ``spec`` the
    text a run records as its model; ``builder`` the builder function (None for a model object); ``model`` the
    model object given (else None); ``source`` where it came from (module docstring).
    """

    name: str
    spec: str
    builder: Any = None
    model: Any = None
    source: dict = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return self.source.get("kind") == "builtin"


def resolve_model(model, registry: dict[str, str]) -> ModelSpec:
    """A :class:`ModelSpec` for ``model``: a name of ``registry`` (name → "module:function"), an import path
    ``package.module:function`` or ``path/to/file.py:function``, a builder callable or a ``keras.Model``.

    Raises :class:`ArgumentError` for an unknown name (with the close ones) and :class:`ModelError` for an
    import path that does not lead to a callable.
    """
    if isinstance(model, str) and not is_import_path(model):
        if model not in registry:
            raise ArgumentError(f"unknown model {model!r}; known models: {', '.join(registry)}, or an import "
                                f"path package.module:function or file.py:function", key=model, choices=registry)
        return ModelSpec(model, model, builder=load_object(registry[model]), source={"kind": "builtin",
                                                                                     "name": model})
    if isinstance(model, str):
        return _from_import_path(model)
    if _is_keras_model(model):
        return _from_model_object(model)
    if callable(model):
        name = getattr(model, "__name__", type(model).__name__)
        source = {"kind": "callable", "name": name, **object_source(model)}
        return ModelSpec(name, source["target"], builder=model, source=source)
    raise ArgumentError(f"model must be a built-in name, an import path, a builder function or a keras.Model, "
                        f"got {type(model).__name__}")


def build_from_spec(spec: ModelSpec, manifest: dict, **hyper):
    """Build (or take) the model of ``spec`` for the dataset of ``manifest`` and check that it fits it.

    Raises :class:`ArgumentError` for a keyword the builder does not take, :class:`ModelError` when the builder
    raises or returns something that does not fit the dataset (one line, naming the builder); the package's
    own errors (e.g. :class:`ConfigError` for a manifest a built-in architecture cannot take) pass unchanged.
    """
    if spec.model is not None:
        if hyper:
            raise ArgumentError(f"model {spec.name!r} is a model object: hyper-parameters {sorted(hyper)} cannot "
                                f"apply; give its builder function instead")
        model = spec.model
    else:
        model = _call_builder(spec, manifest, hyper)
    check_model_fits(model, manifest, spec.spec)
    return model


def check_model_fits(model, manifest: dict, where: str) -> None:
    """Raise :class:`ModelError` unless ``model`` is a ``keras.Model`` with one input per input group of
    ``manifest`` (named after the group, of its shape; ``None`` matches any length) and one output of shape
    (batch, number of classes)."""
    if not _is_keras_model(model):
        raise ModelError(f"model {where!r}: the builder returned {type(model).__name__}, not a keras.Model")
    groups = {g: tuple(int(n) for n in spec["shape"]) for g, spec in manifest["inputs"].items()}
    inputs = {t.name: tuple(t.shape[1:]) for t in model.inputs}
    if set(inputs) != set(groups):
        missing, extra = sorted(set(groups) - set(inputs)), sorted(set(inputs) - set(groups))
        raise ModelError(f"model {where!r}: inputs {sorted(inputs)} are not the dataset's input groups "
                         f"{list(groups)} (missing {missing}, unknown {extra}); name each keras.Input after its "
                         f"group")
    for group, shape in groups.items():
        got = inputs[group]
        if len(got) != len(shape) or any(g is not None and g != s for g, s in zip(got, shape)):
            raise ModelError(f"model {where!r}: input {group!r} has shape {list(got)}, the dataset's is {list(shape)}",
                             key=group)
    classes = list(manifest["classes"])
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2 or model.outputs[0].shape[-1] != len(classes):
        shapes = [list(o.shape[1:]) for o in model.outputs]
        raise ModelError(f"model {where!r}: output shape {shapes[0] if len(shapes) == 1 else shapes} does not match "
                         f"the {len(classes)} classes {classes}; end with one softmax of {len(classes)} units")


def custom_layer_sources(model) -> list[dict]:
    """:func:`deepjet_nb.userimport.object_source` records of the model's layer classes that are neither Keras
    nor deepjet-nb layers: what to import before loading the model in another process."""
    classes = {}
    for layer in _all_layers(model):
        cls = type(layer)
        if cls.__module__.split(".")[0] not in _KNOWN_PACKAGES:
            classes[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return [object_source(cls) for _, cls in sorted(classes.items())]


def source_changes(recorded: dict, current: dict) -> str | None:
    """Why a model source differs from the one a run recorded (None when it does not, or cannot be told)."""
    if recorded.get("kind") != current.get("kind"):
        return f"it was a {recorded.get('kind')} model, now a {current.get('kind')} one"
    old, new = recorded.get("sha256"), current.get("sha256")
    if old and new and old != new:
        where = current.get("file") or current.get("target")
        return f"the source of {current.get('target')!r} changed ({where}: sha256 {old[:12]} -> {new[:12]})"
    return None


# -- private --------------------------------------------------------------------------------------------------


def _from_import_path(text: str) -> ModelSpec:
    where, name = split_import_path(text)
    if is_file_path(where):
        path = Path(where).expanduser().resolve()
        text = f"{path}:{name}"  # absolute: a resume or a scan from another directory finds the same file
    builder = load_object(text, what="model")
    if not callable(builder):
        raise ModelError(f"model {text!r}: {name} is a {type(builder).__name__}, not a builder function", key=name)
    if _is_keras_model(builder):
        raise ModelError(f"model {text!r}: {name} is a model object; name the function that builds it")
    kind = "file" if is_file_path(where) else "module"
    source = {"kind": kind, "name": name.split(".")[-1], **object_source(builder, target=text)}
    return ModelSpec(source["name"], text, builder=builder, source=source)


def _from_model_object(model) -> ModelSpec:
    return ModelSpec(model.name, f"object:{model.name}", model=model,
                     source={"kind": "object", "name": model.name, "target": f"object:{model.name}",
                             "sha256": architecture_digest(model)})


def architecture_digest(model) -> str:
    """sha256 of what a model is made of (layer classes and weight shapes, in order), not of its layer names,
    which Keras numbers differently each time a notebook builds the same model."""
    parts = [(type(layer).__module__, type(layer).__qualname__, [list(w.shape) for w in layer.weights])
             for layer in _all_layers(model)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _call_builder(spec: ModelSpec, manifest: dict, hyper: dict):
    try:
        inspect.signature(spec.builder).bind(manifest, **hyper)
    except TypeError as err:
        raise ArgumentError(f"model {spec.spec!r}: {err} (a builder takes the manifest and keyword "
                            f"hyper-parameters)") from None
    except ValueError:
        pass  # no signature to inspect (a builtin or C callable): let the call tell
    try:
        return spec.builder(manifest, **hyper)
    except DeepJetError:
        raise
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise ArgumentError(f"model {spec.name!r}: {err}") from None
        raise _builder_failed(spec, err) from None
    except Exception as err:
        raise _builder_failed(spec, err) from None


def _builder_failed(spec, err) -> ModelError:
    return ModelError(f"model {spec.spec!r}: the builder raised {type(err).__name__}: {err}")


def _all_layers(model):
    """Every layer of ``model``, nested ones included (a custom block holding custom layers)."""
    if hasattr(model, "_flatten_layers"):
        return list(model._flatten_layers(include_self=False, recursive=True))
    return list(model.layers)


def _is_keras_model(obj) -> bool:
    # Without importing Keras when the object cannot be one.
    return any(c.__name__ == "Model" and c.__module__.startswith("keras") for c in type(obj).__mro__)
