"""Prediction: a training run + jets → a prediction ROOT file (docs/formats.md §4).

Inputs are ROOT ntuples, converted on the fly chunk by chunk with the run's data config and the
normalisation of the training dataset (:func:`deepjet_nb.jets.iter_arrays`: same selection, same class
labels, no resampling), or converted datasets made with the same config and normalisation (e.g. held-out
shards of the training dataset). Memory is bounded by ``step_size`` jets whatever the input size. The output
is written under a temporary name and moved into place when complete.

Output tree ``tree``, one entry per jet: ``prob_is<Class>`` (float32) per class, the training truth
``truth_is<Class>`` (int32 0/1) per class, and the spectators of the data config under their own names
(``jet_pt``, ``jet_eta``, ``trackCounting_sip3dSig2`` as float32, the raw flavour flags ``isB``, ``isBB``, ...
as int32). The class truth carries a prefix because ``is<Class>`` would collide with a raw flag of a different
meaning (DeepCSV's class B is isB + isLeptonicB + isLeptonicB_C). The file also holds ``model``, a JSON string
saying which model predicted (:func:`prediction_model`): by default the best checkpoint, the one with the lowest
validation loss (``which="last"`` or ``"final"``: the last finished epoch's weights).

Example::

    from deepjet_nb.predict import predict
    predict("runs/deepjet", ["ttbar_test.root"], "predictions/deepjet.root")

Command line: ``deepjet-nb predict --run RUNDIR --out FILE.root INPUTS...``.
TensorFlow/Keras are imported only when a model is loaded.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ._args import integer
from ._atomic import atomic_path, check_output, remove_stale
from .dataset import MANIFEST
from .errors import ArgumentError, DatasetError, DeepJetError, RunError
from .jets import DEFAULT_STEP_SIZE, iter_arrays
from .progress import jet_bar
from .rootio import count_entries, input_files, input_path
from .run import Run, open_run
from .schema import CUSTOM

__all__ = ["predict", "infer", "prediction_model", "describe_choice", "TREE", "MODEL_KEY", "PROB_PREFIX", "TRUTH_PREFIX",
           "register_cli"]

# The prediction file (docs/formats.md §4): this module writes it, deepjet_nb.evaluate reads it.
TREE = "tree"
PROB_PREFIX = "prob_is"
# Class truth is "truth_is<Class>": a plain "is<Class>" would collide with the raw flag of the same name
# (DeepCSV class B = isB + isLeptonicB + isLeptonicB_C is not the raw isB; likewise BB and C).
TRUTH_PREFIX = "truth_is"
# A JSON string in the prediction file: which model file of which run predicted (Run.model_choice).
MODEL_KEY = "model"
DEFAULT_BATCH_SIZE = 1024


def predict(run_dir: str | os.PathLike | Run, inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
            model=None, which: str = "auto", shards: Sequence[str] | None = None, step_size: int = DEFAULT_STEP_SIZE,
            batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True, jobs: int = 1, scheduler=None) -> Path:
    """Run a trained model over ``inputs`` and write the prediction file ``out``.

    Inputs: ``run_dir`` a run directory (or a :class:`Run`); ``inputs`` ROOT ntuples and/or converted
    dataset directories; ``model`` an already loaded Keras model to use instead of the run's file; ``which``
    the run's model file otherwise (:meth:`deepjet_nb.run.Run.model_path`: "auto" = the best checkpoint, else the final
    model; recorded in the file, :func:`prediction_model`);
    ``shards`` restricts dataset inputs to these shard names; ``step_size`` jets per chunk;
    ``batch_size`` jets per forward pass. Returns ``out`` as a Path.

    ``jobs`` > 1 (local processes) or ``scheduler`` (a Dask address or ``distributed.Client``) predict the
    inputs file by file on a :class:`deepjet_nb.parallel.Runner`, each worker loading the run's model once;
    the file holds the same jets and numbers in the same order as with ``jobs=1``, which streams in this process
    (memory bounded by ``step_size``; a worker holds one input file's predictions).

    Raises :class:`RunError` (run directory), :class:`InputFileError` (ROOT input: file, tree or branch),
    :class:`DatasetError` (a dataset made with other classes, inputs or normalisation than the run),
    :class:`ArgumentError` for no inputs or bad sizes. Nothing is left at ``out`` on failure.
    """
    import uproot

    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    inputs = input_files(inputs, "predict")
    step_size = integer(step_size, "step_size", "predict", minimum=1)
    batch_size = integer(batch_size, "batch_size", "predict", minimum=1)
    out = check_output(out, what="prediction file")
    sources = [_source(p, run) for p in inputs]
    shards = _check_shards(shards, [path for kind, path, _ in sources if kind == "dataset"])
    parallel = scheduler is not None or integer(jobs, "jobs", "predict", minimum=1) > 1
    if parallel and model is not None:
        raise ArgumentError("predict: a model object cannot be sent to worker processes; leave model=None (each "
                            "worker loads the run's model) or use jobs=1")
    model_file = run.model_path(which) if model is None else None
    choice = {"run": str(run.path.resolve()), **(run.model_choice(which) if model is None else {"which": "object"})}
    remove_stale(out.parent, out.name)  # temporaries of a run killed with SIGKILL
    if parallel:
        items = [(kind, str(path)) for kind, path, _ in sources]
        args = (str(run.path), which, shards, step_size, batch_size)
        from .parallel import Runner

        with Runner(jobs, scheduler, len(items), what="predict") as runner, atomic_path(out) as tmp, \
                uproot.recreate(tmp) as file:
            writer = _TreeWriter(file, run)
            for (_, path), ok, value in runner.map(predict_file, items, args, desc="predicting", progress=progress,
                                                   ordered=True, window=runner.jobs):
                if not ok:
                    raise DeepJetError(f"predict: {value}")
                if value is not None:
                    writer.extend(value)
            writer.close()
            file[MODEL_KEY] = json.dumps(choice)
        return out
    if model is None:
        model = run.load_model(which)
    _check_model(model, run, model_file)
    bar = jet_bar(progress, sum(n for _, _, n in sources))
    with atomic_path(out) as tmp, uproot.recreate(tmp) as file:
        writer = _TreeWriter(file, run)
        for kind, path, entries in sources:
            done = 0
            for branches in _file_branches(kind, path, run, model, shards, step_size, batch_size):
                writer.extend(branches)
                written = len(branches[f"{PROB_PREFIX}{run.classes[0]}"])
                bar.update(written)
                done += written
            # entries that failed the selection or are in no class are read too: the file is done
            bar.update(max(entries - done, 0))
        writer.close()
        file[MODEL_KEY] = json.dumps(choice)
    bar.close()
    return out


def prediction_model(path: str | os.PathLike) -> dict:
    """Which model wrote the prediction file ``path``: ``{"run", "which", "file", "epoch", "val_loss"}``
    (:meth:`deepjet_nb.run.Run.model_choice`; ``{}`` for files written before it was recorded)."""
    import uproot

    with uproot.open(path) as f:
        return json.loads(str(f[MODEL_KEY])) if MODEL_KEY in f else {}


def predict_file(source: tuple[str, str], run_dir: str, which: str, shards, step_size: int,
                 batch_size: int) -> dict[str, np.ndarray] | None:
    """Runner worker: the output branches of one input ``(kind, path)`` ("root" or "dataset"), with the run's
    model loaded once per worker process; None for an input without jets."""
    kind, path = source
    run = open_run(run_dir)
    model = _worker_model(run_dir, which)
    path = Path(path) if kind == "dataset" else input_path(path)
    parts = list(_file_branches(kind, path, run, model, shards, step_size, batch_size))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if parts else None


def infer(model, run: Run, chunk: dict[str, np.ndarray], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Class probabilities float32 ``(n, n_classes)`` of ``model`` (Keras, or the BDT's with the same
    ``predict_on_batch``) on a converted ``chunk`` (input groups of ``run``, as
    :func:`deepjet_nb.jets.iter_arrays` gives them), in forward passes of ``batch_size`` jets: the numbers
    :func:`predict` writes."""
    # A dict keyed by group feeds the inputs by name (the builders name each keras.Input after its group).
    x = {g: chunk[g] for g in run.inputs}
    n = len(chunk["label"])
    if n == 0:
        return np.zeros((0, len(run.classes)), np.float32)
    # Batches cut here, not by model.predict: for arrays Keras builds a tf.data pipeline whose parallel map
    # TensorFlow rewrites under op determinism (on after a training in the same process), logging a C++ error
    # line about it, a stderr box in a notebook. Every batch is padded to batch_size jets (the padding's outputs
    # dropped): one shape, so Keras traces its predict step once instead of once per chunk's last batch.
    parts = [model.predict_on_batch({g: _padded(v[i:i + batch_size], batch_size) for g, v in x.items()})[:n - i]
             for i in range(0, n, batch_size)]
    return np.asarray(np.concatenate(parts), dtype=np.float32)


def _padded(rows: np.ndarray, size: int) -> np.ndarray:
    """``rows`` with zero rows appended up to ``size``."""
    missing = size - len(rows)
    return rows if missing <= 0 else np.concatenate([rows, np.zeros((missing, *rows.shape[1:]), rows.dtype)])


@functools.lru_cache(maxsize=1)
def _worker_model(run_dir: str, which: str):
    run = open_run(run_dir)
    model = run.load_model(which)
    _check_model(model, run, run.model_path(which))
    return model


def _file_branches(kind, path, run, model, shards, step_size, batch_size) -> Iterator[dict[str, np.ndarray]]:
    """The output branches of one input, chunk by chunk (at most ``step_size`` jets each)."""
    chunks = (_root_chunks(path, run, step_size) if kind == "root" else _dataset_chunks(path, run, shards, step_size))
    for spectator_names, chunk in chunks:
        probs = infer(model, run, chunk, batch_size)
        yield _branches(run.classes, probs, chunk["label"], spectator_names, chunk["spectators"], path,
                        run.config.ntuple)


class _TreeWriter:
    """The output tree, made from the first chunk's branch types; an empty tree with every branch when no input
    had jets (a valid file that evaluate reads)."""

    def __init__(self, file, run):
        self.file, self.run, self.tree = file, run, None

    def extend(self, branches):
        if self.tree is None:
            self.tree = self.file.mktree(TREE, {k: v.dtype for k, v in branches.items()})
        self.tree.extend(branches)

    def close(self):
        if self.tree is None:
            names = self.run.config.spectators
            empty = _branches(self.run.classes, np.zeros((0, len(self.run.classes)), np.float32),
                              np.zeros(0, np.int8), list(names), np.zeros((0, len(names)), np.float32), self.run.path,
                              self.run.config.ntuple)
            self.file.mktree(TREE, {k: v.dtype for k, v in empty.items()})


# ---------------------------------------------------------------------------------------------------------
# private


def _source(path, run):
    """(kind, path, n_entries_or_0) of one input; validates datasets against the run."""
    if path.is_dir():
        from .dataset import open_dataset

        ds = open_dataset(path)
        where = path / MANIFEST
        if ds.classes != run.classes:
            raise DatasetError(f"{where}: classes {ds.classes} differ from the run's {run.classes}")
        if ds.inputs != run.inputs:
            raise DatasetError(f"{where}: input groups differ from the run's (converted with another config?)")
        if ds.normalisation != run.normalisation:
            raise DatasetError(f"{where}: normalisation differs from the run's training dataset; pass the ROOT "
                               f"files instead (they are converted with the run's normalisation)")
        weighting = ds.manifest.get("weighting") or {}
        if weighting.get("apply") == "resample" and weighting.get("mode") not in (None, "none"):
            warnings.warn(f"{path}: this dataset was resampled in (pT, eta) for training; predictions on it do "
                          f"not follow the physical jet composition (predict on the ROOT files for test data)",
                          stacklevel=3)
        return "dataset", path, ds.n_jets
    return "root", path, count_entries(path, run.config.tree)


def _root_chunks(path, run, step_size) -> Iterator[tuple[list, dict]]:
    names = list(run.config.spectators)
    for chunk in iter_arrays(path, run.config, run.normalisation, step_size=step_size):
        yield names, chunk


def _dataset_chunks(path, run, shards, step_size):
    from .dataset import open_dataset

    ds = open_dataset(path)
    names = ds.spectators
    wanted = ds.shard_names if shards is None else [s for s in shards if s in ds.shard_names]
    for name in wanted:
        arrays = ds.shard(name, mmap=True)
        for start in range(0, len(arrays["label"]), step_size):
            stop = start + step_size
            chunk = {g: np.asarray(arrays[g][start:stop]) for g in run.inputs}
            chunk["label"] = np.asarray(arrays["label"][start:stop])
            chunk["spectators"] = np.asarray(arrays["spectators"][start:stop])
            yield names, chunk


def _check_shards(shards, datasets):
    """The shard names to predict on, each of which must be in a dataset input (None: all shards)."""
    if shards is None:
        return None
    shards = [shards] if isinstance(shards, str) else list(shards)
    if not datasets:
        raise ArgumentError("predict: shards are chosen from converted-dataset inputs, but no input is a dataset")
    from .dataset import open_dataset

    known = {name for path in datasets for name in open_dataset(path).shard_names}
    unknown = [s for s in shards if s not in known]
    if unknown:
        raise ArgumentError(f"predict: no shard {unknown[0]!r} in {', '.join(map(str, datasets))} "
                            f"(shards: {', '.join(sorted(known))})")
    return shards


def _check_model(model, run, model_file=None):
    """The model must take the run's input groups with their shapes and give one output per class."""
    where = model_file or "the given model"
    width = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if width is not None and width != len(run.classes):
        raise RunError(f"{where}: the model has {width} outputs, the run has {len(run.classes)} "
                       f"classes {run.classes}")
    if getattr(model, "inputs", None):
        have = {t.name.split(":")[0]: list(t.shape[1:]) for t in model.inputs}
        want = {g: list(spec["shape"]) for g, spec in run.inputs.items()}
        if have != want:
            raise RunError(f"{where}: model inputs {have} differ from the run's {MANIFEST} inputs {want}")


def _branches(classes, probs, label, spectator_names, spectators, source, ntuple):
    missing = [s for s in ntuple.required_spectators if s not in spectator_names]
    if missing:
        raise DatasetError(f"{source}: spectator {missing[0]!r} is not in the data (spectators: "
                           f"{list(spectator_names)})")
    out = {}
    for i, cls in enumerate(classes):
        out[f"{PROB_PREFIX}{cls}"] = np.ascontiguousarray(probs[:, i])
    for i, cls in enumerate(classes):
        out[f"{TRUTH_PREFIX}{cls}"] = (label == i).astype(np.int32)
    integer = set(ntuple.truth_flags) | set(ntuple.truth_ints)
    clash = [name for name in spectator_names if name in out]
    if clash:
        raise DatasetError(f"{source}: spectator {clash[0]!r} has the name of an output branch")
    for j, name in enumerate(spectator_names):
        column = np.asarray(spectators[:, j])
        out[name] = column.astype(np.int32) if name in integer else column.astype(np.float32)
    # evaluation reads jet_pt and jet_eta: a layout of one's own names its pT and eta otherwise (Jet_pt, fj_pt)
    for alias, name in (("jet_pt", ntuple.pt_branch), ("jet_eta", ntuple.eta_branch)):
        if alias not in out and name in out and ntuple.name == CUSTOM:
            out[alias] = out[name]
    return out


# ---------------------------------------------------------------------------------------------------------
# command line


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb predict``."""
    p = subparsers.add_parser(
        "predict", help="run a trained model over ROOT ntuples or a converted dataset",
        description="Write a prediction ROOT file (tree 'tree': prob_is<Class>, truth_is<Class>, spectators) from a "
                    "training run and input jets. ROOT inputs are converted on the fly with the run's data "
                    "config and normalisation.")
    p.add_argument("inputs", nargs="+", metavar="INPUTS", help="ROOT ntuples (paths, globs, root:// URLs) and/or converted dataset directories")
    p.add_argument("--run", required=True, metavar="RUNDIR", help="training run directory")
    p.add_argument("--out", required=True, metavar="FILE.root", help="prediction file to write")
    p.add_argument("--model", default="auto", metavar="WHICH",
                   help="best, final, last or a .keras path relative to the run (default: the best checkpoint, "
                        "lowest validation loss; last/final: the last finished epoch)")
    p.add_argument("--shards", nargs="+", default=None, metavar="NAME", help="only these shards of dataset inputs")
    p.add_argument("--step-size", type=int, default=DEFAULT_STEP_SIZE, metavar="N",
                   help="jets per chunk (bounds memory)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N", help="jets per forward pass")
    p.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="local worker processes, one input file each (default 1: stream in this process)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    out = predict(args.run, args.inputs, args.out, which=args.model, shards=args.shards, step_size=args.step_size,
                  batch_size=args.batch_size, progress=not args.no_progress, jobs=args.jobs,
                  scheduler=args.scheduler)
    import uproot

    with uproot.open(out) as f:
        n = f[TREE].num_entries
    used = prediction_model(out)
    print(f"deepjet-nb predict: {n} jets → {out} (model: {describe_choice(used)})")
    return 0


def describe_choice(choice: dict) -> str:
    """"best checkpoint (epoch 7, val_loss 0.6123)" for a :meth:`Run.model_choice` record."""
    names = {"best": "best checkpoint", "final": "final model", "last": "last checkpoint"}
    text = names.get(choice.get("which"), choice.get("file", "given model"))
    facts = [f"epoch {choice['epoch']}" if choice.get("epoch") else "",
             f"val_loss {choice['val_loss']:.4f}" if choice.get("val_loss") is not None else ""]
    facts = [f for f in facts if f]
    return text + (f" ({', '.join(facts)})" if facts else "")
