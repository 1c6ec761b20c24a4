"""Weighted ROC curves: numba kernels on flat arrays and a thin public API.

The one ROC implementation of deepjet-nb; evaluation, plots and widgets call it.

Conventions (the same as :func:`sklearn.metrics.roc_curve` with ``drop_intermediate=False``):

- a jet passes a threshold ``t`` when ``score >= t``;
- the curve has one point per distinct score (tied scores move together, so ties never create a
  staircase that depends on the input order), plus a first point ``(0, 0)`` at threshold ``+inf``;
- ``sig_eff`` is the true-positive rate (b-jet efficiency), ``bkg_eff`` the false-positive rate
  (misidentification probability), both non-decreasing when the weights are non-negative.

Example::

    >>> import numpy as np
    >>> from deepjet_nb.kernels.roc import roc_curve, auc, eff_at_mistag
    >>> sig_eff, bkg_eff, thr = roc_curve(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
    >>> float(auc(sig_eff, bkg_eff))
    0.75
"""

from __future__ import annotations

import numba
import numpy as np

from ..errors import ArgumentError

__all__ = ["roc_curve", "auc", "eff_at_mistag", "threshold_at_mistag", "roc_auc", "bootstrap_errors",
           "paired_bootstrap_errors"]

BOOTSTRAP_REPLICAS = 200


def roc_curve(scores, is_signal, weights=None):
    """Weighted ROC curve of a discriminant.

    Inputs: ``scores`` (n,) discriminant values, larger = more signal-like; ``is_signal`` (n,) bool or 0/1
    (True for signal, False for background; jets that are neither must be removed beforehand);
    ``weights`` (n,) per-jet weights or None for unit weights.

    Returns ``(sig_eff, bkg_eff, thresholds)``, three float64 arrays of length (number of distinct
    scores + 1): the efficiencies of ``score >= thresholds[i]``, thresholds decreasing, ``thresholds[0]``
    is ``+inf``.

    Raises :class:`~deepjet_nb.errors.ArgumentError` when the arrays differ in length, a score or weight is
    not finite, or the signal or background has no (positive total) weight.
    """
    scores, is_signal, weights = _validated(scores, is_signal, weights)
    tps, fps, thresholds = _roc_counts(scores, is_signal, weights)
    # Totals are the last cumulative sums, so the curve ends exactly at (1, 1).
    total_sig, total_bkg = tps[-1], fps[-1]
    if not total_sig > 0:
        raise ArgumentError("roc_curve: the signal has no jets (or zero total weight)")
    if not total_bkg > 0:
        raise ArgumentError("roc_curve: the background has no jets (or zero total weight)")
    return tps / total_sig, fps / total_bkg, thresholds


def auc(sig_eff, bkg_eff):
    """Area under a ROC curve (trapezoidal rule in ``bkg_eff``), as :func:`sklearn.metrics.roc_auc_score`.

    Inputs: the first two arrays returned by :func:`roc_curve`. Returns a float in [0, 1] (0.5 = no
    separation).
    """
    return float(_trapezoid(np.ascontiguousarray(sig_eff, dtype=np.float64),
                            np.ascontiguousarray(bkg_eff, dtype=np.float64)))


def roc_auc(scores, is_signal, weights=None):
    """Shortcut: the AUC of ``roc_curve(scores, is_signal, weights)``."""
    sig_eff, bkg_eff, _ = roc_curve(scores, is_signal, weights)
    return auc(sig_eff, bkg_eff)


def eff_at_mistag(sig_eff, bkg_eff, mistag):
    """Signal efficiency at a given background efficiency (misidentification probability).

    Linear interpolation along the curve between the last point with ``bkg_eff <= mistag`` and the next one;
    where several points share ``bkg_eff == mistag`` the highest efficiency among them is taken (the best cut
    with that mistag). Inputs: arrays from :func:`roc_curve` (``bkg_eff`` non-decreasing, which holds for
    non-negative weights) and a scalar or array ``mistag`` in [0, 1]. Returns a float, or an array shaped like
    ``mistag``. Raises :class:`ArgumentError` for a mistag outside [0, 1].
    """
    sig_eff = np.ascontiguousarray(sig_eff, dtype=np.float64)
    bkg_eff = np.ascontiguousarray(bkg_eff, dtype=np.float64)
    targets = np.asarray(mistag, dtype=np.float64)
    _check_mistag(targets)
    out = _interp_at(sig_eff, bkg_eff, np.ascontiguousarray(targets.ravel()))
    return float(out[0]) if targets.ndim == 0 else out.reshape(targets.shape)


