"""Dense: a small fully connected classifier for inputs that are one vector per entry, such as the 42 event
features of the event-level config (``deepjet_nb/configs/events.yaml``; docs/reference.md §4).

Each input group gets its own input batch norm (``input_bn_<group>``, as in the other builders); object lists,
if a config has any, are flattened after it. The groups are concatenated and go through ``Dense(relu) → batch
norm → dropout`` blocks of ``units`` (64, 64, 32 by default: 9,866 parameters for 42 inputs and 2 classes) and
a softmax over the classes. A fully connected baseline like DeepCSV's, small enough to train in seconds on a
CPU.
"""

from __future__ import annotations

import keras
from keras import layers

from ..errors import ConfigError
from .layers import dense_block, input_batchnorm, input_tensors, softmax_output, split_groups


def build_dense(manifest: dict, *, units: tuple[int, ...] = (64, 64, 32), dropout: float = 0.1) -> keras.Model:
    """Build the dense classifier for ``manifest``; returns an uncompiled model.

    Raises :class:`ConfigError` for an empty ``units``.
    """
    split_groups(manifest)  # inputs of rank other than 1 or 2 -> ConfigError naming them
    units = tuple(int(u) for u in units)
    if not units or min(units) < 1:
        raise ConfigError(f"dense needs at least one hidden layer of >= 1 units, got units={units}")
    inputs = input_tensors(manifest)
    parts = []
    for group, x in inputs.items():
        x = input_batchnorm(x, group)
        parts.append(layers.Flatten(name=f"flatten_{group}")(x) if len(x.shape) > 2 else x)
    x = layers.Concatenate(name="concat_inputs")(parts) if len(parts) > 1 else parts[0]
    for i, width in enumerate(units):
        x = dense_block(x, width, dropout, name=f"dense{i}")
    return keras.Model(inputs=list(inputs.values()), outputs=softmax_output(x, manifest), name="dense")
