"""Statistical errors, paired differences, seed spread and the metrics.json dictionary of the evaluation core
(:mod:`deepjet_nb.performance`)."""

from __future__ import annotations

import math

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..errors import ArgumentError
from ..kernels import roc as _roc
from .curves import MISTAGS, Task, finite_task_jets, has_jets, resolve_task, roc


def roc_errors(tagger, task: Task | str | None = None, mistags: Sequence[float] = MISTAGS, *,
               n_boot: int = _roc.BOOTSTRAP_REPLICAS, seed: int = 0) -> tuple[float, dict[str, float | None]]:
    """Statistical errors of the AUC and of the efficiencies at ``mistags`` of :func:`roc` (whole sample), by a
    seeded bootstrap over the jets (:func:`deepjet_nb.kernels.roc.bootstrap_errors`).

    Returns ``(auc_err, {"0.1": err, ...})``, keyed like ``metrics.json``; None at a mistag beyond the curve's
    reach (:attr:`RocCurve.max_mistag`).
    """
    return _errors(tagger, resolve_task(tagger, task), mistags, n_boot, seed, roc(tagger, task).max_mistag)


def _errors(tagger, task, mistags, n_boot, seed, reach):
    scores, is_signal, weights, _ = finite_task_jets(tagger, task)
    auc_err, eff_err = _roc.bootstrap_errors(scores, is_signal, weights, np.asarray(mistags, dtype=float),
                                             n_boot=n_boot, seed=seed)
    return auc_err, {f"{m:g}": (float(e) if m <= reach else None) for m, e in zip(mistags, eff_err)}


def jet_mismatch(a, b) -> str | None:
    """Why taggers ``a`` and ``b`` do not describe the same jets in the same order (number of jets, truth
    classes, spectators, and weights when both carry them), or None when they do."""
    where = f"{a.name} ({a.source}) and {b.name} ({b.source})"
    if len(a) != len(b):
        return (f"{where} hold {len(a)} and {len(b)} jets: a paired comparison needs the predictions of both "
                f"taggers on the same jets")
    pairs = [(f"truth class {c}", a.truth[c], b.truth.get(c)) for c in a.truth]
    pairs += [(name, a.spectators[name], b.spectators.get(name)) for name in a.spectators]
    if a.weights is not None and b.weights is not None:
        pairs.append(("weight", a.weights, b.weights))
    for what, x, y in pairs:
        if y is None:
            return f"{where}: {b.name} has no {what}: not the same jets"
        if not np.array_equal(x, y):
            first = int(np.flatnonzero(x != y)[0])
            return (f"{where}: jet {first} differs in {what} ({x[first]} vs {y[first]}): not the same jets in the "
                    f"same order")
    return None


def same_jets(a, b) -> None:
    """Check that taggers ``a`` and ``b`` describe the same jets in the same order (:func:`jet_mismatch`).
    Raises :class:`ArgumentError` naming both taggers and sources and the first jet that differs (a paired
    comparison of predictions on different test files, or on files converted with selections that keep
    different jets, would be meaningless)."""
    mismatch = jet_mismatch(a, b)
    if mismatch:
        raise ArgumentError(mismatch)


def difference(tagger, other, task: Task | str | None = None, mistags: Sequence[float] = MISTAGS, *,
               n_boot: int = _roc.BOOTSTRAP_REPLICAS, seed: int = 0) -> dict:
    """``tagger`` − ``other`` on the same jets: the differences of the AUC and of the efficiencies at
    ``mistags``, each with its statistical error from a paired bootstrap (one Poisson count per jet for both
    taggers, :func:`deepjet_nb.kernels.roc.paired_bootstrap_errors`); ``n_boot`` 0 leaves the errors None.

    Returns ``{"auc": d, "auc_err": e, "eff_at_mistag": {"0.1": d, ...}, "eff_at_mistag_err": {...},
    "n_signal": n, "n_background": n}``, keyed like ``metrics.json``; None where either curve has no efficiency.
    Raises :class:`ArgumentError` when the two taggers do not hold the same jets in the same order
    (:func:`same_jets`), or as :func:`roc`.
    """
    same_jets(tagger, other)
    task = resolve_task(tagger, task)
    mine, theirs = roc(tagger, task), roc(other, task)
    out = {"auc": mine.auc - theirs.auc, "auc_err": None,
           "eff_at_mistag": {f"{m:g}": _defined(mine.eff_at(m) - theirs.eff_at(m)) for m in mistags},
           "eff_at_mistag_err": {f"{m:g}": None for m in mistags},
           "n_signal": mine.n_signal, "n_background": mine.n_background}
    if n_boot:
        scores_a, is_signal, weights, _ = finite_task_jets(other, task)
        scores_b, _, _, _ = finite_task_jets(tagger, task)
        auc_err, eff_err = _roc.paired_bootstrap_errors(scores_a, scores_b, is_signal, weights,
                                                        np.asarray(mistags, dtype=float), n_boot=n_boot, seed=seed)
        reach = min(mine.max_mistag, theirs.max_mistag)
        out["auc_err"] = auc_err
        out["eff_at_mistag_err"] = {f"{m:g}": (float(e) if m <= reach else None) for m, e in zip(mistags, eff_err)}
    return out


