"""A gradient-boosted-tree reference tagger: scikit-learn's ``HistGradientBoostingClassifier`` on the inputs of
a converted dataset, flattened (the DeepCSV dataset: 66 numbers per jet), with the dataset's classes.

A network that loses to boosted trees on its own inputs is under-trained, so the demo trains this next to the
networks (``bdt_deepcsv``). It follows the networks' conventions: the seeded train/validation split of
:class:`deepjet_nb.train.Trainer` with the same ``seed`` and ``val_fraction`` (the same validation jets are held
out), the per-jet weights of the dataset, early stopping on the validation loss of that split, and the same
validation metrics (:func:`deepjet_nb.validation.validation_metrics`). The output is a run directory
(docs/formats.md §3) with ``model.joblib`` in place of the Keras files, so :func:`predict_bdt` writes the
prediction file of ``deepjet-nb predict`` (docs/formats.md §4) and evaluation treats it like any tagger::

    from deepjet_nb.bdt import train_bdt, predict_bdt
    result = train_bdt("data/deepcsv", "runs/bdt", seed=1)   # result["val_loss"], result["n_iter"]
    predict_bdt("runs/bdt", ["test.root"], "predictions/bdt_deepcsv.root")
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._args import integer, number
from ._atomic import atomic_path, check_output
from .errors import ArgumentError, RunError
from .run import TRAIN_CONFIG, Run, open_run

__all__ = ["BDT_MODEL", "DEFAULTS", "train_bdt", "load_bdt", "predict_bdt", "BdtModel"]

BDT_MODEL = "model.joblib"
MODEL_NAME = "bdt"  # the "model" of its train_config.json
# scikit-learn's OpenMP threads spin while they wait for each other: on cores shared with other jobs two threads
# were 20 times slower than one (2-core box under load), so the trees grow on one thread unless told otherwise.
THREADS = 1
# Hyper-parameters (the recipe search, deepjet_nb.recipes, chooses learning_rate and max_leaf_nodes);
# max_iter is a cap: early stopping after n_iter_no_change iterations without a lower validation loss.
DEFAULTS = {"learning_rate": 0.1, "max_leaf_nodes": 31, "max_iter": 1000, "n_iter_no_change": 20,
            "l2_regularization": 0.0}


def train_bdt(data, out, *, seed: int = 0, val_fraction: float = 0.2, train_fraction: float = 1.0,
              weights: str = "loss", threads: int = THREADS, **hyper) -> dict:
    """Train the BDT on the converted dataset ``data`` into the run directory ``out`` (created; it must not hold
    a run yet).

    ``seed`` and ``val_fraction`` choose the validation jets as :class:`~deepjet_nb.train.Trainer` does with
    the same values, and ``train_fraction`` the same share of the training jets; ``weights``: how the training
    jets use their pT–η weights, as in training (:func:`deepjet_nb.batches.draw_by_weight`); ``threads``: OpenMP threads
    of scikit-learn (:data:`THREADS`); ``hyper``: keys of :data:`DEFAULTS`. Returns what is also written to
    ``train_config.json`` under ``"result"``: ``n_iter`` (boosting iterations kept), ``seconds`` (wall) and
    ``cpu_s``, and the validation metrics of the final model (``val_loss``, ``val_accuracy``, ``val_auc``,
    ``val_beff_at_mistag_0.01``). Raises :class:`ArgumentError` for an unknown or bad hyper-parameter,
    :class:`RunError` when ``out`` holds a run, :class:`~deepjet_nb.errors.DatasetError` for a bad dataset.
    """
    import joblib
    from sklearn.ensemble import HistGradientBoostingClassifier

    from .dataset import open_dataset
    from .batches import check_train_fraction, draw_by_weight, split_jets
    from .validation import split_record, validation_metrics

    settings = _settings(hyper)
    seed = integer(seed, "seed", "train_bdt")
    if not 0 < number(val_fraction, "val_fraction", "train_bdt") < 1:
        raise ArgumentError(f"train_bdt: val_fraction must lie in (0, 1): early stopping needs validation jets, "
                            f"got {val_fraction}")
    train_fraction = check_train_fraction(train_fraction, "train_bdt")
    out = check_output(out, directory=True, what="run directory")
    run = Run(out)
    if run.exists:
        raise RunError(f"{out}: already holds a run ({TRAIN_CONFIG}); choose another directory or delete it")
    dataset = open_dataset(data)
    dataset.verify()
    train, validation = split_jets(dataset.shard_jets(), val_fraction, seed, train_fraction)
    split = draw_by_weight(dataset, train, weights, seed), validation
    (x, y, w), (x_val, y_val, w_val) = (_jets(dataset, part) for part in split)
    if weights != "loss":
        w = np.ones_like(w)  # drawn by their weights: each drawn jet weighs 1
    start, cpu = time.perf_counter(), time.process_time()
    classifier = HistGradientBoostingClassifier(
        loss="log_loss", learning_rate=settings["learning_rate"], max_leaf_nodes=settings["max_leaf_nodes"],
        max_iter=settings["max_iter"], l2_regularization=settings["l2_regularization"], early_stopping=True,
        scoring="loss", n_iter_no_change=settings["n_iter_no_change"], random_state=seed)
    seen = np.isin(y_val, np.unique(y))  # scikit-learn cannot score a class it never trained on (tiny samples)
    with _threads(threads):
        classifier.fit(x, y, sample_weight=w, X_val=x_val[seen], y_val=y_val[seen], sample_weight_val=w_val[seen])
    model = BdtModel(classifier, dataset.inputs, len(dataset.classes), threads)
    probs = model.predict_flat(x_val)
    result = {"n_iter": int(classifier.n_iter_), "seconds": round(time.perf_counter() - start, 1),
              "cpu_s": round(time.process_time() - cpu, 1),
              **validation_metrics(probs, y_val.astype(np.int64), w_val.astype(np.float64), dataset.manifest)}
    config = {"model": MODEL_NAME, "data": str(data), "seed": seed, "val_fraction": val_fraction,
              "train_fraction": train_fraction, "weights": weights, "hyper": settings,
              "shards": dataset.shard_names, "data_config_hash": dataset.manifest.config_hash, "result": result}
    # model first, train_config.json last: its presence marks a finished BDT run
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / BDT_MODEL) as tmp:
        joblib.dump(classifier, tmp)
    run.create(dataset.manifest, config, split=split_record(dataset, split, train_fraction, weights))
    run.log(f"bdt: {settings} -> {result}")
    return result


class BdtModel:
    """A trained BDT with the interface :func:`deepjet_nb.predict.predict` uses of a Keras model:
    ``predict(x)`` and ``predict_on_batch(x)`` with ``x`` a dict of input-group arrays (``groups``: the
    manifest's, in order), returning (n, n_classes) probabilities."""

    def __init__(self, classifier, inputs: dict, n_classes: int, threads: int = THREADS):
        self.classifier, self.groups, self.n_classes, self.threads = classifier, dict(inputs), n_classes, threads

    def predict(self, x: dict, batch_size=None, verbose=0) -> np.ndarray:
        return self.predict_flat(_flatten(x, self.groups))

    def predict_on_batch(self, x: dict) -> np.ndarray:
        return self.predict(x)

    def predict_flat(self, flat: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(flat), self.n_classes), dtype=np.float64)
        # a class absent from the training jets gets no column from scikit-learn: probability 0
        with _threads(self.threads):
            probs[:, self.classifier.classes_.astype(int)] = self.classifier.predict_proba(flat)
        return probs


