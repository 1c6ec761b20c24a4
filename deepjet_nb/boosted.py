"""Evaluation of boosted (fat-jet) taggers: top and W tagging against QCD, τ-ratio baselines, mass sculpting.

Input: prediction files of fat-jet taggers (docs/formats.md §4, outputs §4b: tree ``tree``, one entry per
anti-kT R = 0.8 jet, ``prob_is<Class>``, ``truth_is<Class>`` and the spectators ``fj_pt``, ``fj_eta``, ``fj_mass``,
``fj_sdmass``, ``fj_tau21``, ``fj_tau32`` and every ``label_*`` flag of the DeepAK8 ntuple,
:data:`deepjet_nb.schema.DEEPAK8`). Truth comes from the raw ``label_*`` flags, not from the training
classes, so taggers trained on different class sets are compared on the same jets with the same definitions
(:data:`TASKS`, as the DeepAK8 paper defines its categories, CMS JME-18-002, JINST 15 (2020) P06005):

- ``top_vs_qcd``: fully merged tops (``label_Top_bcq`` + ``label_Top_bqq``) against QCD (every ``label_QCD_*``);
- ``w_vs_qcd``: fully merged Ws (``label_W_qq`` + ``label_W_cq``) against QCD;
- ``z_vs_qcd``, ``h_vs_qcd``: Z (``label_Z_*``) and H (``label_H_*``) against QCD.

Partially merged tops (``label_Top_bc``, ``label_Top_bq``, ``label_Top_others``) and undefined jets enter no
task. A tagger's score for a task is P(signal) / (P(signal) + P(QCD)) of its classes ``Top``/``W``/``Z``/``H``
and ``QCD`` (the two-class discriminant of the DeepAK8 paper).

Baselines (:data:`BASELINES`), from the spectators of the first file: the cut-based taggers of CMS,
``tau32_cut`` (top: 105 < m_SD < 210 GeV, then τ3/τ2 below a cut) and ``tau21_cut`` (W: 65 < m_SD < 105 GeV,
then τ2/τ1 below a cut), windows of CMS-PAS-JME-16-003 and JME-18-002. Jets outside the window are rejected at
every cut, so such a ROC curve ends at the window's efficiency and QCD acceptance: at a mistag above that
acceptance the baseline has no efficiency (``null`` in metrics.json, with a note), never an interpolated one.

Mass sculpting: a tagger that learns the jet mass selects QCD jets at the signal mass, which turns a falling
QCD mass spectrum into a peak and defeats a background estimate from the mass sidebands. Measured as the
Jensen–Shannon divergence between the soft-drop-mass distribution of all QCD jets and of those selected at
5 % and 1 % QCD mistag (:func:`deepjet_nb.kernels.substructure.jensen_shannon`; 0 = no sculpting), as in the
mass-decorrelation studies of JME-18-002.

Typical use::

    import deepjet_nb.boosted as bo
    metrics = bo.evaluate_boosted(["pn.root", "deepak8.root"], "runs/boosted/eval")   # metrics.json + plots
    print(bo.summary_table(metrics))

Command line: ``deepjet-nb evaluate-boosted --out DIR PRED.root... [NAME=FILE]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import plots as _plots
from ._args import integer
from ._atomic import check_output
from ._jsonio import write_json
from .errors import ArgumentError, InputFileError
from .kernels import roc as _roc
from .kernels.substructure import jensen_shannon
from .performance import (RocCurve, SkippedTaskWarning, Tagger, Task, class_probabilities, compute_metrics,
                          evaluation_output, finite_scores, format_value, jet_mismatch, named_paths,
                          noting_skipped_tasks, read_prediction_arrays, roc, tagger_names, warn_skipped)
from .performance import skipped_tasks as _skipped_tasks
from .plots import BoostedRocPlot
from .predict import PROB_PREFIX, TREE
from .rootio import open_tree

__all__ = [
    "TASKS", "BASELINES", "MISTAGS", "PT_RANGE", "QCD_LABELS", "TOP_SDMASS_WINDOW", "W_SDMASS_WINDOW", "SDMASS_EDGES",
    "BoostedTask", "Baseline", "FatJetTagger", "BoostedCurve", "BoostedRocPlot", "SkippedTaskWarning",
    "read_fat_jets", "load_fat_jet_taggers", "is_fat_jet_file", "baseline", "roc", "sculpting", "sculpting_plot",
    "sdmass_plot",
    "skipped_tasks", "compute_boosted_metrics", "evaluate_boosted", "summary_table", "register_cli",
]

QCD_CLASS = "QCD"
QCD_LABELS = ("label_QCD_bb", "label_QCD_cc", "label_QCD_b", "label_QCD_c", "label_QCD_others")
MISTAGS = (0.05, 0.01)

# Soft-drop-mass windows of the CMS cut-based taggers (CMS-PAS-JME-16-003, "Top tagging with new approaches";
# JME-18-002, JINST 15 (2020) P06005): top 105 < m_SD < 210 GeV with τ3/τ2, W 65 < m_SD < 105 GeV with τ2/τ1.
TOP_SDMASS_WINDOW = (105.0, 210.0)
W_SDMASS_WINDOW = (65.0, 105.0)

# Soft-drop-mass binning of the sculpting histograms and plots: 0-300 GeV in 10 GeV bins (outside: edge bins).
SDMASS_EDGES = np.linspace(0.0, 300.0, 31)
# Taggers are compared in a window of fat-jet pT, as CMS quotes boosted-tagger performance in pT bins (JME-18-002):
# substructure separates better the more boosted the decay, and signal and QCD samples have different pT
# spectra, so an inclusive comparison would reward the pT difference. 500-1000 GeV holds most top and W jets of
# 2 TeV resonances and the upper part of QCD with pT-hat > 400 GeV. None: every jet.
PT_RANGE = (500.0, 1000.0)
SDMASS_BRANCH = "fj_sdmass"
KINEMATICS = ("fj_pt", "fj_eta", SDMASS_BRANCH)


@dataclass(frozen=True)
class BoostedTask(Task):
    """Signal class ``signal`` (the ``prob_is<signal>`` of a tagger) against QCD, its truth flags, and the
    baseline; a tagger's score for it is named like the task."""

    signal_labels: tuple[str, ...] = ()
    baseline: str | None = None

    @property
    def background_labels(self) -> tuple[str, ...]:
        return QCD_LABELS

    def missing_score(self, tagger) -> str:
        return f"no {PROB_PREFIX}{self.signal} or {PROB_PREFIX}{self.background} in {tagger.source}"


