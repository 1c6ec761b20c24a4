"""Evaluation of prediction files: CMS discriminants, ROC curves, working points, efficiencies, metrics.json.

Input: prediction ROOT files (docs/formats.md §4, tree ``tree``). Truth flavour comes from the raw flavour
flags, not from the training classes (:mod:`deepjet_nb.flavours`, docs/reference.md §2), so taggers trained on
different class sets (DeepCSV: B, BB, C, UDSG; DeepJet: B, BB, LeptB, C, UDS, G) and the track-counting
baseline are compared on the same jets with the same definition of a b, c or light jet. The comparisons
(:data:`deepjet_nb.flavours.TASKS`): b vs udsg and b vs c on the b discriminant, c vs udsg on CvsL, c vs b on
CvsB. Working points (CMS): loose / medium / tight at 10 % / 1 % / 0.1 % light mistag.

Typical use::

    import deepjet_nb.evaluate as ev
    taggers = ev.load_taggers(["runs/demo/predictions/deepjet.root", "runs/demo/predictions/deepcsv.root"])
    curve = ev.roc(taggers[0], "b_vs_udsg")
    curve.auc, curve.eff_at(0.01)
    metrics = ev.evaluate(["deepjet.root", "deepcsv.root"], "runs/demo")   # metrics.json + plots

Command line: ``deepjet-nb evaluate --out DIR PRED.root...``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._args import paths as as_paths
from ._atomic import check_output, remove_stale
from ._jsonio import write_json
from ._lock import output_lock
from .errors import ArgumentError, InputFileError
from .flavours import (CLASS_FLAVOURS, FLAVOUR_CODES, FLAVOUR_GROUPS, TASKS, discriminants,
                       flavours_from_truth, task as _task, truth_flavour)
from .kernels import roc as _roc
from .predict import PROB_PREFIX, TREE, TRUTH_PREFIX
from .rootio import open_tree

__all__ = [
    "MISTAGS", "WORKING_POINTS", "BASELINE_NAME", "PT_EDGES", "ETA_EDGES",
    "Tagger", "RocCurve", "WorkingPoint", "Efficiency",
    "read_predictions", "load_taggers", "track_counting",
    "roc", "roc_errors", "difference", "same_jets", "seed_spread", "working_points", "efficiency_vs",
    "compute_metrics", "evaluate", "summary_table", "format_value", "named_paths", "noting_skipped_tasks",
    "plot_stems", "register_cli",
]

TRACK_COUNTING = "trackCounting_sip3dSig2"
BASELINE_NAME = "track_counting"

MISTAGS = (0.1, 0.01, 0.001)
WORKING_POINTS = {"loose": 0.1, "medium": 0.01, "tight": 0.001}

# Binning of efficiency curves: jet pT from the sample threshold (20 GeV) up, |eta| < 2.5 (tracker).
PT_EDGES = (20.0, 30.0, 40.0, 50.0, 70.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0)
ETA_EDGES = tuple(np.round(np.arange(-2.5, 2.51, 0.5), 2))


# ---------------------------------------------------------------------------------------------------------
# data holders


@dataclass(frozen=True)
class Tagger:
    """Per-jet discriminants of one tagger with the jets' truth flavour and kinematics.

    ``discriminants`` maps ``"b"``, ``"CvsL"``, ``"CvsB"`` to float64 arrays (n,); ``flavour`` is int8 (n,)
    with the codes of ``FLAVOUR_CODES`` (-1 = undefined); ``weights`` is None (unit weights) or float64 (n,).
    """

    name: str
    discriminants: Mapping[str, np.ndarray]
    flavour: np.ndarray
    jet_pt: np.ndarray
    jet_eta: np.ndarray
    weights: np.ndarray | None = None
    source: str | None = None

    def __len__(self) -> int:
        return len(self.flavour)

    def counts(self) -> dict[str, int]:
        """Number of jets of each flavour."""
        return {fl: int(np.count_nonzero(self.flavour == code)) for fl, code in FLAVOUR_CODES.items()}


@dataclass(frozen=True)
class RocCurve:
    """A ROC curve of one tagger for one task (see :data:`TASKS`), from :func:`deepjet_nb.kernels.roc.roc_curve`."""

    tagger: str
    task: str
    sig_eff: np.ndarray
    bkg_eff: np.ndarray
    thresholds: np.ndarray
    n_signal: int
    n_background: int

    @property
    def signal(self) -> str:
        return TASKS[self.task].signal

    @property
    def background(self) -> str:
        return TASKS[self.task].background

    @property
    def auc(self) -> float:
        return _roc.auc(self.sig_eff, self.bkg_eff)

    def eff_at(self, mistag):
        """Signal efficiency at background efficiency ``mistag`` (interpolated; scalar or array)."""
        return _roc.eff_at_mistag(self.sig_eff, self.bkg_eff, mistag)

    def mistag_at(self, eff):
        """Background efficiency at signal efficiency ``eff`` (the curve read the other way round)."""
        return _roc.eff_at_mistag(self.bkg_eff, self.sig_eff, eff)

    def working_point(self, mistag: float, name: str | None = None) -> WorkingPoint:
        """The loosest cut with background efficiency <= ``mistag`` and the efficiencies it really gives."""
        _roc.threshold_at_mistag(self.bkg_eff, self.thresholds, mistag)  # validates mistag
        idx = max(int(np.searchsorted(self.bkg_eff, mistag, side="right")) - 1, 0)
        return WorkingPoint(
            name=name or f"{mistag:g}", target_mistag=float(mistag), cut=float(self.thresholds[idx]),
            efficiency=float(self.sig_eff[idx]), mistag=float(self.bkg_eff[idx]),
        )


@dataclass(frozen=True)
class WorkingPoint:
    """A cut ``discriminant >= cut`` chosen for ``target_mistag``; ``efficiency``/``mistag`` are what it gives."""

    name: str
    target_mistag: float
    cut: float
    efficiency: float
    mistag: float

    def as_dict(self) -> dict:
        """JSON-ready; a cut that no finite value gives (all scores tied above the target mistag: nothing
        passes) is ``null`` with a ``"note"`` saying so, as strict JSON has no Infinity."""
        out = {"target_mistag": self.target_mistag, "cut": self.cut, "efficiency": self.efficiency,
               "mistag": self.mistag}
        if not np.isfinite(self.cut):
            out["cut"] = None
            out["note"] = "no finite cut reaches this mistag (tied scores): nothing passes"
        return out


@dataclass(frozen=True)
class Efficiency:
    """Efficiency of a cut in bins of a variable, with Clopper-Pearson (binomial, 68 %) uncertainties.

    ``values``, ``err_low``, ``err_high``, ``n_total``, ``n_pass`` have one entry per bin; bins without
    jets hold NaN. With weights, ``n_total``/``n_pass`` are sums of weights and the uncertainty uses the
    effective number of jets (Σw)²/Σw².
    """

    variable: str
    flavour: str
    edges: np.ndarray
    values: np.ndarray
    err_low: np.ndarray
    err_high: np.ndarray
    n_total: np.ndarray
    n_pass: np.ndarray
    cut: float = field(default=np.nan)

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])


# ---------------------------------------------------------------------------------------------------------
# reading prediction files


def read_predictions(path: str | os.PathLike, *, name: str | None = None,
                     class_flavours: Mapping[str, str] | None = None,
                     weight_branch: str | None = None) -> Tagger:
    """Read one prediction file (docs/formats.md §4) into a :class:`Tagger`.

    ``name`` defaults to the file stem (``predictions/deepjet.root`` → ``"deepjet"``). ``weight_branch``
    names an optional per-jet weight branch. Raises :class:`InputFileError` naming the file, tree or branch
    when the file cannot be read, lacks tree ``tree``, a ``prob_is*`` branch, a flavour flag or a spectator,
    or holds non-finite probabilities.
    """
    arrays, source = _read_tree(path, weight_branch)
    return _tagger_from_arrays(name or Path(path).stem, arrays, source, class_flavours, weight_branch)


def track_counting(path: str | os.PathLike, *, name: str = BASELINE_NAME, weight_branch: str | None = None) -> Tagger:
    """The track-counting baseline (CMS TCHE-like) on the jets of a prediction file.

    Its score is the second-highest 3D impact-parameter significance among the jet's selected tracks
    (spectator ``trackCounting_sip3dSig2``). It is a b tagger: the same score serves as ``b`` and ``CvsL``
    (c jets are displaced too, less than b jets), and its negative as ``CvsB``. Input: a prediction file
    path. Raises :class:`InputFileError` as :func:`read_predictions`.
    """
    arrays, source = _read_tree(path, weight_branch)
    return _baseline_from_arrays(name, arrays, source, weight_branch)


def load_taggers(paths: Sequence[str | os.PathLike], *, baseline: bool = True,
                 names: Sequence[str] | None = None, class_flavours: Mapping[str, str] | None = None,
                 weight_branch: str | None = None) -> list[Tagger]:
    """Read several prediction files, each once; append the track-counting baseline of the first file.

    ``names`` (same length as ``paths``) overrides the file stems. Returns the taggers in input order, the
    baseline (named :data:`BASELINE_NAME`) last. Raises :class:`ArgumentError` for no paths or two taggers
    with the same name, :class:`InputFileError` as :func:`read_predictions`.
    """
    paths = as_paths(paths, "load_taggers", "prediction files")
    if isinstance(names, str):
        names = [names]
    if names is None:
        names = [p.stem for p in paths]
    if len(names) != len(paths):
        raise ArgumentError(f"{len(names)} names for {len(paths)} prediction files")
    if len(set(names)) != len(names) or (baseline and BASELINE_NAME in names):
        raise ArgumentError(f"tagger names must be unique (and not {BASELINE_NAME!r}): {list(names)}")
    taggers = []
    for i, (path, name) in enumerate(zip(paths, names)):
        arrays, source = _read_tree(path, weight_branch, with_baseline=baseline and i == 0)
        taggers.append(_tagger_from_arrays(name, arrays, source, class_flavours, weight_branch))
        if baseline and i == 0:
            base = _baseline_from_arrays(BASELINE_NAME, arrays, source, weight_branch)
    if baseline:
        taggers.append(base)
    return taggers


def _read_tree(path, weight_branch, with_baseline=True):
    path = Path(path)
    source = f"{path}:{TREE}"
    with open_tree(path, TREE) as tree:
        if tree.num_entries == 0:
            raise InputFileError(f"{source}: no jets (an empty prediction file: predict found no selected jets "
                                 f"in its input); nothing to evaluate")
        keys = set(tree.keys())
        probs = [k for k in tree.keys() if k.startswith(PROB_PREFIX)]
        if not probs:
            raise InputFileError(f"{source}: no {PROB_PREFIX}<Class> branches")
        wanted = probs + ["jet_pt", "jet_eta"] + [f for names in FLAVOUR_GROUPS.values() for f in names]
        wanted += [f"{TRUTH_PREFIX}{p[len(PROB_PREFIX):]}" for p in probs
                   if f"{TRUTH_PREFIX}{p[len(PROB_PREFIX):]}" in keys]
        if with_baseline:
            wanted.append(TRACK_COUNTING)
        if weight_branch:
            wanted.append(weight_branch)
        wanted = list(dict.fromkeys(wanted))
        missing = [b for b in wanted if b not in keys]
        if missing:
            raise InputFileError(f"{source}: missing branch {missing[0]!r}")
        try:
            arrays = tree.arrays(wanted, library="np")
        except Exception as err:
            raise InputFileError(f"{source}: cannot read branches ({err})") from err
    return arrays, source


def _tagger_from_arrays(name, arrays, source, class_flavours, weight_branch):
    probs = {}
    for key, values in arrays.items():
        if key.startswith(PROB_PREFIX):
            if not np.all(np.isfinite(values)):
                raise InputFileError(f"{source}: branch {key!r} holds NaN or infinite probabilities")
            probs[key[len(PROB_PREFIX):]] = values
    mapping = _class_flavours(probs, arrays, source, class_flavours)
    return Tagger(
        name=name, discriminants=discriminants(probs, mapping), flavour=truth_flavour(arrays, source=source),
        jet_pt=np.asarray(arrays["jet_pt"], dtype=np.float64),
        jet_eta=np.asarray(arrays["jet_eta"], dtype=np.float64),
        weights=_weights(arrays, weight_branch, source), source=source,
    )


def _baseline_from_arrays(name, arrays, source, weight_branch):
    score = np.asarray(arrays[TRACK_COUNTING], dtype=np.float64)
    if not np.all(np.isfinite(score)):
        raise InputFileError(f"{source}: branch {TRACK_COUNTING!r} holds NaN or infinite values")
    return Tagger(
        name=name, discriminants={"b": score, "CvsL": score, "CvsB": -score},
        flavour=truth_flavour(arrays, source=source),
        jet_pt=np.asarray(arrays["jet_pt"], dtype=np.float64),
        jet_eta=np.asarray(arrays["jet_eta"], dtype=np.float64),
        weights=_weights(arrays, weight_branch, source), source=source,
    )


def _weights(arrays, weight_branch, source):
    if not weight_branch:
        return None
    w = np.asarray(arrays[weight_branch], dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputFileError(f"{source}: weight branch {weight_branch!r} must be finite and non-negative")
    return w


def _class_flavours(probs, arrays, source, explicit):
    """Flavour of each class: explicit > the shipped class names > the raw flags of jets labelled
    truth_is<Class>. Raises :class:`InputFileError` for a class that none of these tells."""
    mapping = {**CLASS_FLAVOURS, **(explicit or {})}
    unknown = [cls for cls in probs if cls not in mapping]
    if unknown:
        truth = {cls: arrays[f"{TRUTH_PREFIX}{cls}"] for cls in unknown if f"{TRUTH_PREFIX}{cls}" in arrays}
        mapping.update(flavours_from_truth(truth, truth_flavour(arrays, source=source)))
    for cls in probs:
        if cls not in mapping:
            raise InputFileError(f"{source}: cannot tell the flavour of class {cls!r} (branch {PROB_PREFIX}{cls}); "
                                 f"pass class_flavours")
    return mapping


# ---------------------------------------------------------------------------------------------------------
# curves, working points, efficiencies


def roc(tagger: Tagger, task: str = "b_vs_udsg", *, pt_range: tuple[float, float] | None = None,
        eta_range: tuple[float, float] | None = None) -> RocCurve:
    """ROC curve of ``tagger`` for ``task`` (a key of :data:`TASKS`), optionally in a jet pT / η window.

    Windows are half-open ``[low, high)``. Raises :class:`ArgumentError` for an unknown task or when the
    selection leaves no signal or no background jet.
    """
    scores, is_signal, weights = _task_jets(tagger, task, pt_range, eta_range)
    sig_eff, bkg_eff, thresholds = _roc.roc_curve(scores, is_signal, weights)
    n_sig = int(np.count_nonzero(is_signal))
    return RocCurve(tagger.name, task, sig_eff, bkg_eff, thresholds, n_sig, len(is_signal) - n_sig)


def roc_errors(tagger: Tagger, task: str = "b_vs_udsg", mistags: Sequence[float] = MISTAGS, *,
               n_boot: int = _roc.BOOTSTRAP_REPLICAS, seed: int = 0) -> tuple[float, dict[str, float]]:
    """Statistical errors of the AUC and of the efficiencies at ``mistags`` of :func:`roc` (whole sample), by a
    seeded bootstrap over the jets (:func:`deepjet_nb.kernels.roc.bootstrap_errors`).

    Returns ``(auc_err, {"0.1": err, ...})``, keyed like ``metrics.json``.
    """
    scores, is_signal, weights = _task_jets(tagger, task, None, None)
    auc_err, eff_err = _roc.bootstrap_errors(scores, is_signal, weights, np.asarray(mistags, dtype=float),
                                             n_boot=n_boot, seed=seed)
    return auc_err, {f"{m:g}": float(e) for m, e in zip(mistags, eff_err)}


def _task_jets(tagger, task, pt_range, eta_range):
    """The task's discriminant, signal mask and weights of the tagger's signal and background jets in the
    window; :class:`ArgumentError` when either is missing."""
    spec = _task(task)
    mask = _select(tagger, spec.signal, spec.background, pt_range, eta_range)
    is_signal = tagger.flavour[mask] == FLAVOUR_CODES[spec.signal]
    weights = None if tagger.weights is None else tagger.weights[mask]
    n_sig = int(np.count_nonzero(is_signal))
    n_bkg = int(len(is_signal) - n_sig)
    if n_sig == 0 or n_bkg == 0:
        raise ArgumentError(
            f"{tagger.name}, {task}: {n_sig} {spec.signal} and {n_bkg} {spec.background} jets "
            f"in pT {pt_range}, eta {eta_range}: need both"
        )
    return tagger.discriminants[spec.discriminant][mask], is_signal, weights


def difference(tagger: Tagger, other: Tagger, task: str = "b_vs_udsg", mistags: Sequence[float] = MISTAGS, *,
               n_boot: int = _roc.BOOTSTRAP_REPLICAS, seed: int = 0) -> dict:
    """``tagger`` − ``other`` on the same jets: the differences of the AUC and of the efficiencies at
    ``mistags``, each with its statistical error from a paired bootstrap (one Poisson count per jet for both
    taggers, :func:`deepjet_nb.kernels.roc.paired_bootstrap_errors`).

    Returns ``{"auc": d, "auc_err": e, "eff_at_mistag": {"0.1": d, ...}, "eff_at_mistag_err": {...},
    "n_signal": n, "n_background": n}``, keyed like ``metrics.json``. Raises :class:`ArgumentError` when the two
    taggers do not hold the same jets in the same order (:func:`same_jets`), or as :func:`roc`.
    """
    same_jets(tagger, other)
    scores_a, is_signal, weights = _task_jets(other, task, None, None)
    scores_b, _, _ = _task_jets(tagger, task, None, None)
    auc_err, eff_err = _roc.paired_bootstrap_errors(scores_a, scores_b, is_signal, weights,
                                                    np.asarray(mistags, dtype=float), n_boot=n_boot, seed=seed)
    mine, theirs = roc(tagger, task), roc(other, task)
    return {
        "auc": mine.auc - theirs.auc,
        "auc_err": auc_err,
        "eff_at_mistag": {f"{m:g}": float(mine.eff_at(m) - theirs.eff_at(m)) for m in mistags},
        "eff_at_mistag_err": {f"{m:g}": float(e) for m, e in zip(mistags, eff_err)},
        "n_signal": mine.n_signal,
        "n_background": mine.n_background,
    }


def same_jets(a: Tagger, b: Tagger) -> None:
    """Check that taggers ``a`` and ``b`` describe the same jets in the same order: equal numbers of jets and
    identical truth flavours, jet pT, η and weights. Raises :class:`ArgumentError` naming both sources and the
    first jet that differs (a paired comparison of predictions on different test files, or on files converted
    with selections that keep different jets, would be meaningless)."""
    where = f"{a.name} ({a.source}) and {b.name} ({b.source})"
    if len(a) != len(b):
        raise ArgumentError(f"{where} hold {len(a)} and {len(b)} jets: a paired comparison needs the predictions "
                            f"of both taggers on the same jets")
    for what, x, y in (("flavour", a.flavour, b.flavour), ("jet_pt", a.jet_pt, b.jet_pt),
                       ("jet_eta", a.jet_eta, b.jet_eta)):
        if not np.array_equal(x, y):
            first = int(np.flatnonzero(x != y)[0])
            raise ArgumentError(f"{where}: jet {first} differs in {what} ({x[first]} vs {y[first]}): not the same "
                                f"jets in the same order")
    if (a.weights is None) != (b.weights is None) or (a.weights is not None and
                                                      not np.array_equal(a.weights, b.weights)):
        raise ArgumentError(f"{where}: the jets carry different weights")


def seed_spread(taggers: Sequence[Tagger], *, tasks: Sequence[str] = tuple(TASKS),
                mistags: Sequence[float] = MISTAGS) -> dict:
    """The spread between trainings of one tagger with different seeds, predicted on the same test jets.

    ``taggers``: one :class:`Tagger` per training seed (at least two). Returns ``{task: {"auc_seed_std": s,
    "eff_at_mistag_seed_std": {"0.1": s, ...}, "n_seeds": n}}``: standard deviations (ddof = 1) over the seeds,
    for the tasks every seed has jets for. Raises :class:`ArgumentError` for fewer than two taggers or taggers
    of different jets (:func:`same_jets`).
    """
    if len(taggers) < 2:
        raise ArgumentError(f"seed_spread: needs the predictions of at least two seeds, got {len(taggers)}")
    for other in taggers[1:]:
        same_jets(taggers[0], other)
    counts = taggers[0].counts()
    out = {}
    for task in tasks:
        spec = _task(task)
        if counts[spec.signal] == 0 or counts[spec.background] == 0:
            continue
        curves = [roc(t, task) for t in taggers]
        effs = np.array([[c.eff_at(m) for m in mistags] for c in curves])
        out[task] = {
            "auc_seed_std": float(np.std([c.auc for c in curves], ddof=1)),
            "eff_at_mistag_seed_std": {f"{m:g}": float(s) for m, s in zip(mistags, np.std(effs, axis=0, ddof=1))},
            "n_seeds": len(taggers),
        }
    return out


def working_points(tagger: Tagger, mistags: Mapping[str, float] | None = None,
                   task: str = "b_vs_udsg") -> dict[str, WorkingPoint]:
    """CMS working points: for each name → target mistag (default :data:`WORKING_POINTS`), the loosest cut
    on the task's discriminant whose background efficiency stays at or below the target."""
    curve = roc(tagger, task)
    return {name: curve.working_point(m, name) for name, m in (mistags or WORKING_POINTS).items()}


