"""P-CNN (DeepAK8-style): 1D convolutions along ordered particle/vertex sequences (docs/reference.md §4).

Each object list is a sequence whose features are the "colours" of a 1D convolution with kernel size > 1,
z^α_m = Σ_a Σ_j k^α_{a,j} X_{a,m+j−1}. Per list: input batch norm, a 1×1 stem, residual blocks of two such
convolutions each, global average pooling. The pooled lists and the (batch-normalised) flat groups are
concatenated and go through a dense head with softmax over the classes.

Padded slots are masked: a slot whose features all equal the group's pad value is not an object, so after
every convolution block its outputs are set to zero (a kernel wider than 1 would otherwise carry the padding
into the neighbouring real objects at the next block) and the pooling averages over the real objects only;
the network's output does not depend on how much padding a list has.
"""

from __future__ import annotations

import keras
from keras import layers

from ..errors import ConfigError
from .layers import (MaskedAverage, PaddingMask, dense_block, input_batchnorm, input_tensors, pad_value,
                     softmax_output, split_groups)


def build_pcnn(
    manifest: dict,
    *,
    filters: tuple[int, ...] = (32, 64),
    kernel_size: int = 3,
    head_units: tuple[int, ...] = (128,),
    dropout: float = 0.1,
) -> keras.Model:
    """Build the P-CNN for ``manifest``; returns an uncompiled model.

    Raises :class:`ConfigError` when the manifest has no object-list input group.
    """
    flat, seq = split_groups(manifest)
    if not seq:
        raise ConfigError(f"pcnn needs at least one object-list input group; manifest 'inputs' has {flat}")
    inputs = input_tensors(manifest)
    parts = [input_batchnorm(inputs[g], g) for g in flat]
    for group in seq:
        mask = PaddingMask(pad_value(manifest, group), name=f"{group}_mask")(inputs[group])
        x = input_batchnorm(inputs[group], group)
        x = layers.Multiply(name=f"{group}_stem_masked")([layers.Conv1D(filters[0], 1, name=f"{group}_stem")(x),
                                                          mask])
        for i, width in enumerate(filters):
            x = layers.Multiply(name=f"{group}_res{i}_masked")(
                [_residual_block(x, width, kernel_size, name=f"{group}_res{i}"), mask])
        parts.append(MaskedAverage(name=f"{group}_pool")(x, mask))
    x = layers.Concatenate(name="concat")(parts) if len(parts) > 1 else parts[0]
    for i, units in enumerate(head_units):
        x = dense_block(x, units, dropout, name=f"head{i}")
    return keras.Model(inputs=list(inputs.values()), outputs=softmax_output(x, manifest), name="pcnn")


def _residual_block(x, width: int, kernel_size: int, name: str):
    """Two (conv → BN → ReLU) with a shortcut; a 1×1 projection when the width changes."""
    shortcut = x
    if x.shape[-1] != width:
        shortcut = layers.Conv1D(width, 1, name=f"{name}_proj")(x)
    for j in range(2):
        x = layers.Conv1D(width, kernel_size, padding="same", name=f"{name}_conv{j}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{j}")(x)
        if j == 0:
            x = layers.Activation("relu", name=f"{name}_relu{j}")(x)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(x)
