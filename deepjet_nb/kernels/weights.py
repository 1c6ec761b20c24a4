"""Per-class 2D (jet pT, jet η) histograms, weight look-up and seeded resampling indices.

Values outside the bin edges are counted in (and look up) the nearest edge bin, so every jet has a weight.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _bin(value, edges):
    # Clamp to the first/last bin: the reweighting must give every jet a weight (docs/reference.md §3 edges).
    n_bins = edges.shape[0] - 1
    b = np.searchsorted(edges, value, side="right") - 1
    if b < 0:
        return 0
    if b >= n_bins:
        return n_bins - 1
    return b


@numba.njit(cache=True)
def histogram_2d(x, y, label, x_edges, y_edges, n_classes):
    """Counts float64 (n_classes, n_x_bins, n_y_bins) of (x, y) per class ``label`` (int, 0..n_classes-1)."""
    hist = np.zeros((n_classes, x_edges.shape[0] - 1, y_edges.shape[0] - 1), dtype=np.float64)
    for i in range(x.shape[0]):
        hist[label[i], _bin(x[i], x_edges), _bin(y[i], y_edges)] += 1.0
    return hist


@numba.njit(cache=True)
def lookup_2d(x, y, label, x_edges, y_edges, table):
    """Per-jet float32 ``table[label, bin(x), bin(y)]``; ``table`` is (n_classes, n_x_bins, n_y_bins)."""
    out = np.empty(x.shape[0], dtype=np.float32)
    for i in range(x.shape[0]):
        out[i] = table[label[i], _bin(x[i], x_edges), _bin(y[i], y_edges)]
    return out


@numba.njit(cache=True)
def resample_indices(keep_probability, uniforms):
    """Indices (int64, increasing) of the jets kept by rejection sampling: those with uniform < probability.

    ``uniforms`` come from a seeded generator, so the same seed keeps the same jets.
    """
    keep = np.empty(keep_probability.shape[0], dtype=np.int64)
    n = 0
    for i in range(keep_probability.shape[0]):
        if uniforms[i] < keep_probability[i]:
            keep[n] = i
            n += 1
    return keep[:n]
