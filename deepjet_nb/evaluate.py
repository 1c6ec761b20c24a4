"""Evaluation of prediction files: CMS discriminants, ROC curves, working points, efficiencies, metrics.json.

Input: prediction ROOT files (docs/formats.md §4, tree ``tree``). Truth flavour comes from the raw flavour
flags, not from the training classes (:mod:`deepjet_nb.flavours`, docs/reference.md §2), so taggers trained on
different class sets (DeepCSV: B, BB, C, UDSG; DeepJet: B, BB, LeptB, C, UDS, G) and the track-counting
baseline are compared on the same jets with the same definition of a b, c or light jet. The comparisons
(:data:`deepjet_nb.flavours.TASKS`): b vs udsg and b vs c on the b discriminant, c vs udsg on CvsL, c vs b on
CvsB. Working points (CMS): loose / medium / tight at 10 % / 1 % / 0.1 % light mistag. Curves, errors,
differences and the metrics themselves come from the evaluation core, :mod:`deepjet_nb.performance`.

Typical use::

    import deepjet_nb.evaluate as ev
    taggers = ev.load_taggers(["runs/demo/predictions/deepjet.root", "runs/demo/predictions/deepcsv.root"])
    curve = ev.roc(taggers[0], "b_vs_udsg")
    curve.auc, curve.eff_at(0.01)
    metrics = ev.evaluate(["deepjet.root", "deepcsv.root"], "runs/demo")   # metrics.json + plots

Command line: ``deepjet-nb evaluate --out DIR PRED.root...``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from ._args import paths as as_paths
from ._atomic import check_output
from ._jsonio import write_json
from .errors import ArgumentError, InputFileError
from .flavours import (CLASS_FLAVOURS, FLAVOUR_CODES, FLAVOUR_GROUPS, TASKS, discriminants, flavour_from_classes,
                       flavours_from_truth, truth_flavour)
from .performance import (MISTAGS, RocCurve, SkippedTaskWarning, Task, WorkingPoint, class_probabilities,
                          compute_metrics, difference, evaluation_output, format_value, has_jets, named_paths,
                          noting_skipped_tasks, read_prediction_arrays, roc_errors, same_jets, seed_spread,
                          paired_verdict, skipped_tasks, summary_table, tagger_names, warn_skipped)
from .performance import roc as _roc_curve, working_points as _working_points
from .plots import plot_stems
from .predict import PROB_PREFIX, TRUTH_PREFIX

__all__ = [
    "MISTAGS", "WORKING_POINTS", "BASELINE_NAME", "PT_EDGES", "ETA_EDGES", "FLAVOUR_TASKS",
    "Tagger", "RocCurve", "WorkingPoint", "Efficiency", "SkippedTaskWarning",
    "read_predictions", "load_taggers", "track_counting",
    "roc", "roc_errors", "difference", "same_jets", "seed_spread", "working_points", "efficiency_vs",
    "compute_metrics", "evaluate", "skipped_tasks", "summary_table", "paired_verdict", "format_value", "named_paths",
    "noting_skipped_tasks", "plot_stems", "register_cli",
]

TRACK_COUNTING = "trackCounting_sip3dSig2"
BASELINE_NAME = "track_counting"

WORKING_POINTS = {"loose": 0.1, "medium": 0.01, "tight": 0.001}
# The comparisons of :data:`deepjet_nb.flavours.TASKS` as tasks of the evaluation core: truth flavours as the
# classes, the discriminant as the score.
FLAVOUR_TASKS = {name: Task(name, t.signal, t.background, t.discriminant) for name, t in TASKS.items()}

# Binning of efficiency curves: jet pT from the sample threshold (20 GeV) up, |eta| < 2.5 (tracker).
PT_EDGES = (20.0, 30.0, 40.0, 50.0, 70.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0)
ETA_EDGES = tuple(np.round(np.arange(-2.5, 2.51, 0.5), 2))


# ---------------------------------------------------------------------------------------------------------
# data holders


@dataclass(frozen=True)
class Tagger:
    """Per-jet discriminants of one flavour tagger with the jets' truth flavour and kinematics.

    ``discriminants`` maps ``"b"``, ``"CvsL"``, ``"CvsB"`` to float64 arrays (n,); ``flavour`` is int8 (n,)
    with the codes of ``FLAVOUR_CODES`` (-1 = undefined); ``weights`` is None (unit weights) or float64 (n,).
    For the evaluation core (:class:`deepjet_nb.performance.Tagger`) the discriminants are the ``scores``, the
    flavours the ``truth`` classes, jet pT and η the ``spectators`` and :data:`FLAVOUR_TASKS` the ``tasks``.
    """

    name: str
    discriminants: Mapping[str, np.ndarray]
    flavour: np.ndarray
    jet_pt: np.ndarray
    jet_eta: np.ndarray
    weights: np.ndarray | None = None
    source: str | None = None
    tasks: ClassVar[Mapping[str, Task]] = FLAVOUR_TASKS

    def __len__(self) -> int:
        return len(self.flavour)

    def counts(self) -> dict[str, int]:
        """Number of jets of each flavour."""
        return {fl: int(np.count_nonzero(mask)) for fl, mask in self.truth.items()}

    @property
    def scores(self) -> Mapping[str, np.ndarray]:
        return self.discriminants

    @cached_property
    def truth(self) -> dict[str, np.ndarray]:
        """Flavour → bool mask of its jets (undefined jets belong to none)."""
        return {fl: self.flavour == code for fl, code in FLAVOUR_CODES.items()}

    @property
    def spectators(self) -> dict[str, np.ndarray]:
        return {"jet_pt": self.jet_pt, "jet_eta": self.jet_eta}


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
    paths, names = tagger_names(paths, names, reserved=[BASELINE_NAME] if baseline else [], what="load_taggers")
    taggers, taggers_base = [], []
    for i, (path, name) in enumerate(zip(paths, names)):
        arrays, source = _read_tree(path, weight_branch, with_baseline=baseline and i == 0)
        taggers.append(_tagger_from_arrays(name, arrays, source, class_flavours, weight_branch))
        if baseline and i == 0 and TRACK_COUNTING in arrays:  # not in predictions of a layout of one's own
            taggers_base = [_baseline_from_arrays(BASELINE_NAME, arrays, source, weight_branch)]
    if baseline:
        taggers += taggers_base
    return taggers


def _read_tree(path, weight_branch, with_baseline=True):
    kinematics = ["jet_pt", "jet_eta", *([weight_branch] if weight_branch else [])]
    required = [*kinematics, *_RAW_FLAGS, *([TRACK_COUNTING] if with_baseline else [])]
    try:
        return read_prediction_arrays(path, required, optional=_truth_branches)
    except InputFileError as err:
        # predictions of a layout of one's own carry no raw flavour flags (nor the track-counting baseline):
        # the class truth tells the flavour when every class has one
        arrays, source = read_prediction_arrays(path, kinematics, optional=_truth_branches)
        if any(flag in arrays for flag in _RAW_FLAGS) or not _class_truth_complete(arrays):
            raise err
        return arrays, source


_RAW_FLAGS = tuple(f for flags in FLAVOUR_GROUPS.values() for f in flags)


def _class_truth_complete(arrays) -> bool:
    """Whether every ``prob_is<Class>`` has its ``truth_is<Class>`` and a known flavour (by class name)."""
    classes = [k[len(PROB_PREFIX):] for k in arrays if k.startswith(PROB_PREFIX)]
    return bool(classes) and all(f"{TRUTH_PREFIX}{c}" in arrays and c in CLASS_FLAVOURS for c in classes)


def _jet_flavour(arrays, mapping, source):
    """Truth flavour per jet: from the raw flavour flags, or from the class truth when the file has no flags."""
    if all(flag in arrays for flag in _RAW_FLAGS):
        return truth_flavour(arrays, source=source)
    truth = {k[len(TRUTH_PREFIX):]: v for k, v in arrays.items() if k.startswith(TRUTH_PREFIX)}
    return flavour_from_classes(truth, mapping)


def _truth_branches(keys):
    """``truth_is<Class>`` of each ``prob_is<Class>``: it tells the flavour of a class that the shipped class
    names do not (:func:`_class_flavours`)."""
    return [f"{TRUTH_PREFIX}{k[len(PROB_PREFIX):]}" for k in keys if k.startswith(PROB_PREFIX)]


def _tagger_from_arrays(name, arrays, source, class_flavours, weight_branch):
    probs = class_probabilities(arrays, source)
    mapping = _class_flavours(probs, arrays, source, class_flavours)
    return Tagger(
        name=name, discriminants=discriminants(probs, mapping), flavour=_jet_flavour(arrays, mapping, source),
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
    if unknown and all(flag in arrays for flag in _RAW_FLAGS):
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
    """ROC curve of ``tagger`` for ``task`` (a key of :data:`FLAVOUR_TASKS`), optionally in a jet pT / η window
    (:func:`deepjet_nb.performance.roc`).

    Windows are half-open ``[low, high)``. Raises :class:`ArgumentError` for an unknown task or when the
    selection leaves no signal or no background jet.
    """
    return _roc_curve(tagger, task, windows={"jet_pt": pt_range, "jet_eta": eta_range})


def working_points(tagger: Tagger, mistags: Mapping[str, float] | None = None,
                   task: str = "b_vs_udsg") -> dict[str, WorkingPoint]:
    """CMS working points: for each name → target mistag (default :data:`WORKING_POINTS`), the loosest cut
    on the task's discriminant whose background efficiency stays at or below the target."""
    return _working_points(tagger, mistags or WORKING_POINTS, task)


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
# the full evaluation


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
    warn_skipped(skipped_tasks(taggers))
    with evaluation_output(out_dir, "deepjet-nb evaluate"):
        seeds = {name: [read_predictions(p, name=f"{name} (seed file {i + 1})", weight_branch=weight_branch)
                        for i, p in enumerate(as_paths(files, "evaluate", "seed prediction files"))]
                 for name, files in (seed_predictions or {}).items()}
        metrics = compute_metrics(taggers, differences=differences, seeds=seeds)
        wps = {t.name: {k: wp.as_dict() for k, wp in working_points(t).items()}
               for t in taggers if has_jets(t, "b_vs_udsg")}
        if plots:
            _write_plots(taggers, out_dir / "plots", reference or taggers[0].name, working_point, formats)
        # metrics.json last: its presence means the whole evaluation finished
        write_json(out_dir / "working_points.json", wps, indent=2)
        write_json(out_dir / "metrics.json", metrics, indent=2)
    return metrics