def seed_spread(taggers: Sequence, *, tasks: Sequence[Task | str] | None = None,
                mistags: Sequence[float] = MISTAGS) -> dict:
    """The spread between trainings of one tagger with different seeds, predicted on the same test jets.

    ``taggers``: one tagger per training seed (at least two). Returns ``{task: {"auc_seed_std": s,
    "eff_at_mistag_seed_std": {"0.1": s, ...}, "n_seeds": n}}``: standard deviations (ddof = 1) over the seeds,
    for the tasks (default: the first tagger's) that every seed can score and has jets for. Raises
    :class:`ArgumentError` for fewer than two taggers or taggers of different jets (:func:`same_jets`).
    """
    if len(taggers) < 2:
        raise ArgumentError(f"seed_spread: needs the predictions of at least two seeds, got {len(taggers)}")
    for other in taggers[1:]:
        same_jets(taggers[0], other)
    out = {}
    for task in _tasks_of(taggers[0], tasks):
        if not all(_evaluable(t, task) for t in taggers):
            continue
        curves = [roc(t, task) for t in taggers]
        effs = np.array([[c.eff_at(m) for m in mistags] for c in curves])
        out[task.name] = {
            "auc_seed_std": float(np.std([c.auc for c in curves], ddof=1)),
            "eff_at_mistag_seed_std": {f"{m:g}": float(s) for m, s in zip(mistags, np.std(effs, axis=0, ddof=1))},
            "n_seeds": len(taggers),
        }
    return out


# ---------------------------------------------------------------------------------------------------------
# metrics


def task_metrics(tagger, task: Task | str | None = None, mistags: Sequence[float] = MISTAGS, *,
                 n_boot: int = _roc.BOOTSTRAP_REPLICAS, seed: int = 0) -> dict:
    """One task entry of metrics.json: ``{"auc", "auc_err", "eff_at_mistag": {"0.1": x, ...},
    "eff_at_mistag_err": {...}, "n_signal", "n_background"}``; errors from :func:`roc_errors` (None with
    ``n_boot`` 0), efficiencies None beyond the curve's reach."""
    task = resolve_task(tagger, task)
    curve = roc(tagger, task)
    effs = {f"{m:g}": _defined(curve.eff_at(m)) for m in mistags}
    entry = {"auc": curve.auc, "auc_err": None, "eff_at_mistag": effs, "eff_at_mistag_err": {k: None for k in effs},
             "n_signal": curve.n_signal, "n_background": curve.n_background}
    if n_boot:
        entry["auc_err"], entry["eff_at_mistag_err"] = _errors(tagger, task, mistags, n_boot, seed, curve.max_mistag)
    return entry


