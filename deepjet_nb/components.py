"""The loss, metrics, optimizer and callbacks of a training, as the user gives them to the Trainer.

Each may be a Keras object, a Keras name (``"adamw"``, ``"sparse_categorical_crossentropy"``) or an import path
to the user's own (``package.module:name``, ``path/to/file.py:name``; a class there is instantiated without
arguments). :class:`Components` holds them resolved, says how to build the optimizer for a learning rate, and
records them in ``train_config.json``: names and import paths as written (a resume from the command line
imports them again), objects as ``"module:qualname"`` (docs/custom_models.md).

Conventions every user loss and metric must follow: ``y_true`` is the integer class index per jet (shape
``(batch,)``), ``y_pred`` the softmax probabilities ``(batch, n_classes)``; jet weights come as
``sample_weight`` (losses) and the metrics are compiled as weighted metrics, as the built-in accuracy is.

Keras is imported only by the functions that need it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ArgumentError, ModelError
from .userimport import is_import_path, load_object

__all__ = ["Components", "resolve_components", "describe", "reimportable"]

OBJECT_PREFIX = "<object "  # how an object given in Python is recorded


@dataclass
class Components:
    """Resolved training components; ``None`` / empty means the package's default (weighted sparse
    categorical cross-entropy, argmax accuracy, Adam, no extra callbacks)."""

    loss: Any = None
    metrics: list = field(default_factory=list)
    optimizer: Any = None
    callbacks: list = field(default_factory=list)
    given: dict = field(default_factory=dict)  # what was written, for the record

    @property
    def custom_loss(self) -> bool:
        return self.loss is not None

    def record(self) -> dict:
        """What ``train_config.json`` keeps: ``{"loss", "metrics", "optimizer", "callbacks"}``."""
        return {"loss": self.given.get("loss"), "metrics": list(self.given.get("metrics", [])),
                "optimizer": self.given.get("optimizer"), "callbacks": list(self.given.get("callbacks", []))}

    def make_loss(self):
        import keras

        return self.loss if self.loss is not None else keras.losses.SparseCategoricalCrossentropy()

    def make_optimizer(self, lr: float):
        """A fresh optimizer at learning rate ``lr`` (the trainer owns the learning rate: recipe, halving on
        plateau, the phase after the input batch norms freeze)."""
        import keras

        spec = self.optimizer
        if spec is None:
            return keras.optimizers.Adam(learning_rate=lr)
        if isinstance(spec, str):
            return keras.optimizers.get({"class_name": spec, "config": {"learning_rate": lr}})
        if isinstance(spec, keras.optimizers.Optimizer):
            return type(spec).from_config({**spec.get_config(), "learning_rate": lr})
        made = spec(learning_rate=lr)  # an optimizer class or a factory function
        if not isinstance(made, keras.optimizers.Optimizer):
            raise ModelError(f"optimizer {describe(spec)!r} returned {type(made).__name__}, not a keras optimizer")
        return made

    def make_metrics(self) -> list:
        """The weighted metrics to compile: argmax accuracy, then the user's."""
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), *self.metrics]

    def custom_objects(self) -> dict:
        """Registered name → object of every user component, for loading a checkpoint compiled with them."""
        import keras

        objects = {}
        for obj in (self.loss, self.optimizer, *self.metrics):
            if obj is None or isinstance(obj, str):
                continue
            target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
            objects[keras.saving.get_registered_name(target)] = target
            objects[target.__name__] = target
        return objects

    def validation_values(self, probs: np.ndarray, label: np.ndarray, weight: np.ndarray) -> dict:
        """``val_loss`` with the user's loss (when there is one) and ``val_<name>`` of each user metric, on the
        validation jets (weighted; the Keras convention: mean of weight × loss)."""
        import keras

        out = {}
        y_true, y_pred, w = label.astype("int64"), probs.astype("float32"), weight.astype("float32")
        if self.loss is not None:
            if isinstance(self.loss, keras.losses.Loss):
                out["val_loss"] = float(self.loss(y_true, y_pred, sample_weight=w))
            else:
                values = keras.ops.convert_to_numpy(self.loss(y_true, y_pred))
                out["val_loss"] = float(np.mean(w * values))
        for metric in self.metrics:
            fresh = _fresh_metric(metric)
            fresh.update_state(y_true, y_pred, sample_weight=w)
            out[f"val_{fresh.name}"] = float(keras.ops.convert_to_numpy(fresh.result()))
        return out


