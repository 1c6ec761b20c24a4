"""Building blocks shared by the model builders.

All layers here are stock Keras layers, so saved models load with plain ``keras.models.load_model``. A
custom layer added here must be decorated with ``@keras.saving.register_keras_serializable(package=
"deepjet_nb")`` for the same reason.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from ..errors import ConfigError


def manifest_inputs(manifest: dict) -> dict[str, tuple[int, ...]]:
    """Return the ordered input groups of ``manifest`` as ``{group: shape}``.

    Raises :class:`ConfigError` naming the key when ``inputs`` or ``classes`` is missing or malformed.
    """
    try:
        inputs = manifest["inputs"]
        classes = manifest["classes"]
    except (KeyError, TypeError) as err:
        raise ConfigError(f"manifest lacks key {err}; it needs 'inputs' and 'classes'") from None
    if not inputs or not classes:
        raise ConfigError("manifest has empty 'inputs' or 'classes'")
    shapes = {}
    for group, spec in inputs.items():
        try:
            shapes[group] = tuple(int(n) for n in spec["shape"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"manifest inputs[{group!r}] lacks an integer 'shape' list") from None
    return shapes


def input_tensors(manifest: dict) -> dict[str, keras.KerasTensor]:
    """One ``keras.Input`` per manifest input group, named after the group (in manifest order).

    Builders pass ``list(inputs.values())`` to ``keras.Model``: a dict would be reordered by key, while the
    manifest order is the documented model-input order; a dict of arrays keyed by group still feeds the model.
    """
    return {group: keras.Input(shape=shape, name=group) for group, shape in manifest_inputs(manifest).items()}


def split_groups(manifest: dict) -> tuple[list[str], list[str]]:
    """Split the input groups into flat (per-jet vectors) and sequence (object lists) groups."""
    shapes = manifest_inputs(manifest)
    flat = [g for g, s in shapes.items() if len(s) == 1]
    seq = [g for g, s in shapes.items() if len(s) == 2]
    other = [g for g, s in shapes.items() if len(s) not in (1, 2)]
    if other:
        raise ConfigError(f"manifest inputs {other} have rank other than 1 or 2; models take vectors or lists")
    return flat, seq


def input_batchnorm(x, group: str):
    """Per-group input batch normalisation; named ``input_bn_<group>`` so the recipe can freeze it."""
    return layers.BatchNormalization(name=f"input_bn_{group}")(x)


def dense_block(x, units: int, dropout: float, name: str, *, batchnorm: bool = True):
    """Dense(relu) [+ batch norm] + dropout."""
    x = layers.Dense(units, activation="relu", kernel_initializer="lecun_uniform", name=f"{name}_dense")(x)
    if batchnorm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Dropout(dropout, name=f"{name}_dropout")(x)


def softmax_output(x, manifest: dict):
    """Dense softmax over ``manifest["classes"]``, named ``probs``."""
    return layers.Dense(len(manifest["classes"]), activation="softmax", name="probs")(x)


def input_batchnorm_layers(model: keras.Model) -> list[layers.Layer]:
    """The per-group input batch-norm layers of a model built here (the DeepJet recipe freezes them)."""
    return [layer for layer in model.layers if layer.name.startswith("input_bn_")]


@keras.saving.register_keras_serializable(package="deepjet_nb")
class PaddingMask(layers.Layer):
    """(batch, n, 1) float mask of an object list: 1 for a real object, 0 for a padded slot (every feature
    equal to ``pad_value``, which the converter writes into empty slots)."""

    def __init__(self, pad_value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.pad_value = float(pad_value)

    def call(self, x):
        filled = ops.greater(ops.sum(ops.abs(x - self.pad_value), axis=-1, keepdims=True), 0.0)
        return ops.cast(filled, x.dtype)

    def get_config(self):
        return {**super().get_config(), "pad_value": self.pad_value}


@keras.saving.register_keras_serializable(package="deepjet_nb")
class MaskedAverage(layers.Layer):
    """Average over the real objects of a list: ``sum(x * mask) / max(sum(mask), 1)`` (zeros for an empty list)."""

    def call(self, x, mask):
        total = ops.sum(x * mask, axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1), 1.0)


def pad_value(manifest: dict, group: str) -> float:
    """The value the converter wrote into the padded slots of ``group`` (0 when the manifest does not say)."""
    spec = ((manifest.get("config") or {}).get("inputs") or {}).get(group) or {}
    return float(spec.get("pad_value", 0.0) or 0.0)
