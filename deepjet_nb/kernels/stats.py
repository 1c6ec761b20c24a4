"""Streaming per-feature statistics (count, mean, sum of squared deviations) that merge across chunks.

Values listed as defaults (CMS placeholder values such as -999) and non-finite values are left out, so the
standardisation describes the physical values only; :func:`standardise` then maps them to a fixed value.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _is_excluded(v, excluded):
    if not np.isfinite(v):
        return True
    for d in excluded:
        if v == d:
            return True
    return False


@numba.njit(cache=True)
def feature_moments(values, excluded):
    """Per-feature ``(count, mean, m2)`` of ``values`` (n_features, n) skipping non-finite/excluded values.

    ``excluded`` is a float64 array of default values to skip. Outputs: count int64, mean float64,
    m2 float64 (sum of squared deviations from the mean), each of length n_features.
    """
    n_features = values.shape[0]
    count = np.zeros(n_features, dtype=np.int64)
    mean = np.zeros(n_features, dtype=np.float64)
    m2 = np.zeros(n_features, dtype=np.float64)
    for f in range(n_features):
        # Two passes per chunk (sum, then squared deviations) are exact enough in float64 and fast.
        s = 0.0
        c = 0
        for v in values[f]:
            x = np.float64(v)
            if not _is_excluded(x, excluded):
                s += x
                c += 1
        if c == 0:
            continue
        m = s / c
        q = 0.0
        for v in values[f]:
            x = np.float64(v)
            if not _is_excluded(x, excluded):
                q += (x - m) * (x - m)
        count[f] = c
        mean[f] = m
        m2[f] = q
    return count, mean, m2


@numba.njit(cache=True)
def merge_moments(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    """Combine two ``(count, mean, m2)`` triples (Chan et al.); returns the merged triple."""
    n_features = count_a.shape[0]
    count = np.zeros(n_features, dtype=np.int64)
    mean = np.zeros(n_features, dtype=np.float64)
    m2 = np.zeros(n_features, dtype=np.float64)
    for f in range(n_features):
        na = count_a[f]
        nb = count_b[f]
        n = na + nb
        count[f] = n
        if n == 0:
            continue
        delta = mean_b[f] - mean_a[f]
        mean[f] = mean_a[f] + delta * nb / n
        m2[f] = m2_a[f] + m2_b[f] + delta * delta * na * nb / n
    return count, mean, m2


@numba.njit(cache=True, inline="always")
def standardise_value(x, mean, inv_std, excluded, replace_with, clip):
    """One value standardised: ``(x - mean) * inv_std`` clipped to ±clip (clip > 0), or ``replace_with``
    for a non-finite or excluded (default) value. Shared by :func:`standardise` and the padding kernel."""
    if _is_excluded(x, excluded):
        return replace_with
    y = (x - mean) * inv_std
    if clip > 0:
        if y > clip:
            return clip
        if y < -clip:
            return -clip
    return y


@numba.njit(cache=True)
def standardise(values, mean, std, excluded, replace_with, clip):
    """Standardised float32 copy of ``values`` (n_features, n): ``(x - mean) / std`` per feature row.

    Non-finite and ``excluded`` values become ``replace_with`` (in standardised units; 0 = the mean).
    When ``clip`` > 0 results are clipped to [-clip, clip].
    """
    n_features, n = values.shape
    out = np.empty((n_features, n), dtype=np.float32)
    for f in range(n_features):
        m = mean[f]
        inv = 1.0 / std[f]
        for j in range(n):
            out[f, j] = standardise_value(np.float64(values[f, j]), m, inv, excluded, replace_with, clip)
    return out
