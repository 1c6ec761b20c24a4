"""DeepCSV: a dense network on the CSV tagging variables (docs/reference.md §4; CMS JINST 13 (2018) P05011).

66 inputs (12 global, 7 track features × 6 tracks, trackEtaRel × 4, 8 vertex features) in the CMS setup;
here whatever input groups the manifest lists are flattened and concatenated, so the input width follows the
data config. Five Dense(100, relu) layers with dropout 0.1, softmax over the classes (4 for DeepCSV).
"""

from __future__ import annotations

import keras
from keras import layers

from .layers import dense_block, input_tensors, softmax_output


def build_deepcsv(manifest: dict, *, units: int = 100, n_layers: int = 5, dropout: float = 0.1) -> keras.Model:
    """Build DeepCSV for ``manifest``; returns an uncompiled model (about 47.5k parameters for 66 inputs)."""
    inputs = input_tensors(manifest)
    flat = [layers.Flatten(name=f"flatten_{g}")(x) if len(x.shape) > 2 else x for g, x in inputs.items()]
    x = layers.Concatenate(name="concat_inputs")(flat) if len(flat) > 1 else flat[0]
    for i in range(n_layers):
        # The CMS DeepCSV has no batch norm between its dense layers, only dropout.
        x = dense_block(x, units, dropout, name=f"dense{i}", batchnorm=False)
    return keras.Model(inputs=list(inputs.values()), outputs=softmax_output(x, manifest), name="deepcsv")