def efficiency_vs(tagger: Tagger, variable: str = "jet_pt", edges: Sequence[float] | None = None, *,
                  cut: float, discriminant: str = "b") -> dict[str, Efficiency]:
    """Efficiency of ``discriminant >= cut`` per flavour in bins of ``variable`` (``jet_pt`` or ``jet_eta``).

    Returns ``{"b": Efficiency, "c": ..., "udsg": ...}``. Jets outside ``edges`` are not counted. Default
    edges: :data:`PT_EDGES` / :data:`ETA_EDGES`. Raises :class:`ArgumentError` for another variable.
    """
    import hist
    import hist.intervals

    if variable not in ("jet_pt", "jet_eta"):
        raise ArgumentError(f"efficiency_vs: variable must be 'jet_pt' or 'jet_eta', got {variable!r}")
    if edges is None:
        edges = PT_EDGES if variable == "jet_pt" else ETA_EDGES
    edges = np.asarray(edges, dtype=np.float64)
    values = tagger.jet_pt if variable == "jet_pt" else tagger.jet_eta
    passed = tagger.discriminants[discriminant] >= cut
    out = {}
    for flavour, code in FLAVOUR_CODES.items():
        sel = tagger.flavour == code
        w = np.ones(np.count_nonzero(sel)) if tagger.weights is None else tagger.weights[sel]
        axis = hist.axis.Variable(edges, name=variable, underflow=False, overflow=False)
        total = hist.Hist(axis, storage=hist.storage.Weight())
        npass = hist.Hist(axis, storage=hist.storage.Weight())
        total.fill(values[sel], weight=w)
        npass.fill(values[sel][passed[sel]], weight=w[passed[sel]])
        sum_t, var_t = total.values(), total.variances()
        sum_p = npass.values()
        with np.errstate(invalid="ignore", divide="ignore"):
            eff = np.where(sum_t > 0, sum_p / sum_t, np.nan)
            # Effective counts make the Clopper-Pearson interval exact for unit weights and sensible otherwise.
            n_eff = np.where(var_t > 0, sum_t**2 / var_t, 0.0)
        k_eff = np.nan_to_num(eff) * n_eff
        low = np.full(len(eff), np.nan)
        high = np.full(len(eff), np.nan)
        ok = n_eff > 0
        if np.any(ok):
            err = hist.intervals.ratio_uncertainty(k_eff[ok], n_eff[ok], uncertainty_type="efficiency")
            low[ok], high[ok] = err[0], err[1]
        out[flavour] = Efficiency(variable, flavour, edges, eff, low, high, sum_t, sum_p, float(cut))
    return out


