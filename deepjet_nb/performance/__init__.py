"""Tagger performance: the evaluation core shared by flavour tagging (:mod:`deepjet_nb.evaluate`), boosted
tagging (:mod:`deepjet_nb.boosted`), scans and widgets.

- A :class:`Tagger` is per-jet scores with the jets' truth classes (bool masks), optional per-jet weights (None:
  unit weights) and spectators (per-jet variables such as jet pT that identify the jets and define windows).
- A :class:`Task` is a (signal, background) pair of truth classes and the score that separates them.
- :func:`roc` gives a :class:`RocCurve` (efficiencies, AUC, working points); :func:`roc_errors` the statistical
  errors by a seeded bootstrap over the jets; :func:`difference` tagger − other on the same jets with a paired
  bootstrap (:func:`same_jets` checks that they are the same jets); :func:`seed_spread` the spread over training
  seeds; :func:`compute_metrics` the metrics.json dictionary; :func:`summary_table` a text table of it.

Scores may hold ``-inf`` for a jet that a tagger rejects at every cut (a cut-based baseline outside its mass
window): its ROC curve then ends where the loosest real cut does (:attr:`RocCurve.max_mistag`), and efficiencies
beyond that are undefined (NaN; ``null`` in metrics.json), never interpolated.

>>> import numpy as np
>>> from deepjet_nb.performance import Tagger, Task, roc
>>> task = Task("sig_vs_bkg", "sig", "bkg", score="s")
>>> tagger = Tagger("t", scores={"s": np.array([0.9, 0.8, 0.3, 0.1])},
...                 truth={"sig": np.array([1, 1, 0, 0], bool), "bkg": np.array([0, 0, 1, 1], bool)})
>>> roc(tagger, task).auc
1.0
"""

from .commands import (SkippedTaskWarning, class_probabilities, evaluation_output, named_paths,
                       noting_skipped_tasks, read_prediction_arrays, tagger_names, warn_skipped)
from .curves import (MISTAGS, RocCurve, Tagger, Task, WorkingPoint, finite_scores, finite_task_jets, has_jets,
                     resolve_task, roc, task_jets, task_masks, working_points)
from .metrics import (compute_metrics, difference, evaluable_tasks, jet_mismatch, roc_errors, same_jets, seed_spread,
                      skipped_tasks, task_metrics)
from .tables import format_value, paired_verdict, summary_table

__all__ = [
    "MISTAGS", "Task", "Tagger", "RocCurve", "WorkingPoint", "SkippedTaskWarning",
    "resolve_task", "task_masks", "has_jets", "task_jets", "finite_scores", "finite_task_jets", "roc", "roc_errors",
    "working_points", "same_jets", "jet_mismatch", "evaluable_tasks", "difference", "seed_spread", "task_metrics",
    "compute_metrics", "skipped_tasks", "summary_table", "paired_verdict", "format_value", "named_paths",
    "noting_skipped_tasks",
    "warn_skipped", "evaluation_output", "read_prediction_arrays", "class_probabilities", "tagger_names",
]