def load_bdt(run_dir) -> BdtModel:
    """The :class:`BdtModel` of a run directory written by :func:`train_bdt`. Raises :class:`RunError` naming
    the file when it is missing or not a BDT."""
    import joblib

    run = open_run(run_dir)
    path = run.file(BDT_MODEL)
    if not path.is_file():
        raise RunError(f"{run.path}: no {BDT_MODEL} (not a BDT run, or training did not finish)")
    try:
        classifier = joblib.load(path)
    except Exception as err:  # unpickling raises many kinds
        raise RunError(f"{path}: cannot load the BDT ({type(err).__name__}: {err})") from None
    return BdtModel(classifier, run.inputs, len(run.classes))


def predict_bdt(run_dir, inputs: Sequence[str | os.PathLike], out: str | os.PathLike, **kwargs) -> Path:
    """The prediction file of the BDT run ``run_dir`` on ``inputs`` (:func:`deepjet_nb.predict.predict` with
    the BDT as its model; ``kwargs`` as there, in this process)."""
    from .predict import predict

    return predict(run_dir, inputs, out, model=load_bdt(run_dir), **kwargs)


def _threads(n: int):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=integer(n, "threads", "bdt", minimum=1), user_api="openmp")


def _settings(hyper: dict) -> dict:
    unknown = sorted(set(hyper) - set(DEFAULTS))
    if unknown:
        raise ArgumentError(f"train_bdt: unknown hyper-parameters {unknown} (known: {sorted(DEFAULTS)})")
    settings = {**DEFAULTS, **hyper}
    for key in ("max_iter", "n_iter_no_change"):
        integer(settings[key], key, "train_bdt", minimum=1)
    integer(settings["max_leaf_nodes"], "max_leaf_nodes", "train_bdt", minimum=2)
    number(settings["learning_rate"], "learning_rate", "train_bdt", positive=True)
    number(settings["l2_regularization"], "l2_regularization", "train_bdt", minimum=0)
    return settings


def _jets(dataset, indices: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened inputs, labels and weights of the jets ``indices`` (shard → jet indices) of ``dataset``."""
    xs, ys, ws = [], [], []
    for name, idx in indices.items():
        arrays = dataset.shard(name, mmap=True)
        xs.append(_flatten({g: arrays[g][idx] for g in dataset.inputs}, dataset.inputs))
        ys.append(np.asarray(arrays["label"][idx]))
        ws.append(np.asarray(arrays["weight"][idx]))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def _flatten(x: dict, inputs: dict) -> np.ndarray:
    """The input groups of one batch side by side, each flattened per jet, in the manifest's group order."""
    return np.concatenate([np.asarray(x[g], dtype=np.float32).reshape(len(x[g]), -1) for g in inputs], axis=1)