# ---------------------------------------------------------------------------------------------------------
# metrics and the full evaluation


def compute_metrics(taggers: Sequence[Tagger], *, tasks: Sequence[str] = tuple(TASKS),
                    mistags: Sequence[float] = MISTAGS, differences: Sequence[Sequence[str]] = (),
                    seeds: Mapping[str, Sequence[Tagger]] | None = None) -> dict:
    """The metrics.json dictionary (docs/formats.md §4): ``{tagger: {task: {"auc": x, "auc_err": e,
    "eff_at_mistag": {"0.1": x, ...}, "eff_at_mistag_err": {"0.1": e, ...}, "n_signal": n,
    "n_background": n}}}``; the errors are statistical, from a seeded bootstrap over the jets
    (:func:`roc_errors`).

    ``differences``: pairs ``(a, b)`` of tagger names; each adds ``metrics[a][task]["minus"][b]``, the
    difference a − b with its paired-bootstrap error (:func:`difference`). ``seeds``: tagger name → the same
    tagger trained with other seeds (predicted on the same jets); adds ``auc_seed_std``,
    ``eff_at_mistag_seed_std`` and ``n_seeds`` (the named tagger counts as one of the seeds) to its tasks
    (:func:`seed_spread`). A task with no signal or no background jets is left out for that tagger. Raises
    :class:`ArgumentError` for a name that is not among ``taggers`` or taggers of different jets.
    """
    metrics = {}
    for tagger in taggers:
        entry = {}
        for task in tasks:
            spec = _task(task)
            counts = tagger.counts()
            if counts[spec.signal] == 0 or counts[spec.background] == 0:
                continue
            curve = roc(tagger, task)
            auc_err, eff_err = roc_errors(tagger, task, mistags)
            entry[task] = {
                "auc": curve.auc,
                "auc_err": auc_err,
                "eff_at_mistag": {f"{m:g}": float(curve.eff_at(m)) for m in mistags},
                "eff_at_mistag_err": eff_err,
                "n_signal": curve.n_signal,
                "n_background": curve.n_background,
            }
        metrics[tagger.name] = entry
    by_name = {t.name: t for t in taggers}
    for name, others in (seeds or {}).items():
        for task, spread in seed_spread([_named(by_name, name, "seeds"), *others], tasks=tasks,
                                        mistags=mistags).items():
            metrics[name][task].update(spread)
    for pair in differences:
        a, b = (_named(by_name, name, "differences") for name in pair)
        for task in metrics[a.name]:
            if task in metrics[b.name]:
                minus = metrics[a.name][task].setdefault("minus", {})
                minus[b.name] = difference(a, b, task, mistags)
    return metrics