@dataclass(frozen=True)
class Baseline:
    """A cut-based tagger: ``lo < fj_sdmass < hi`` and ``variable`` below a cut (score = −variable)."""

    name: str
    task: str
    variable: str
    sdmass_window: tuple[float, float]


TASKS = {
    "top_vs_qcd": BoostedTask("top_vs_qcd", "Top", QCD_CLASS, signal_labels=("label_Top_bcq", "label_Top_bqq"),
                              baseline="tau32_cut"),
    "w_vs_qcd": BoostedTask("w_vs_qcd", "W", QCD_CLASS, signal_labels=("label_W_qq", "label_W_cq"),
                            baseline="tau21_cut"),
    "z_vs_qcd": BoostedTask("z_vs_qcd", "Z", QCD_CLASS, signal_labels=("label_Z_bb", "label_Z_cc", "label_Z_qq")),
    "h_vs_qcd": BoostedTask("h_vs_qcd", "H", QCD_CLASS, signal_labels=("label_H_bb", "label_H_cc")),
}
BASELINES = {
    "tau32_cut": Baseline("tau32_cut", "top_vs_qcd", "fj_tau32", TOP_SDMASS_WINDOW),
    "tau21_cut": Baseline("tau21_cut", "w_vs_qcd", "fj_tau21", W_SDMASS_WINDOW),
}
# Truth classes of the soft-drop-mass plot: the tasks' signals and QCD.
TRUTH_CLASSES = {**{t.signal: t.signal_labels for t in TASKS.values()}, QCD_CLASS: QCD_LABELS}

# A fat-jet tagger's ROC curve is the evaluation core's (it ends early for a baseline's mass window).
BoostedCurve = RocCurve


# ---------------------------------------------------------------------------------------------------------
# data holders