def _write_plots(taggers, plot_dir, reference, working_point, formats):
    from . import plots

    # c taggers reach lower efficiencies at CMS-like mistags, so the c plot starts further left.
    for signal, tasks, x_low in (("b", ("b_vs_udsg", "b_vs_c"), 0.3), ("c", ("c_vs_udsg", "c_vs_b"), 0.1)):
        plot = plots.RocPlot(signal=signal, reference=reference, eff_range=(x_low, 1.0))
        for tagger in taggers:
            for task in tasks:
                if has_jets(tagger, task):
                    plot.add(roc(tagger, task))
        if plot.curves:
            plot.savefig(plot_dir / f"roc_{signal}", formats=formats)
    stems = plot_stems([t.name for t in taggers])
    for tagger in taggers:
        plots.HistogramPlot.from_tagger(tagger, "b").savefig(plot_dir / f"discriminant_{stems[tagger.name]}",
                                                                formats=formats)
        if not has_jets(tagger, "b_vs_udsg"):
            continue
        wp = working_points(tagger, {working_point: WORKING_POINTS[working_point]})[working_point]
        for variable, short in (("jet_pt", "pt"), ("jet_eta", "eta")):
            plot = plots.EfficiencyPlot(variable, title=f"{tagger.name}, {working_point} WP "
                                                         f"({wp.target_mistag:g} light mistag)")
            for eff in efficiency_vs(tagger, variable, cut=wp.cut).values():
                plot.add(eff)
            plot.savefig(plot_dir / f"efficiency_{short}_{stems[tagger.name]}", formats=formats)


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