def _named(by_name, name, what):
    if name not in by_name:
        raise ArgumentError(f"{what}: no tagger {name!r} among {list(by_name)}")
    return by_name[name]


def evaluate(prediction_files: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
             names: Sequence[str] | None = None, baseline: bool = True, reference: str | None = None,
             working_point: str = "medium", plots: bool = True, formats: Sequence[str] = ("png", "pdf"),
             weight_branch: str | None = None, differences: Sequence[Sequence[str]] = (),
             seed_predictions: Mapping[str, Sequence[str | os.PathLike]] | None = None) -> dict:
    """Evaluate prediction files and write the results into ``out_dir``.

    Writes (each atomically): ``metrics.json`` (:func:`compute_metrics`), ``working_points.json``
    (``{tagger: {"loose"|"medium"|"tight": {"target_mistag", "cut", "efficiency", "mistag"}}}``) and, with
    ``plots``, ``plots/roc_b.*`` (b vs udsg solid, b vs c dashed), ``plots/roc_c.*`` (c vs udsg, c vs b),
    ``plots/discriminant_<tagger>.*`` and ``plots/efficiency_<pt|eta>_<tagger>.*`` at ``working_point``.
    ``reference`` names the tagger of the ratio panels (default: the first file). ``differences`` (pairs of
    tagger names) and ``seed_predictions`` (tagger name → prediction files of the same tagger trained with other
    seeds, on the same jets) add the paired differences and the seed spread to the metrics
    (:func:`compute_metrics`). Returns the metrics. Raises :class:`InputFileError` / :class:`ArgumentError` as
    :func:`load_taggers` and :func:`compute_metrics`.
    """
    if working_point not in WORKING_POINTS:
        raise ArgumentError(f"working point must be one of {list(WORKING_POINTS)}, got {working_point!r}")
    out_dir = check_output(out_dir, directory=True, what="evaluation directory")
    taggers = load_taggers(prediction_files, baseline=baseline, names=names, weight_branch=weight_branch)
    if reference is not None and reference not in [t.name for t in taggers]:
        raise ArgumentError(f"reference tagger {reference!r} is not among {[t.name for t in taggers]}")
    for note in skipped_tasks(taggers):
        warnings.warn(note, SkippedTaskWarning, stacklevel=2)
    with output_lock(out_dir, what="deepjet-nb evaluate"):
        remove_stale(out_dir)
        remove_stale(out_dir / "plots")
        seeds = {name: [read_predictions(p, name=f"{name} (seed file {i + 1})", weight_branch=weight_branch)
                        for i, p in enumerate(as_paths(files, "evaluate", "seed prediction files"))]
                 for name, files in (seed_predictions or {}).items()}
        metrics = compute_metrics(taggers, differences=differences, seeds=seeds)
        wps = {t.name: {k: wp.as_dict() for k, wp in working_points(t).items()}
               for t in taggers if _has(t, "b") and _has(t, "udsg")}
        if plots:
            _write_plots(taggers, out_dir / "plots", reference or taggers[0].name, working_point, formats)
        # metrics.json last: its presence means the whole evaluation finished
        write_json(out_dir / "working_points.json", wps, indent=2)
        write_json(out_dir / "metrics.json", metrics, indent=2)
    return metrics


