"""DeepJet ("DeepFlavour"): per-object 1×1 convolutions, LSTMs over the lists, a dense head (docs/reference.md §4).

Inputs, in manifest order: one flat global group (15 variables in the CMS setup) and three object lists —
charged candidates (25 × 16), neutral candidates (25 × 6), secondary vertices (4 × 12). The lists are matched
to the three branches by their order in the manifest (charged, neutral, vertices), as the data config writes
them. Each group gets its own input batch norm (``input_bn_<group>``, frozen after the first epoch by the
training recipe). About 266k parameters with the CMS shapes.
"""

from __future__ import annotations

import keras
from keras import layers

from ..errors import ConfigError
from .layers import dense_block, input_batchnorm, input_tensors, softmax_output, split_groups

# Conv widths and LSTM units per list, CMS DeepJet (DeepJet repository, model_deepFlavourReference).
CONV_WIDTHS = ((64, 32, 32, 8), (32, 16, 4), (64, 32, 32, 8))
LSTM_UNITS = (150, 50, 50)
BRANCH_NAMES = ("cpf", "npf", "sv")


def build_deepjet(
    manifest: dict,
    *,
    dropout: float = 0.1,
    dense_units: tuple[int, ...] = (200,) + (100,) * 7,
    conv_widths: tuple[tuple[int, ...], ...] = CONV_WIDTHS,
    lstm_units: tuple[int, ...] = LSTM_UNITS,
) -> keras.Model:
    """Build DeepJet for ``manifest``; returns an uncompiled model.

    Raises :class:`ConfigError` unless the manifest has exactly one flat group and three list groups.
    """
    flat, seq = split_groups(manifest)
    if len(flat) != 1 or len(seq) != 3:
        raise ConfigError(
            f"deepjet needs one flat global group and three object lists (charged, neutral, vertices) in "
            f"manifest 'inputs'; got flat {flat} and lists {seq}"
        )
    inputs = input_tensors(manifest)
    glob = input_batchnorm(inputs[flat[0]], flat[0])
    summaries = []
    for branch, group, widths, units in zip(BRANCH_NAMES, seq, conv_widths, lstm_units):
        x = input_batchnorm(inputs[group], group)
        for i, width in enumerate(widths):
            # Kernel size 1: the same small network on every object ("1×1 convolution").
            x = layers.Conv1D(width, 1, activation="relu", kernel_initializer="lecun_uniform",
                              name=f"{branch}_conv{i}")(x)
            if i < len(widths) - 1:
                x = layers.BatchNormalization(name=f"{branch}_bn{i}")(x)
                x = layers.Dropout(dropout, name=f"{branch}_dropout{i}")(x)
        # Lists are sorted by decreasing importance; reading them backwards ends on the most important object.
        summaries.append(layers.LSTM(units, go_backwards=True, name=f"{branch}_lstm")(x))
    x = layers.Concatenate(name="concat")([glob, *summaries])
    for i, units in enumerate(dense_units):
        x = dense_block(x, units, dropout, name=f"dense{i}")
    return keras.Model(inputs=list(inputs.values()), outputs=softmax_output(x, manifest), name="deepjet")
