"""Jagged → dense: sort each jet's objects by a key, truncate to a maximum length, pad.

Also the "n-th largest value per jet" reduction used for derived spectators (track counting).
Jagged data is ``offsets`` (int64, length n_jets + 1, starting at 0) plus per-object content.
"""

from __future__ import annotations

import numba
import numpy as np

from .stats import standardise_value


@numba.njit(cache=True)
def pad_sorted(offsets, content, key, jets, max_length, descending, pad_value, mean, std, excluded,
               replace_with, clip):
    """Dense ``(len(jets), max_length, n_features)`` float32 array from jagged objects, standardised.

    Inputs: ``offsets`` int64 (n_jets + 1); ``content`` (n_features, n_objects), one row per feature;
    ``key`` (n_objects,) to sort each jet's objects by, or an empty array to keep the input order;
    ``jets`` int64 indices of the jets to emit (the selection), in output order; ``descending`` sorts from
    high to low; ``pad_value`` fills missing slots (it is not standardised). Objects are sorted within each
    jet (stable; NaN keys last whichever the direction) and only then truncated to ``max_length``, so the
    kept objects are the leading ones by the key. Kept values go through
    :func:`~deepjet_nb.kernels.stats.standardise_value` with per-feature ``mean``/``std``, ``excluded``
    default values, ``replace_with`` and ``clip`` (mean 0, std 1, no excluded, clip 0 copy them as they are,
    except NaN/inf). Standardising here, on the kept objects only, saves a pass over all objects.
    """
    n_out = jets.shape[0]
    n_features = content.shape[0]
    out = np.full((n_out, max_length, n_features), pad_value, dtype=np.float32)
    inv_std = 1.0 / std
    use_key = key.shape[0] > 0
    longest = 0
    for i in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[i + 1] - offsets[i])
    ranked = np.empty(longest, dtype=np.float64)
    order = np.empty(longest, dtype=np.int64)
    for row in range(n_out):
        jet = jets[row]
        start = offsets[jet]
        n = offsets[jet + 1] - start
        # Insertion sort on a reused buffer: lists are short (tens), and it is stable.
        for j in range(n):
            if use_key:
                v = np.float64(key[start + j])
                r = np.inf if np.isnan(v) else (-v if descending else v)
            else:
                r = 0.0
            k = j
            while k > 0 and ranked[k - 1] > r:
                ranked[k] = ranked[k - 1]
                order[k] = order[k - 1]
                k -= 1
            ranked[k] = r
            order[k] = j
        for j in range(min(n, max_length)):
            src = start + order[j]
            for f in range(n_features):
                out[row, j, f] = standardise_value(np.float64(content[f, src]), mean[f], inv_std[f], excluded,
                                                   replace_with, clip)
    return out


@numba.njit(cache=True)
def nth_largest(offsets, content, n, default):
    """Per jet, the ``n``-th largest (1-based) non-NaN value of a jagged list, else ``default``.

    Inputs: ``offsets`` int64 (n_jets + 1), ``content`` float (n_objects,), ``n`` >= 1. Output float32
    (n_jets,). Used for the track-counting discriminant (second-highest 3D IP significance).
    """
    n_jets = offsets.shape[0] - 1
    out = np.full(n_jets, default, dtype=np.float32)
    top = np.empty(n, dtype=np.float64)
    for i in range(n_jets):
        filled = 0
        for j in range(offsets[i], offsets[i + 1]):
            v = np.float64(content[j])
            if np.isnan(v):
                continue
            # Insertion into a descending top-n list: lists are short, so this beats a sort.
            if filled < n:
                k = filled
                filled += 1
            elif v > top[n - 1]:
                k = n - 1
            else:
                continue
            while k > 0 and top[k - 1] < v:
                top[k] = top[k - 1]
                k -= 1
            top[k] = v
        if filled == n:
            out[i] = top[n - 1]
    return out