class SkippedTaskWarning(UserWarning):
    """A comparison was left out of the evaluation: the jets lack its signal or its background flavour."""


def skipped_tasks(taggers: Sequence[Tagger], tasks: Sequence[str] = tuple(TASKS)) -> list[str]:
    """One line per (tagger, task) that :func:`compute_metrics` leaves out, saying which flavour is missing."""
    notes = []
    for tagger in taggers:
        counts = tagger.counts()
        for task in tasks:
            spec = _task(task)
            missing = [f for f in (spec.signal, spec.background) if counts[f] == 0]
            if missing:
                notes.append(f"{tagger.name}: skipped {task} (no {' and no '.join(missing)} jets)")
    return notes


def plot_stems(names: Sequence[str]) -> dict[str, str]:
    """A file-name-safe stem for each tagger name, unique among ``names``: letters, digits, ``_`` and ``-``
    kept, anything else (``/``, ``..``, ``.``, spaces) replaced by ``_``, at most 64 characters; a name
    that had to change gets a short hash of itself, so "deepjet.v1" and "deepjet.v2" stay apart."""
    stems = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "tagger"
        if stem != name:
            stem = f"{stem}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        stems[name] = stem
    return stems


def _write_plots(taggers, plot_dir, reference, working_point, formats):
    from . import plots

    # c taggers reach lower efficiencies at CMS-like mistags, so the c plot starts further left.
    for signal, tasks, x_low in (("b", ("b_vs_udsg", "b_vs_c"), 0.3), ("c", ("c_vs_udsg", "c_vs_b"), 0.1)):
        plot = plots.RocPlot(signal=signal, reference=reference, eff_range=(x_low, 1.0))
        for tagger in taggers:
            for task in tasks:
                if _has(tagger, TASKS[task].signal) and _has(tagger, TASKS[task].background):
                    plot.add(roc(tagger, task))
        if plot.curves:
            plot.savefig(plot_dir / f"roc_{signal}", formats=formats)
    stems = plot_stems([t.name for t in taggers])
    for tagger in taggers:
        plots.HistogramPlot.from_tagger(tagger, "b").savefig(plot_dir / f"discriminant_{stems[tagger.name]}",
                                                                formats=formats)
        if not (_has(tagger, "b") and _has(tagger, "udsg")):
            continue
        wp = working_points(tagger, {working_point: WORKING_POINTS[working_point]})[working_point]
        for variable, short in (("jet_pt", "pt"), ("jet_eta", "eta")):
            plot = plots.EfficiencyPlot(variable, title=f"{tagger.name}, {working_point} WP "
                                                         f"({wp.target_mistag:g} light mistag)")
            for eff in efficiency_vs(tagger, variable, cut=wp.cut).values():
                plot.add(eff)
            plot.savefig(plot_dir / f"efficiency_{short}_{stems[tagger.name]}", formats=formats)