def compute_metrics(taggers: Sequence, *, tasks: Sequence[Task | str] | None = None,
                    mistags: Sequence[float] = MISTAGS, n_boot: int = _roc.BOOTSTRAP_REPLICAS,
                    differences: Sequence[Sequence[str]] = (), seeds: Mapping[str, Sequence] | None = None,
                    details: Callable[[object, Task], dict] | None = None) -> dict:
    """The metrics.json dictionary: ``{tagger: {task: entry}}`` with the entries of :func:`task_metrics`.

    ``tasks``: names or :class:`Task` objects (default: each tagger's own ``tasks``); a task the tagger cannot
    score or without signal or background jets is left out for that tagger (:func:`skipped_tasks` says which).
    ``details(tagger, task)`` adds keys to each entry. ``seeds``: tagger name → the same tagger trained with
    other seeds (predicted on the same jets); adds ``auc_seed_std``, ``eff_at_mistag_seed_std`` and ``n_seeds``
    (the named tagger counts as one of the seeds, :func:`seed_spread`). ``differences``: pairs ``(a, b)`` of
    tagger names; each adds ``metrics[a][task]["minus"][b]``, a − b with its paired-bootstrap error
    (:func:`difference`). Raises :class:`ArgumentError` for a name that is not among ``taggers`` or taggers
    of different jets.
    """
    metrics = {}
    for tagger in taggers:
        entry = {}
        for task in evaluable_tasks(tagger, tasks):
            entry[task.name] = task_metrics(tagger, task, mistags, n_boot=n_boot)
            if details is not None:
                entry[task.name].update(details(tagger, task))
        metrics[tagger.name] = entry
    by_name = {t.name: t for t in taggers}
    for name, others in (seeds or {}).items():
        tagger = _named(by_name, name, "seeds")
        for task, spread in seed_spread([tagger, *others], tasks=_tasks_of(tagger, tasks), mistags=mistags).items():
            metrics[name][task].update(spread)
    for pair in differences:
        a, b = (_named(by_name, name, "differences") for name in pair)
        for task in metrics[a.name]:
            if task in metrics[b.name]:
                minus = metrics[a.name][task].setdefault("minus", {})
                minus[b.name] = difference(a, b, resolve_task(a, task), mistags, n_boot=n_boot)
                minus[b.name].update(_difference_seed_spread({a.name: metrics[a.name][task],
                                                              b.name: metrics[b.name][task]}))
    return metrics


def _difference_seed_spread(entries: Mapping[str, dict]) -> dict:
    """The seed spread of a difference a − b, beside its paired error: the spreads of the two taggers (``entries``:
    name → task entry) added in quadrature, their trainings being independent. A tagger trained with one seed has
    no measured spread and adds nothing, so ``seed_std_of`` names the taggers whose spread is in it; {} when
    neither has one."""
    seeded = {name: e for name, e in entries.items() if "n_seeds" in e}
    if not seeded:
        return {}
    keys = next(iter(seeded.values()))["eff_at_mistag_seed_std"]
    return {"auc_seed_std": math.hypot(*(e["auc_seed_std"] for e in seeded.values())),
            "eff_at_mistag_seed_std": {k: math.hypot(*(e["eff_at_mistag_seed_std"][k] for e in seeded.values()))
                                       for k in keys},
            "seed_std_of": sorted(seeded)}


def skipped_tasks(taggers: Sequence,
                  tasks: Sequence[Task | str] | Callable[[object], Sequence] | None = None) -> list[str]:
    """One line per (tagger, task) that :func:`compute_metrics` leaves out, saying why: the tagger has no score
    for it, or its jets lack the signal or the background class. ``tasks``: as in :func:`compute_metrics`, or a
    function of the tagger giving its tasks."""
    notes = []
    for tagger in taggers:
        for task in _tasks_of(tagger, tasks(tagger) if callable(tasks) else tasks):
            if task.score_name not in tagger.scores:
                notes.append(f"{tagger.name}: skipped {task.name} ({task.missing_score(tagger)})")
                continue
            missing = [c for c in (task.signal, task.background) if not tagger.truth[c].any()]
            if missing:
                notes.append(f"{tagger.name}: skipped {task.name} (no {' and no '.join(missing)} jets)")
    return notes


def evaluable_tasks(tagger, tasks: Sequence[Task | str] | None = None) -> list[Task]:
    """The tasks of ``tasks`` (default: the tagger's own) that ``tagger`` can score and has signal and
    background jets for."""
    return [task for task in _tasks_of(tagger, tasks) if _evaluable(tagger, task)]


def _tasks_of(tagger, tasks):
    return [resolve_task(tagger, t) for t in (tagger.tasks.values() if tasks is None else tasks)]


def _evaluable(tagger, task):
    return task.score_name in tagger.scores and has_jets(tagger, task)


def _named(by_name, name, what):
    if name not in by_name:
        raise ArgumentError(f"{what}: no tagger {name!r} among {list(by_name)}")
    return by_name[name]


def _defined(value):
    """None for an undefined (NaN) value: JSON null, never a made-up number."""
    return None if value is None or not np.isfinite(value) else float(value)