def threshold_at_mistag(bkg_eff, thresholds, mistag):
    """Loosest cut whose background efficiency does not exceed ``mistag``.

    Inputs: ``bkg_eff`` and ``thresholds`` from :func:`roc_curve`, scalar or array ``mistag`` in [0, 1].
    Returns the cut value(s) ``t`` (select ``score >= t``); ``+inf`` when even the tightest real cut lets
    through more background than ``mistag``. Raises :class:`ArgumentError` for a mistag outside [0, 1].
    """
    bkg_eff = np.ascontiguousarray(bkg_eff, dtype=np.float64)
    thresholds = np.ascontiguousarray(thresholds, dtype=np.float64)
    targets = np.asarray(mistag, dtype=np.float64)
    _check_mistag(targets)
    # Index of the last point with bkg_eff <= mistag; points start at (0, 0) so it is never below 0.
    idx = np.searchsorted(bkg_eff, targets.ravel(), side="right") - 1
    out = thresholds[np.clip(idx, 0, len(thresholds) - 1)]
    return float(out[0]) if targets.ndim == 0 else out.reshape(targets.shape)


def bootstrap_errors(scores, is_signal, weights=None, mistags=(0.1, 0.01, 0.001), *,
                     n_boot: int = BOOTSTRAP_REPLICAS, seed: int = 0):
    """Statistical errors of the AUC and of the signal efficiencies at given mistags, by bootstrap.

    Each of ``n_boot`` replicas gives every jet its weight times a Poisson(1) count (the Poisson bootstrap:
    resampling with replacement for large samples), so the scores are sorted once and each replica costs one
    pass. The errors are the standard deviations over replicas (a replica without signal or background weight
    is skipped). Inputs as :func:`roc_curve`, plus ``mistags`` (scalar or array in [0, 1]) and the ``seed``
    of the replicas (the same inputs and seed give the same errors). Returns ``(auc_err, eff_err)``:
    a float and a float or array shaped like ``mistags``. Raises :class:`ArgumentError` as :func:`roc_curve`,
    and for ``n_boot < 2``.
    """
    scores, is_signal, weights = _validated(scores, is_signal, weights)
    targets, flat = _bootstrap_targets(mistags, n_boot, "bootstrap_errors")
    aucs, effs = _replica_values([scores], is_signal, weights, flat, n_boot, seed)
    return _spread(aucs[0], effs[0], targets, "bootstrap_errors")


def paired_bootstrap_errors(scores_a, scores_b, is_signal, weights=None, mistags=(0.1, 0.01, 0.001), *,
                            n_boot: int = BOOTSTRAP_REPLICAS, seed: int = 0):
    """Statistical errors of the differences B − A of the AUC and of the signal efficiencies at ``mistags``
    between two discriminants of the same jets, by a paired bootstrap.

    ``scores_a`` and ``scores_b`` are two taggers' scores of the same jets in the same order (one ``is_signal``
    and ``weights`` for both). Each replica draws one Poisson(1) count per jet, as :func:`bootstrap_errors`
    does, and applies it to both taggers, so what the two share (the same b jets being easy or hard, the same
    few light jets behind a 1 % mistag) cancels in the difference: its error is usually well below the two
    single errors added in quadrature. Returns ``(auc_diff_err, eff_diff_err)`` like :func:`bootstrap_errors`.
    Raises :class:`ArgumentError` as :func:`bootstrap_errors` and when the two score arrays differ in length.
    """
    scores_a, is_signal, weights = _validated(scores_a, is_signal, weights)
    scores_b, _, _ = _validated(scores_b, is_signal, weights)
    targets, flat = _bootstrap_targets(mistags, n_boot, "paired_bootstrap_errors")
    aucs, effs = _replica_values([scores_a, scores_b], is_signal, weights, flat, n_boot, seed)
    return _spread(aucs[1] - aucs[0], effs[1] - effs[0], targets, "paired_bootstrap_errors")


def _bootstrap_targets(mistags, n_boot, what):
    targets = np.asarray(mistags, dtype=np.float64)
    _check_mistag(targets)
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ArgumentError(f"{what}: n_boot must be an integer >= 2, got {n_boot!r}")
    return targets, np.ascontiguousarray(targets.ravel())


def _replica_values(score_sets, is_signal, weights, flat, n_boot, seed):
    """AUC (k, n_boot) and efficiencies at ``flat`` (k, n_boot, n_targets) of each of the k score arrays in
    ``n_boot`` Poisson replicas drawn from ``seed``, the same replica for all k; NaN for a replica without
    signal or background weight."""
    orders = [_descending(scores) for scores in score_sets]
    rng = np.random.default_rng(seed)
    aucs = np.full((len(score_sets), n_boot), np.nan)
    effs = np.full((len(score_sets), n_boot, flat.shape[0]), np.nan)
    for b in range(n_boot):
        replica = weights * rng.poisson(1.0, is_signal.shape[0])
        for k, (scores, order) in enumerate(zip(score_sets, orders)):
            tps, fps, _ = _counts_in_order(scores, is_signal, replica, order)
            if tps[-1] > 0 and fps[-1] > 0:
                sig_eff, bkg_eff = tps / tps[-1], fps / fps[-1]
                aucs[k, b] = _trapezoid(sig_eff, bkg_eff)
                effs[k, b] = _interp_at(sig_eff, bkg_eff, flat)
    return aucs, effs