def _has(tagger, flavour):
    return bool(np.any(tagger.flavour == FLAVOUR_CODES[flavour]))


def _select(tagger, signal, background, pt_range, eta_range):
    mask = (tagger.flavour == FLAVOUR_CODES[signal]) | (tagger.flavour == FLAVOUR_CODES[background])
    for values, window in ((tagger.jet_pt, pt_range), (tagger.jet_eta, eta_range)):
        if window is not None:
            low, high = window
            mask &= (values >= low) & (values < high)
    return mask


# ---------------------------------------------------------------------------------------------------------
# command line


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb evaluate``."""
    parser = subparsers.add_parser(
        "evaluate", help="ROC curves, working points, efficiencies and plots from prediction files",
        description="Evaluate prediction files (tree 'tree', docs/formats.md §4): metrics.json, "
                    "working_points.json and CMS-style plots in --out. Tagger names are the file stems, "
                    "or NAME=FILE.",
    )
    parser.add_argument("predictions", nargs="+", metavar="PRED.root", help="prediction files (NAME=FILE to name)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--reference", help="tagger of the ratio panels (default: the first file)")
    parser.add_argument("--working-point", choices=list(WORKING_POINTS), default="medium",
                        help="working point of the efficiency plots (default: medium, 1%% light mistag)")
    parser.add_argument("--weight-branch", help="per-jet weight branch in the prediction files")
    parser.add_argument("--no-baseline", action="store_true", help="leave out the track-counting baseline")
    parser.add_argument("--no-plots", action="store_true", help="write only the JSON files")
    parser.add_argument("--difference", action="append", default=[], metavar="A,B",
                        help="add tagger A minus tagger B on the same jets, with a paired-bootstrap error "
                             "(repeatable)")
    parser.add_argument("--seed-predictions", action="append", default=[], metavar="NAME=FILE",
                        help="a prediction file of tagger NAME trained with another seed, for the seed spread "
                             "(repeatable)")
    parser.set_defaults(func=_cli_evaluate)


def named_paths(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Tagger names and paths of command-line arguments ``FILE`` (named by its stem) or ``NAME=FILE``; an
    argument that exists as a file is a path even when it holds ``=``."""
    names, paths = [], []
    for item in items:
        name, sep, path = item.partition("=")
        if sep and name and not Path(item).exists():
            names.append(name)
            paths.append(path)
        else:
            names.append(Path(item).stem)
            paths.append(item)
    return names, paths


