"""Tasks, taggers, ROC curves and working points: the data model of the evaluation core
(:mod:`deepjet_nb.performance`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArgumentError
from ..kernels import roc as _roc

# Default mistags of the efficiencies: the loose / medium / tight working points of CMS b tagging.
MISTAGS = (0.1, 0.01, 0.001)


@dataclass(frozen=True)
class Task:
    """A comparison: truth class ``signal`` against truth class ``background``, separated by the tagger score
    ``score`` (default: the score named like the task)."""

    name: str
    signal: str
    background: str
    score: str = ""

    @property
    def score_name(self) -> str:
        return self.score or self.name

    def missing_score(self, tagger) -> str:
        """Why ``tagger`` has no score for this task (a note of :func:`skipped_tasks`)."""
        return f"no score {self.score_name!r}"


@dataclass(frozen=True)
class Tagger:
    """Per-jet scores of one tagger with the jets' truth, weights and spectators.

    ``scores`` maps score names to float arrays (n,), larger = more signal-like (``-inf``: rejected at every
    cut); ``truth`` maps class names to bool masks (n,); ``weights`` is None (unit weights) or float (n,);
    ``spectators`` maps per-jet variables (e.g. ``jet_pt``) to arrays (n,); ``tasks`` names the tasks the
    tagger is evaluated on by default. Every function here reads these attributes only, so any object that
    has them is a tagger too (the flavour tagger of :mod:`deepjet_nb.evaluate` keeps its discriminants and
    flavour codes and shows them under these names).
    """

    name: str
    scores: Mapping[str, np.ndarray]
    truth: Mapping[str, np.ndarray]
    weights: np.ndarray | None = None
    spectators: Mapping[str, np.ndarray] = field(default_factory=dict)
    tasks: Mapping[str, Task] = field(default_factory=dict)
    source: str | None = None

    def __len__(self) -> int:
        return len(next(iter(self.truth.values()))) if self.truth else 0

    def jets(self, task: Task | str) -> tuple[np.ndarray, np.ndarray]:
        """The task's signal and background masks over all jets."""
        return task_masks(self, task)

    def has_jets(self, task: Task | str) -> bool:
        return has_jets(self, task)


def resolve_task(tagger, task: Task | str | None) -> Task:
    """``task`` itself, or the task of ``tagger.tasks`` named so (None: the tagger's first task). Raises
    :class:`ArgumentError` for an unknown name, listing the known ones."""
    if isinstance(task, Task):
        return task
    known = tagger.tasks
    if task is None and known:
        return next(iter(known.values()))
    if task not in known:
        raise ArgumentError(f"{tagger.name}: unknown task {task!r}; one of {list(known)}")
    return known[task]


def task_masks(tagger, task: Task | str) -> tuple[np.ndarray, np.ndarray]:
    """Signal and background masks of ``task`` over all jets of ``tagger``."""
    task = resolve_task(tagger, task)
    return tagger.truth[task.signal], tagger.truth[task.background]


def has_jets(tagger, task: Task | str) -> bool:
    """Whether ``tagger`` holds both signal and background jets of ``task``."""
    signal, background = task_masks(tagger, task)
    return bool(signal.any() and background.any())


def task_jets(tagger, task: Task | str, windows: Mapping[str, tuple[float, float] | None] | None = None):
    """``(scores, is_signal, weights)`` of the task's signal and background jets whose spectators lie in
    ``windows`` (spectator name → half-open ``[low, high)``, None: no cut); ``weights`` is None for unit
    weights. Raises :class:`ArgumentError` when the tagger has no score for the task, a window names an unknown
    spectator, or the selection leaves no signal or no background jet."""
    task = resolve_task(tagger, task)
    if task.score_name not in tagger.scores:
        raise ArgumentError(f"{tagger.name}: no score for {task.name} ({task.missing_score(tagger)})")
    signal, background = task_masks(tagger, task)
    use = signal | background
    for variable, window in (windows or {}).items():
        if window is not None:
            values = _spectator(tagger, variable)
            use = use & (values >= window[0]) & (values < window[1])
    is_signal = signal[use]
    n_sig = int(np.count_nonzero(is_signal))
    n_bkg = len(is_signal) - n_sig
    if n_sig == 0 or n_bkg == 0:
        where = "".join(f" in {k} [{w[0]:g}, {w[1]:g})" for k, w in (windows or {}).items() if w is not None)
        raise ArgumentError(f"{tagger.name}, {task.name}: {n_sig} {task.signal} and {n_bkg} {task.background} "
                            f"jets{where}: need both")
    weights = None if tagger.weights is None else tagger.weights[use]
    return tagger.scores[task.score_name][use], is_signal, weights


def _spectator(tagger, variable):
    if variable not in tagger.spectators:
        raise ArgumentError(f"{tagger.name}: no spectator {variable!r} to select on (has {list(tagger.spectators)})")
    return tagger.spectators[variable]