def resolve_components(*, loss=None, metrics=None, optimizer=None, callbacks=None) -> Components:
    """:class:`Components` from the Trainer's arguments (see the module docstring for the forms).

    Raises :class:`~deepjet_nb.errors.ModelError` for an import path that does not exist and
    :class:`ArgumentError` for a Keras name Keras does not know or a value of the wrong kind.
    """
    metrics = _as_list(metrics, "metrics")
    callbacks = _as_list(callbacks, "callbacks")
    given = {"loss": describe(loss), "metrics": [describe(m) for m in metrics],
             "optimizer": describe(optimizer), "callbacks": [describe(c) for c in callbacks]}
    return Components(loss=_loss(loss), metrics=[_metric(m) for m in metrics], optimizer=_optimizer(optimizer),
                      callbacks=[_callback(c) for c in callbacks], given=given)


def describe(obj) -> str | None:
    """How a component is recorded: the text given, or ``"<object module:qualname>"`` for a function, class or
    instance (which a resume cannot import again: it must be given again)."""
    if obj is None or isinstance(obj, str):
        return obj
    target = obj if inspect.isclass(obj) or inspect.isroutine(obj) else type(obj)
    return f"{OBJECT_PREFIX}{target.__module__}:{target.__qualname__}>"


def reimportable(record: dict) -> dict:
    """The entries of a :meth:`Components.record` that can be resolved again (names and import paths), as
    keyword arguments of :func:`resolve_components`."""
    def keep(value):
        return isinstance(value, str) and not value.startswith(OBJECT_PREFIX)

    return {"loss": record.get("loss") if keep(record.get("loss")) else None,
            "metrics": [m for m in record.get("metrics") or [] if keep(m)],
            "optimizer": record.get("optimizer") if keep(record.get("optimizer")) else None,
            "callbacks": [c for c in record.get("callbacks") or [] if keep(c)]}


# -- private --------------------------------------------------------------------------------------------------


def _as_list(value, what) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ArgumentError(f"{what} must be a list, got {value!r}")
    return list(value)


def _imported(spec, what):
    """The object an import path names; any other value as it is."""
    return load_object(spec, what=what) if is_import_path(spec) else spec


def _instance(obj):
    return obj() if inspect.isclass(obj) else obj


def _loss(spec):
    if spec is None:
        return None
    obj = _imported(spec, "loss")
    if isinstance(obj, str):
        import keras

        try:
            return keras.losses.get(obj)
        except ValueError:
            raise ArgumentError(f"loss {obj!r}: Keras knows no such loss; give an import path package.module:name "
                                f"or a loss object") from None
    obj = _instance(obj)
    if not callable(obj):
        raise ArgumentError(f"loss {describe(spec)!r} is a {type(obj).__name__}, not a loss function or object")
    return obj


def _metric(spec):
    import keras

    obj = _imported(spec, "metric")
    if isinstance(obj, str):
        try:
            obj = keras.metrics.get(obj)
        except ValueError:
            raise ArgumentError(f"metric {obj!r}: Keras knows no such metric") from None
    obj = _instance(obj)
    if isinstance(obj, keras.metrics.Metric):
        return obj
    if callable(obj):
        return keras.metrics.MeanMetricWrapper(obj, name=getattr(obj, "__name__", "metric"))
    raise ArgumentError(f"metric {describe(spec)!r} is a {type(obj).__name__}, not a metric")


def _optimizer(spec):
    if spec is None:
        return None
    obj = _imported(spec, "optimizer")
    if isinstance(obj, str):
        import keras

        try:
            keras.optimizers.get(obj)
        except ValueError:
            raise ArgumentError(f"optimizer {obj!r}: Keras knows no such optimizer") from None
        return obj
    if not callable(obj) and not hasattr(obj, "get_config"):
        raise ArgumentError(f"optimizer {describe(spec)!r} is a {type(obj).__name__}, not an optimizer")
    return obj


def _callback(spec):
    import keras

    if isinstance(spec, str) and not is_import_path(spec):
        raise ArgumentError(f"callback {spec!r}: give a keras callback or an import path package.module:Class")
    obj = _instance(_imported(spec, "callback"))
    if not isinstance(obj, keras.callbacks.Callback):
        raise ArgumentError(f"callback {describe(spec)!r} is a {type(obj).__name__}, not a keras.callbacks.Callback")
    return obj


def _fresh_metric(metric):
    """A new, empty metric like ``metric`` (the compiled one keeps its training state)."""
    import keras

    if type(metric) is keras.metrics.MeanMetricWrapper:  # its config cannot carry a plain function
        return keras.metrics.MeanMetricWrapper(metric._fn, name=metric.name)
    return type(metric).from_config(metric.get_config())