def noting_skipped_tasks(command: str, call):
    """``call()``'s result; each :class:`SkippedTaskWarning` it raised becomes a ``<command>: note:`` line on
    stderr (a command's way of saying which comparisons had no jets), other warnings are shown as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedTaskWarning)
        result = call()
    for w in caught:
        if issubclass(w.category, SkippedTaskWarning):
            print(f"{command}: note: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return result


def _cli_evaluate(args) -> int:
    names, paths = named_paths(args.predictions)
    differences = []
    for item in args.difference:
        pair = item.split(",")
        if len(pair) != 2 or not all(pair):
            raise ArgumentError(f"--difference {item!r}: expected two tagger names A,B")
        differences.append(pair)
    seeds = {}
    for item in args.seed_predictions:
        name, sep, path = item.partition("=")
        if not (sep and name and path):
            raise ArgumentError(f"--seed-predictions {item!r}: expected NAME=FILE")
        seeds.setdefault(name, []).append(path)
    metrics = noting_skipped_tasks("deepjet-nb evaluate", lambda: evaluate(
        paths, args.out, names=names, baseline=not args.no_baseline, reference=args.reference,
        working_point=args.working_point, plots=not args.no_plots, weight_branch=args.weight_branch,
        differences=differences, seed_predictions=seeds))
    print(summary_table(metrics))
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def summary_table(metrics: dict) -> str:
    """A fixed-width text table of metrics: AUC and efficiencies (%) at 10 %, 1 %, 0.1 % mistag per task, each
    with its statistical error where ``metrics`` has one, as ``value ± error`` with the error rounded to one
    significant digit and the value to the same decimal; then the paired differences (``a − b``) and the seed
    spreads (standard deviation over training seeds) that ``metrics`` holds, in the same columns."""
    columns = (("AUC", None), ("eff@10%", "0.1"), ("eff@1%", "0.01"), ("eff@0.1%", "0.001"))
    header = f"{'tagger':<24} {'task':<10} " + " ".join(f"{name:>15}" for name, _ in columns)
    rows, differences, spreads = [], {}, []
    for tagger, tasks in metrics.items():
        for task, m in tasks.items():
            rows.append((tagger, task, _cells(m, columns, "_err", sign=False)))
            for other, d in m.get("minus", {}).items():
                differences.setdefault((tagger, other), []).append(
                    (f"{tagger} − {other}", task, _cells(d, columns, "_err", sign=True)))
            if "n_seeds" in m:
                spreads.append((f"{tagger} ({m['n_seeds']} seeds)", task,
                                _cells({"auc": m["auc_seed_std"], "eff_at_mistag": m["eff_at_mistag_seed_std"]},
                                       columns, None, sign=False, digits_of=m)))
    lines = [header, *_lines(rows)]
    if differences:
        lines += ["", "paired differences (error: paired bootstrap over the same test jets)",
                  *_lines([row for pair in differences.values() for row in pair])]
    if spreads:
        lines += ["", "seed spread (standard deviation over training seeds)", *_lines(spreads)]
    return "\n".join(lines)


def _lines(rows):
    return [f"{name:<24} {task:<10} " + " ".join(f"{c:>15}" for c in cells) for name, task, cells in rows]


def _cells(m, columns, err_suffix, *, sign, digits_of=None):
    """Cells of one row: ``value ± error`` (``err_suffix``), or the bare values (``None``) with as many decimals
    as the statistical errors of ``digits_of`` give."""
    cells = []
    for _, key in columns:
        scale = 1.0 if key is None else 100.0
        value = m.get("auc") if key is None else m["eff_at_mistag"].get(key)
        if err_suffix is None:
            ref = digits_of.get("auc_err") if key is None else digits_of.get("eff_at_mistag_err", {}).get(key)
            cells.append(format_value(value, None, scale, decimals=_decimals(ref, scale) + 1))
            continue
        err = m.get(f"auc{err_suffix}") if key is None else m.get(f"eff_at_mistag{err_suffix}", {}).get(key)
        cells.append(format_value(value, err, scale, sign=sign))
    return cells


def format_value(value, err=None, scale: float = 1.0, *, sign: bool = False, decimals: int | None = None) -> str:
    """``value ± err`` (both times ``scale``) with the error rounded to one significant digit and the value to
    the same decimal place (``0.9397, 0.0012`` → ``"0.940 ± 0.001"``; ``0.452, 0.013`` at scale 100 →
    ``"45 ± 1"``); without ``err`` the value with ``decimals`` (default 4 for the AUC scale 1, else 1).
    ``sign`` writes a leading + for positive values (differences). ``"n/a"`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    plus = "+" if sign else ""
    if err is None or not np.isfinite(err):
        digits = decimals if decimals is not None else (4 if scale == 1.0 else 1)
        return f"{value * scale:{plus}.{digits}f}"
    digits = _decimals(err, scale)
    return f"{value * scale:{plus}.{digits}f} ± {err * scale:.{digits}f}"


def _decimals(err, scale) -> int:
    """Decimal places that leave one significant digit of ``err * scale`` after rounding (0.96 → 1 → 0)."""
    if err is None or not np.isfinite(err) or err <= 0:
        return 4 if scale == 1.0 else 1
    digits = max(0, -int(math.floor(math.log10(err * scale))))
    return max(0, digits - 1) if round(err * scale, digits) >= 10.0 ** (1 - digits) else digits