def finite_task_jets(tagger, task, windows=None):
    """:func:`task_jets` with scores made finite (:func:`finite_scores`) and whether any jet was rejected."""
    scores, is_signal, weights = task_jets(tagger, task, windows)
    scores, rejected = finite_scores(scores)
    return scores, is_signal, weights, rejected


def finite_scores(scores: np.ndarray) -> tuple[np.ndarray, bool]:
    """``scores`` with ``-inf`` (rejected at every cut) replaced by a finite value below all others, as the ROC
    kernel takes finite scores only; and whether any jet was rejected."""
    rejected = ~np.isfinite(scores)
    if not rejected.any():
        return scores, False
    finite = scores[~rejected]
    sentinel = (float(finite.min()) - 1.0) if finite.size else 0.0
    return np.where(rejected, sentinel, scores), True


# ---------------------------------------------------------------------------------------------------------
# curves and working points


@dataclass(frozen=True)
class WorkingPoint:
    """A cut ``score >= cut`` chosen for ``target_mistag``; ``efficiency``/``mistag`` are what it gives."""

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
class RocCurve:
    """ROC curve of one tagger for one task (:func:`roc`): :func:`deepjet_nb.kernels.roc.roc_curve`'s arrays,
    without the last point when the tagger rejects some jets at every cut (the curve then ends at
    :attr:`max_mistag` < 1). ``auc`` is that of the whole curve, rejected jets tied at the lowest score."""

    tagger: str
    task: str
    sig_eff: np.ndarray
    bkg_eff: np.ndarray
    thresholds: np.ndarray
    n_signal: int
    n_background: int
    signal: str
    background: str
    auc: float

    @property
    def max_mistag(self) -> float:
        """The largest background efficiency a cut reaches (1 unless jets are rejected at every cut)."""
        return float(self.bkg_eff[-1])

    def eff_at(self, mistag):
        """Signal efficiency at background efficiency ``mistag`` (interpolated; scalar or array); NaN above
        :attr:`max_mistag`."""
        targets = np.asarray(mistag, dtype=np.float64)
        above = targets > self.max_mistag
        if not above.any():
            return _roc.eff_at_mistag(self.sig_eff, self.bkg_eff, mistag)
        inside = np.where(above & (targets <= 1.0), self.max_mistag, targets)  # > 1 still raises in the kernel
        eff = np.where(above, np.nan, _roc.eff_at_mistag(self.sig_eff, self.bkg_eff, inside))
        return float(eff) if eff.ndim == 0 else eff

    def mistag_at(self, eff):
        """Background efficiency at signal efficiency ``eff`` (the curve read the other way round)."""
        return _roc.eff_at_mistag(self.bkg_eff, self.sig_eff, eff)

    def threshold_at(self, mistag) -> float:
        """Loosest cut with background efficiency <= ``mistag``
        (:func:`deepjet_nb.kernels.roc.threshold_at_mistag`)."""
        return _roc.threshold_at_mistag(self.bkg_eff, self.thresholds, mistag)

    def working_point(self, mistag: float, name: str | None = None) -> WorkingPoint:
        """The loosest cut with background efficiency <= ``mistag`` and the efficiencies it really gives."""
        self.threshold_at(mistag)  # validates mistag
        idx = max(int(np.searchsorted(self.bkg_eff, mistag, side="right")) - 1, 0)
        return WorkingPoint(name=name or f"{mistag:g}", target_mistag=float(mistag), cut=float(self.thresholds[idx]),
                            efficiency=float(self.sig_eff[idx]), mistag=float(self.bkg_eff[idx]))


def roc(tagger, task: Task | str | None = None, *,
        windows: Mapping[str, tuple[float, float] | None] | None = None) -> RocCurve:
    """ROC curve of ``tagger`` for ``task`` (a :class:`Task` or the name of one of ``tagger.tasks``; None: the
    first), on the jets whose spectators lie in ``windows`` (see :func:`task_jets`). Raises
    :class:`ArgumentError` as :func:`task_jets`."""
    task = resolve_task(tagger, task)
    scores, is_signal, weights, rejected = finite_task_jets(tagger, task, windows)
    sig_eff, bkg_eff, thresholds = _roc.roc_curve(scores, is_signal, weights)
    auc = _roc.auc(sig_eff, bkg_eff)
    if rejected:  # the sentinel's point, last (lowest score): no cut selects the rejected jets
        sig_eff, bkg_eff, thresholds = sig_eff[:-1], bkg_eff[:-1], thresholds[:-1]
    n_sig = int(np.count_nonzero(is_signal))
    return RocCurve(tagger.name, task.name, sig_eff, bkg_eff, thresholds, n_sig, len(is_signal) - n_sig,
                    task.signal, task.background, auc)


def working_points(tagger, mistags: Mapping[str, float], task: Task | str | None = None) -> dict[str, WorkingPoint]:
    """Working points: for each name → target mistag, the loosest cut on the task's score whose background
    efficiency stays at or below the target."""
    curve = roc(tagger, task)
    return {name: curve.working_point(m, name) for name, m in mistags.items()}