def _spread(aucs, effs, targets, what):
    """Standard deviations over the valid replicas, shaped like ``targets`` for the efficiencies."""
    valid = ~np.isnan(aucs)
    if np.count_nonzero(valid) < 2:
        raise ArgumentError(f"{what}: fewer than two replicas have both signal and background")
    auc_err = float(np.std(aucs[valid], ddof=1))
    eff_err = np.std(effs[valid], axis=0, ddof=1)
    return auc_err, (float(eff_err[0]) if targets.ndim == 0 else eff_err.reshape(targets.shape))


# ---------------------------------------------------------------------------------------------------------
# private: validation and kernels


def _validated(scores, is_signal, weights):
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    is_signal = np.ascontiguousarray(is_signal).astype(np.bool_, copy=False)
    if scores.ndim != 1 or is_signal.shape != scores.shape:
        raise ArgumentError(
            f"roc_curve: scores and is_signal must be 1-d of equal length, got shapes {scores.shape} and "
            f"{is_signal.shape}"
        )
    if weights is None:
        weights = np.ones(len(scores), dtype=np.float64)
    else:
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        if weights.shape != scores.shape:
            raise ArgumentError(f"roc_curve: weights have shape {weights.shape}, scores {scores.shape}")
        if not np.all(np.isfinite(weights)):
            raise ArgumentError("roc_curve: weights contain NaN or infinity")
    if not np.all(np.isfinite(scores)):
        raise ArgumentError("roc_curve: scores contain NaN or infinity")
    return scores, is_signal, weights


def _check_mistag(targets):
    if np.any(~(targets >= 0) | ~(targets <= 1)):
        raise ArgumentError(f"mistag must lie in [0, 1], got {targets}")


@numba.njit(cache=True)
def _roc_counts(scores, is_signal, weights):
    """Cumulative signal and background weight above each distinct score (decreasing), with a leading 0.

    Returns (tps, fps, thresholds) of length n_distinct + 1; thresholds[0] = +inf.
    """
    return _counts_in_order(scores, is_signal, weights, _descending(scores))


@numba.njit(cache=True)
def _descending(scores):
    """Ascending sort order of the scores (walked from the end: decreasing)."""
    # Stable sort so the result does not depend on platform quicksort details (ties are merged anyway).
    return np.argsort(scores, kind="mergesort")


@numba.njit(cache=True)
def _counts_in_order(scores, is_signal, weights, order):
    """:func:`_roc_counts` given the sort order of the scores."""
    n = scores.shape[0]
    tps = np.empty(n + 1, dtype=np.float64)
    fps = np.empty(n + 1, dtype=np.float64)
    thresholds = np.empty(n + 1, dtype=np.float64)
    tps[0] = 0.0
    fps[0] = 0.0
    thresholds[0] = np.inf
    sig = 0.0
    bkg = 0.0
    k = 0
    # Walk from the highest score down; emit a point only after the last jet of each group of equal scores.
    for i in range(n - 1, -1, -1):
        j = order[i]
        if is_signal[j]:
            sig += weights[j]
        else:
            bkg += weights[j]
        if i == 0 or scores[order[i - 1]] != scores[j]:
            k += 1
            tps[k] = sig
            fps[k] = bkg
            thresholds[k] = scores[j]
    return tps[: k + 1], fps[: k + 1], thresholds[: k + 1]


@numba.njit(cache=True)
def _trapezoid(y, x):
    area = 0.0
    for i in range(1, x.shape[0]):
        area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) * 0.5
    return area


@numba.njit(cache=True)
def _interp_at(sig_eff, bkg_eff, targets):
    out = np.empty(targets.shape[0], dtype=np.float64)
    n = bkg_eff.shape[0]
    for t in range(targets.shape[0]):
        m = targets[t]
        hi = np.searchsorted(bkg_eff, m, side="right")  # first point with bkg_eff > m
        if hi == 0:
            out[t] = 0.0
        elif hi == n:
            out[t] = sig_eff[n - 1]
        else:
            lo = hi - 1
            x0 = bkg_eff[lo]
            x1 = bkg_eff[hi]
            out[t] = sig_eff[lo] + (sig_eff[hi] - sig_eff[lo]) * (m - x0) / (x1 - x0)
    return out