@dataclass(frozen=True)
class FatJetTagger(Tagger):
    """Per-task scores of one fat-jet tagger (or baseline) with the jets' truth and kinematics: a
    :class:`deepjet_nb.performance.Tagger` whose ``scores`` map task names to float64 (n,) arrays, larger = more
    signal-like (``-inf`` marks a jet that a baseline rejects at every cut: outside its mass window), whose
    ``truth`` maps the class names of :data:`TRUTH_CLASSES` to bool (n,) masks from the raw ``label_*`` flags and
    whose ``spectators`` are ``fj_pt``, ``fj_eta`` and ``fj_sdmass``. ``baseline`` is the :class:`Baseline` a
    baseline tagger was made from, None for a trained tagger.
    """

    baseline: Baseline | None = None
    pt_range: tuple[float, float] | None = None  # the fat-jet pT window the jets were read in (None: all)

    @property
    def sdmass(self) -> np.ndarray:
        return self.spectators[SDMASS_BRANCH]

    @property
    def pt(self) -> np.ndarray:
        return self.spectators["fj_pt"]

    @property
    def eta(self) -> np.ndarray:
        return self.spectators["fj_eta"]


def _task(name: str) -> BoostedTask:
    if name not in TASKS:
        raise ArgumentError(f"unknown boosted task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]


# ---------------------------------------------------------------------------------------------------------
# reading prediction files


def read_fat_jets(path: str | os.PathLike, *, name: str | None = None,
                  tasks: Sequence[str] | None = None, pt_range: tuple[float, float] | None = None) -> FatJetTagger:
    """Read one fat-jet prediction file into a :class:`FatJetTagger`.

    ``tasks`` None: every task whose classes the file has (``prob_is<Signal>`` and ``prob_isQCD``); named
    tasks must all be scorable. Raises :class:`InputFileError` naming the file and the branch when the file
    cannot be read, lacks a spectator, a ``label_*`` flag or the ``prob_is*`` branches of a task (or of every
    task), or holds non-finite probabilities or soft-drop masses. ``pt_range``: keep the jets with
    lo <= fj_pt < hi only.
    """
    arrays, source = _read_tree(path, tasks, pt_range=pt_range)
    return _tagger_from_arrays(name or Path(path).stem, arrays, source, tasks, pt_range)


def baseline(path: str | os.PathLike, which: str = "tau32_cut", *,
             pt_range: tuple[float, float] | None = None) -> FatJetTagger:
    """The cut-based baseline ``which`` (a key of :data:`BASELINES`) on the jets of a prediction file: score
    −τ inside its soft-drop-mass window, −inf (rejected at every cut) outside. Raises :class:`InputFileError`
    as :func:`read_fat_jets` (the τ ratio is needed, the ``prob_is*`` branches are not)."""
    if which not in BASELINES:
        raise ArgumentError(f"unknown baseline {which!r} (known: {', '.join(BASELINES)})")
    arrays, source = _read_tree(path, [BASELINES[which].task], baselines=True, probs=False, pt_range=pt_range)
    return _baseline_from_arrays(BASELINES[which], arrays, source, pt_range)


def load_fat_jet_taggers(paths: Sequence[str | os.PathLike], *, names: Sequence[str] | None = None,
                         tasks: Sequence[str] | None = None, baselines: bool = True,
                         pt_range: tuple[float, float] | None = None) -> list[FatJetTagger]:
    """Read several prediction files, each once; append the baselines of the tasks (from the first file).
    ``pt_range``: only jets with lo <= fj_pt < hi (None: all).

    Returns the taggers in input order, then the baselines (named as in :data:`BASELINES`) whose task has
    jets. Raises :class:`ArgumentError` for no paths or repeated names (or a baseline's name),
    :class:`InputFileError` as :func:`read_fat_jets`.
    """
    paths, names = tagger_names(paths, names, reserved=list(BASELINES) if baselines else [],
                                what="load_fat_jet_taggers")
    if tasks is not None:
        tasks = [_task(t).name for t in ([tasks] if isinstance(tasks, str) else tasks)]
    taggers, base = [], []
    for i, (path, name) in enumerate(zip(paths, names)):
        arrays, source = _read_tree(path, tasks, baselines=baselines and i == 0, pt_range=pt_range)
        taggers.append(_tagger_from_arrays(name, arrays, source, tasks, pt_range))
        if baselines and i == 0:
            for spec in BASELINES.values():
                if tasks is None or spec.task in tasks:
                    b = _baseline_from_arrays(spec, arrays, source, pt_range)
                    if b.has_jets(spec.task):
                        base.append(b)
    return taggers + base


def is_fat_jet_file(path: str | os.PathLike) -> bool:
    """Whether a prediction file is of fat jets (its tree holds the soft-drop mass): read with
    :func:`load_fat_jet_taggers`, else with :func:`deepjet_nb.evaluate.load_taggers`. Raises
    :class:`InputFileError` naming the file when it cannot be opened or has no tree ``tree``."""
    with open_tree(Path(path), TREE) as tree:
        return SDMASS_BRANCH in tree.keys()


def _required_labels(tasks):
    wanted = [label for t in (tasks if tasks is not None else TASKS) for label in _task(t).signal_labels]
    return list(dict.fromkeys(wanted + list(QCD_LABELS)))


def _read_tree(path, tasks, *, baselines=False, probs=True, pt_range=None):
    required = [*KINEMATICS, *_required_labels(tasks)]
    if baselines:
        required += [b.variable for b in BASELINES.values() if tasks is None or b.task in tasks]
    # the labels of the other classes too, where the file has them, for the mass plot
    optional = [label for labels in TRUTH_CLASSES.values() for label in labels]
    arrays, source = read_prediction_arrays(
        path, required, optional=optional, probabilities=probs,
        hint=f"; a fat-jet prediction file holds the spectators {', '.join(KINEMATICS)} and the label_* flags")
    for name in KINEMATICS:
        if not np.all(np.isfinite(arrays[name])):
            raise InputFileError(f"{source}: branch {name!r} holds NaN or infinite values")
    return _in_pt_range(arrays, source, pt_range), source


def _in_pt_range(arrays, source, pt_range):
    """The jets with lo <= fj_pt < hi (all with ``pt_range`` None)."""
    if pt_range is None:
        return arrays
    lo, hi = (float(x) for x in pt_range)
    if not lo < hi:
        raise ArgumentError(f"pt_range must be (low, high) with low < high, got {pt_range!r}")
    keep = (arrays["fj_pt"] >= lo) & (arrays["fj_pt"] < hi)
    if not keep.any():
        raise InputFileError(f"{source}: no jet with {lo:g} <= fj_pt < {hi:g} GeV (pT range of the evaluation)")
    return {k: v[keep] for k, v in arrays.items()}


def _truth(arrays, source):
    truth = {}
    for cls, labels in TRUTH_CLASSES.items():
        present = [label for label in labels if label in arrays]
        mask = np.zeros(len(arrays[SDMASS_BRANCH]), dtype=bool)
        for label in present:
            mask |= np.asarray(arrays[label]) != 0
        truth[cls] = mask
    overlap = truth[QCD_CLASS] & np.any([m for c, m in truth.items() if c != QCD_CLASS], axis=0)
    if overlap.any():
        raise InputFileError(f"{source}: jet {int(np.flatnonzero(overlap)[0])} carries both a label_QCD_* flag and "
                             f"a signal label: the label_* flags must be exclusive")
    return truth


def _common(arrays, source, pt_range):
    spectators = {k: np.asarray(arrays[k], dtype=np.float64) for k in KINEMATICS}
    return dict(truth=_truth(arrays, source), spectators=spectators,
                tasks=TASKS, source=source, pt_range=None if pt_range is None else tuple(float(x) for x in pt_range))


def _tagger_from_arrays(name, arrays, source, tasks, pt_range=None):
    probs = class_probabilities(arrays, source)
    have = ", ".join(PROB_PREFIX + c for c in probs)
    scores = {}
    for task in (tasks if tasks is not None else TASKS):
        spec = _task(task)
        needed = [PROB_PREFIX + c for c in (spec.signal, spec.background)]
        missing = [b for b in needed if b[len(PROB_PREFIX):] not in probs]
        if missing:
            if tasks is not None:
                raise InputFileError(f"{source}: task {task} needs branches {' and '.join(map(repr, needed))}; "
                                     f"missing {missing[0]!r} (the file has {have})")
            continue
        sig = np.asarray(probs[spec.signal], dtype=np.float64)
        qcd = np.asarray(probs[spec.background], dtype=np.float64)
        total = sig + qcd
        # P(signal) / (P(signal) + P(QCD)); a jet with both zero scores 0 (least signal-like)
        scores[task] = np.divide(sig, total, out=np.zeros_like(sig), where=total > 0)
    if not scores:
        wanted = ", ".join(repr(PROB_PREFIX + t.signal) for t in TASKS.values())
        raise InputFileError(f"{source}: no boosted task can be scored: needs {PROB_PREFIX + QCD_CLASS!r} and one "
                             f"of {wanted} (the file has {have})")
    return FatJetTagger(name=name, scores=scores, **_common(arrays, source, pt_range))


def _baseline_from_arrays(spec, arrays, source, pt_range=None):
    common = _common(arrays, source, pt_range)
    lo, hi = spec.sdmass_window
    tau = np.asarray(arrays[spec.variable], dtype=np.float64)
    sdmass = common["spectators"][SDMASS_BRANCH]
    inside = (sdmass > lo) & (sdmass < hi) & np.isfinite(tau)
    score = np.where(inside, -tau, -np.inf)
    return FatJetTagger(name=spec.name, scores={spec.task: score}, baseline=spec, **common)


# ---------------------------------------------------------------------------------------------------------
# mass sculpting


def _mass_bins(mass):
    """Bin index (0 .. len(SDMASS_EDGES) - 2) of each mass; masses outside the range go to the edge bins."""
    n = len(SDMASS_EDGES) - 1
    return np.clip(np.searchsorted(SDMASS_EDGES, mass, side="right") - 1, 0, n - 1)


def sculpting(tagger: FatJetTagger, task: str = "top_vs_qcd", mistags: Sequence[float] = MISTAGS, *,
              n_boot: int = _roc.BOOTSTRAP_REPLICAS, seed: int = 0) -> dict:
    """Mass sculpting of QCD jets by the task's cut at each QCD mistag of ``mistags``.

    The cut is the loosest with QCD mistag <= the target (:func:`deepjet_nb.kernels.roc.threshold_at_mistag`
    on the QCD jets); the Jensen–Shannon divergence compares the soft-drop-mass histogram (:data:`SDMASS_EDGES`)
    of the selected QCD jets with that of all QCD jets. ``js_err``: standard deviation over ``n_boot`` Poisson
    replicas of the QCD jets (the cut re-derived in each), None with ``n_boot`` = 0.

    Returns ``{"inclusive": {"n", "mean_sdmass", "median_sdmass", "histogram"}, "0.05": {"js", "js_err",
    "n_selected", "mistag", "cut", "mean_sdmass", "median_sdmass", "histogram"}, ...}`` (histograms: counts
    per bin). A mistag the tagger cannot reach (above a baseline's window acceptance; or no finite cut) has
    ``js`` None and a ``note``.
    """
    if task not in tagger.scores:
        raise ArgumentError(f"{tagger.name}: no score for {task}")
    _, background = tagger.jets(task)
    if not background.any():
        raise ArgumentError(f"{tagger.name}, {task}: no QCD jets")
    raw = tagger.scores[task][background]
    scores, rejected = finite_scores(raw)
    mass = tagger.sdmass[background]
    order = np.argsort(-scores, kind="mergesort")
    s, bins, m_sorted = scores[order], _mass_bins(mass[order]), mass[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last jet of each group of tied scores
    thresholds = np.r_[np.inf, s[ends]]
    n_bins = len(SDMASS_EDGES) - 1
    # loosest reachable mistag: without the rejected jets' point when some are rejected at every cut
    max_mistag = 1.0 if not rejected else float(np.count_nonzero(np.isfinite(raw))) / len(raw)

    def selected(w):
        cum = np.cumsum(w)
        bkg_eff = np.r_[0.0, cum[ends] / cum[-1]]
        cuts = np.atleast_1d(_roc.threshold_at_mistag(bkg_eff, thresholds, np.asarray(mistags, dtype=float)))
        return cuts, np.searchsorted(-s, -cuts, side="right")  # jets with score >= cut: a prefix of s

    def js_of(w, n_sel):
        inclusive = np.bincount(bins, weights=w, minlength=n_bins)
        out = []
        for k in n_sel:
            sel = np.bincount(bins[:k], weights=w[:k], minlength=n_bins)
            out.append(jensen_shannon(inclusive, sel) if k > 0 and sel.sum() > 0 else np.nan)
        return inclusive, np.array(out)

    ones = np.ones(len(s))
    cuts, n_sel = selected(ones)
    inclusive, js = js_of(ones, n_sel)
    errs = np.full(len(mistags), np.nan)
    if n_boot:
        rng = np.random.default_rng(seed)
        reps = []
        for _ in range(n_boot):
            w = rng.poisson(1.0, len(s)).astype(np.float64)
            if w.sum() <= 0:
                continue
            reps.append(js_of(w, selected(w)[1])[1])
        reps = np.array(reps)
        for i in range(len(mistags)):
            valid = reps[:, i][np.isfinite(reps[:, i])] if len(reps) else reps
            if len(valid) >= 2:
                errs[i] = float(np.std(valid, ddof=1))
    out = {"inclusive": {"n": len(s), "mean_sdmass": float(mass.mean()), "median_sdmass": float(np.median(mass)),
                         "histogram": inclusive.astype(int).tolist()}}
    for i, mistag in enumerate(mistags):
        k = int(n_sel[i])
        entry = {"js": None, "js_err": None, "n_selected": k, "mistag": k / len(s),
                 "cut": float(cuts[i]) if np.isfinite(cuts[i]) else None,
                 "mean_sdmass": None, "median_sdmass": None}
        if mistag > max_mistag:
            entry.update(n_selected=None, mistag=None, cut=None,
                         note=f"the cut-based selection reaches QCD mistag {max_mistag:.4g} at most (its "
                              f"soft-drop-mass window): no cut at {mistag:g}")
        elif k == 0:
            entry["note"] = f"no finite cut reaches QCD mistag {mistag:g} (tied scores): nothing selected"
        else:
            entry.update(js=float(js[i]), js_err=float(errs[i]) if np.isfinite(errs[i]) else None,
                         mean_sdmass=float(m_sorted[:k].mean()), median_sdmass=float(np.median(m_sorted[:k])))
            entry["histogram"] = np.bincount(bins[:k], minlength=n_bins).tolist()
        out[f"{mistag:g}"] = entry
    return out


def sculpting_plot(tagger: FatJetTagger, task: str, sculpt: dict | None = None) -> _plots.HistogramPlot:
    """Normalised soft-drop-mass distributions of QCD jets: all, and selected at 5 % and 1 % mistag
    (:func:`deepjet_nb.plots.sculpting_plot` over :data:`SDMASS_EDGES`); ``sculpt`` is :func:`sculpting`'s result
    (computed without errors if not given)."""
    return _plots.sculpting_plot(tagger, task, sculpt or sculpting(tagger, task, n_boot=0), SDMASS_EDGES)


def sdmass_plot(tagger: FatJetTagger) -> _plots.HistogramPlot:
    """Normalised soft-drop-mass distribution of each truth class (Top, W, Z, H, QCD) with jets."""
    return _plots.mass_by_class_plot(tagger, SDMASS_EDGES)


# ---------------------------------------------------------------------------------------------------------
# metrics


def _undefined_note(curve, mistag):
    return (f"the cut-based ROC curve ends at QCD mistag {curve.max_mistag:.4g} (the QCD acceptance of the "
            f"soft-drop-mass window): no efficiency at {mistag:g}")


def _boosted_details(tagger, task, mistags, n_boot):
    """What a boosted task entry adds to the core's (:func:`deepjet_nb.performance.task_metrics`): the pT window,
    a baseline's variable, window and reach (with notes on the mistags beyond it) and the mass sculpting."""
    entry = {"pt_range": None if tagger.pt_range is None else list(tagger.pt_range)}
    if tagger.baseline is not None:
        curve = roc(tagger, task)
        entry["baseline"] = {"variable": tagger.baseline.variable, "sdmass_window": list(tagger.baseline.sdmass_window),
                             "max_mistag": curve.max_mistag}
        notes = {f"{m:g}": _undefined_note(curve, m) for m in mistags if m > curve.max_mistag}
        if notes:
            entry["notes"] = notes
    sculpt = sculpting(tagger, task.name, mistags, n_boot=n_boot)
    entry["sdmass_inclusive"] = {k: v for k, v in sculpt.pop("inclusive").items() if k != "histogram"}
    entry["sculpting"] = {k: {kk: vv for kk, vv in v.items() if kk != "histogram"} for k, v in sculpt.items()}
    return entry


def skipped_tasks(taggers: Sequence[FatJetTagger], tasks: Sequence[str] | None = None) -> list[str]:
    """One line per (tagger, task) left out of the metrics: the tagger cannot score a task that has jets, or
    a task named in ``tasks`` has no signal or no QCD jets (``tasks`` None: the tasks without jets are left out
    silently). A baseline is evaluated on its own task only."""
    def tasks_of(tagger):
        if tagger.baseline is not None:
            return [tagger.baseline.task] if tasks is None or tagger.baseline.task in tasks else []
        if tasks is not None:
            return [_task(t).name for t in tasks]
        return [t for t in TASKS if tagger.has_jets(t)]

    return _skipped_tasks(taggers, tasks_of)


def compute_boosted_metrics(taggers: Sequence[FatJetTagger], *, tasks: Sequence[str] | None = None,
                            mistags: Sequence[float] = MISTAGS, n_boot: int = _roc.BOOTSTRAP_REPLICAS) -> dict:
    """The boosted metrics.json dictionary (docs/formats.md §4b): ``{tagger: {task: {"auc", "auc_err",
    "eff_at_mistag": {"0.05", "0.01"}, "eff_at_mistag_err": {...}, "n_signal", "n_background",
    "sdmass_inclusive": {...}, "sculpting": {"0.05": {"js", "js_err", "n_selected", ...}, ...}}}}``; baselines
    add ``"baseline"`` (variable, window, ``max_mistag``) and ``"notes"`` for mistags they cannot reach (their
    efficiencies there are None). Every tagger with the same jets as the first one gets ``"minus": {first:
    {...}}`` (itself − first, paired-bootstrap errors). Errors: ``n_boot`` Poisson replicas, seed 0 (as
    :func:`deepjet_nb.performance.compute_metrics`); ``n_boot`` = 0 leaves them None. A task a tagger cannot
    score or without signal or QCD jets is left out for that tagger (:func:`skipped_tasks`).
    """
    n_boot = integer(n_boot, "bootstrap", "compute_boosted_metrics", minimum=0)
    if n_boot == 1:
        raise ArgumentError("compute_boosted_metrics: bootstrap must be 0 (no errors) or >= 2 replicas")
    tasks = list(TASKS) if tasks is None else [_task(t).name for t in ([tasks] if isinstance(tasks, str) else tasks)]
    # taggers of other jets than the first file's (another sample) are evaluated but not compared
    pairs = [(t.name, taggers[0].name) for t in taggers[1:] if jet_mismatch(t, taggers[0]) is None]
    return compute_metrics(taggers, tasks=tasks, mistags=mistags, n_boot=n_boot, differences=pairs,
                           details=lambda tagger, task: _boosted_details(tagger, task, mistags, n_boot))


# ---------------------------------------------------------------------------------------------------------
# the full evaluation


def _write_plots(taggers, metrics, plot_dir, formats):
    colours = _plots.tagger_colours([t.name for t in taggers])
    tasks = list(dict.fromkeys(task for entry in metrics.values() for task in entry))
    by_name = {t.name: t for t in taggers}
    for task in tasks:
        plot = BoostedRocPlot(task, colours=colours, mistags=MISTAGS)
        for name, entry in metrics.items():
            if task in entry:
                plot.add(roc(by_name[name], task), dashed=by_name[name].baseline is not None)
        plot.savefig(plot_dir / f"roc_{task}", formats=formats)
    stems = _plots.plot_stems(list(by_name))
    for name, entry in metrics.items():
        for task in entry:
            sculpting_plot(by_name[name], task).savefig(plot_dir / f"sculpting_{task}_{stems[name]}", formats=formats)
    sdmass_plot(taggers[0]).savefig(plot_dir / "sdmass_by_class", formats=formats)


def evaluate_boosted(prediction_files: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                     tasks: Sequence[str] | None = None, names: Sequence[str] | None = None,
                     bootstrap: int = _roc.BOOTSTRAP_REPLICAS, formats: Sequence[str] = ("png", "pdf"),
                     baselines: bool = True, plots: bool = True,
                     pt_range: tuple[float, float] | None = PT_RANGE) -> dict:
    """Evaluate fat-jet prediction files and write the results into ``out_dir``, on the jets with
    lo <= fj_pt < hi of ``pt_range`` (:data:`PT_RANGE`; None: every jet).

    Writes (each atomically): with ``plots``, ``plots/roc_<task>.*`` (every tagger, baselines dashed),
    ``plots/sculpting_<task>_<tagger>.*`` and ``plots/sdmass_by_class.*`` (the first file's jets); then
    ``metrics.json`` (:func:`compute_boosted_metrics`), last. ``tasks``: None for every task with jets.
    ``bootstrap``: replicas of the statistical errors (0: none). Returns the metrics. Raises
    :class:`InputFileError` / :class:`ArgumentError` as :func:`load_fat_jet_taggers` and
    :func:`compute_boosted_metrics`; :class:`ArgumentError` when no task has jets.
    """
    out_dir = check_output(out_dir, directory=True, what="evaluation directory")
    bootstrap = integer(bootstrap, "bootstrap", "evaluate_boosted", minimum=0)
    taggers = load_fat_jet_taggers(prediction_files, names=names, tasks=tasks, baselines=baselines,
                                   pt_range=pt_range)
    warn_skipped(skipped_tasks(taggers, tasks))
    with evaluation_output(out_dir, "deepjet-nb evaluate-boosted"):
        metrics = compute_boosted_metrics(taggers, tasks=tasks, n_boot=bootstrap)
        if not any(metrics.values()):
            raise ArgumentError(f"evaluate_boosted: no task has both signal and QCD jets in "
                                f"{taggers[0].source} (tasks: {', '.join(tasks or TASKS)})")
        if plots:
            _write_plots(taggers, metrics, out_dir / "plots", formats)
        # metrics.json last: its presence means the whole evaluation finished
        write_json(out_dir / "metrics.json", metrics, indent=2)
    return metrics


def summary_table(metrics: dict) -> str:
    """A markdown table, one row per tagger and task: AUC, signal efficiency (%) at 5 % and 1 % QCD mistag with
    their statistical errors (:func:`deepjet_nb.performance.format_value`; ``n/a`` where undefined) and the
    Jensen–Shannon divergence of the selected QCD mass at 5 % and 1 %."""
    header = "| tagger | task | AUC | eff@5% | eff@1% | JS@5% | JS@1% |"
    lines = [header, "|" + "---|" * 7]
    for tagger, tasks in metrics.items():
        for task, m in tasks.items():
            cells = [format_value(m["auc"], m.get("auc_err"))]
            for key in ("0.05", "0.01"):
                cells.append(format_value(m["eff_at_mistag"].get(key), m["eff_at_mistag_err"].get(key), 100.0))
            for key in ("0.05", "0.01"):
                s = m.get("sculpting", {}).get(key, {})
                cells.append(format_value(s.get("js"), s.get("js_err")))
            lines.append(f"| {tagger} | {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# command line


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb evaluate-boosted``."""
    parser = subparsers.add_parser(
        "evaluate-boosted", help="top/W tagging against QCD from fat-jet prediction files: ROC, τ baselines, "
                                 "mass sculpting",
        description="Evaluate fat-jet prediction files (tree 'tree', docs/formats.md §4b): metrics.json and "
                    "CMS-style plots in --out. Tagger names are the file stems, or NAME=FILE.",
    )
    parser.add_argument("predictions", nargs="+", metavar="PRED.root", help="prediction files (NAME=FILE to name)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--task", action="append", choices=list(TASKS), dest="tasks",
                        help="evaluate only this task (repeatable; default: every task with jets)")
    parser.add_argument("--bootstrap", type=int, default=_roc.BOOTSTRAP_REPLICAS,
                        help="bootstrap replicas of the statistical errors (0: none; default: %(default)s)")
    parser.add_argument("--no-baselines", action="store_true", help="leave out the τ-ratio cut baselines")
    parser.add_argument("--no-plots", action="store_true", help="write only metrics.json")
    parser.add_argument("--pt-range", nargs=2, type=float, default=list(PT_RANGE), metavar=("LOW", "HIGH"),
                        help=f"fat-jet pT window in GeV (default {PT_RANGE[0]:g} {PT_RANGE[1]:g})")
    parser.add_argument("--all-pt", action="store_true", help="every jet, no pT window")
    parser.set_defaults(func=_cli_evaluate_boosted)


def _cli_evaluate_boosted(args) -> int:
    names, paths = named_paths(args.predictions)
    metrics = noting_skipped_tasks("deepjet-nb evaluate-boosted", lambda: evaluate_boosted(
        paths, args.out, tasks=args.tasks, names=names, bootstrap=args.bootstrap, baselines=not args.no_baselines,
        plots=not args.no_plots, pt_range=None if args.all_pt else tuple(args.pt_range)))
    print(summary_table(metrics))
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0
