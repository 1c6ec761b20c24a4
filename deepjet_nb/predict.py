"""Prediction: a training run + jets → a prediction ROOT file (docs/formats.md §4).

Inputs are ROOT ntuples, converted on the fly chunk by chunk with the run's data config and the
normalisation of the training dataset (:func:`deepjet_nb.convert.iter_arrays`: same selection, same class
labels, no resampling), or converted datasets made with the same config and normalisation (e.g. held-out
shards of the training dataset). Memory is bounded by ``step_size`` jets whatever the input size. The output
is written under a temporary name and moved into place when complete.

Output tree ``tree``, one entry per jet: ``prob_is<Class>`` (float32) per class, the training truth
``truth_is<Class>`` (int32 0/1) per class, and the spectators of the data config under their own names
(``jet_pt``, ``jet_eta``, ``trackCounting_sip3dSig2`` as float32, the raw flavour flags ``isB``, ``isBB``, ...
as int32). The class truth carries a prefix because ``is<Class>`` would collide with a raw flag of a different
meaning (DeepCSV's class B is isB + isLeptonicB + isLeptonicB_C).

Example::

    from deepjet_nb.predict import predict
    predict("runs/deepjet", ["ttbar_test.root"], "predictions/deepjet.root")

Command line: ``deepjet-nb predict --run RUNDIR --out FILE.root INPUTS...``.
TensorFlow/Keras are imported only when a model is loaded.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ._atomic import atomic_path
from .dataset import MANIFEST
from .errors import ArgumentError, DatasetError, RunError

__all__ = ["predict", "load_run", "Run", "TREE", "register_cli"]

TREE = "tree"
# Class truth is "truth_is<Class>": a plain "is<Class>" would collide with the raw flag of the same name
# (DeepCSV class B = isB + isLeptonicB + isLeptonicB_C is not the raw isB; likewise BB and C).
TRUTH_PREFIX = "truth_is"
DEFAULT_STEP_SIZE = 50_000  # jets per chunk: bounds memory (DeepJet inputs ≈ 3 kB per jet → ~150 MB)
DEFAULT_BATCH_SIZE = 1024
MODEL_FILES = ("model.keras", "checkpoints/best.keras")


class Run:
    """What prediction needs from a run directory (docs/formats.md §3): config, manifest, model path.

    Attributes: ``path``, ``manifest`` (dict), ``config`` (:class:`~deepjet_nb.config.DataConfig`),
    ``classes``, ``inputs`` (group → {"shape", "features"}), ``normalisation``, ``model_path``.
    Use :func:`load_run`.
    """

    def __init__(self, path, manifest, config, model_path):
        self.path = Path(path)
        self.manifest = manifest
        self.config = config
        self.model_path = Path(model_path)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def inputs(self) -> dict:
        return dict(self.manifest["inputs"])

    @property
    def normalisation(self) -> dict:
        return self.manifest["normalisation"]

    def load_model(self):
        """The Keras model (imports Keras). Raises :class:`RunError` naming the file when unreadable."""
        import keras

        try:
            return keras.models.load_model(self.model_path)
        except Exception as err:  # Keras raises ValueError, OSError, zipfile errors...
            raise RunError(f"{self.model_path}: cannot load the model ({err})") from None

    def __repr__(self):
        return f"<Run {str(self.path)!r}: classes {self.classes}, model {self.model_path.name}>"


def load_run(run_dir: str | os.PathLike, *, model: str | None = None) -> Run:
    """Read a run directory: ``manifest.json``, ``data_config.yaml`` and the model file.

    ``model`` is a path relative to the run (default: ``model.keras``, else ``checkpoints/best.keras``).
    Raises :class:`RunError` naming the directory and the missing or invalid file.
    """
    from .config import load_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    manifest_path = run_dir / MANIFEST
    if not manifest_path.is_file():
        raise RunError(f"{run_dir}: no manifest.json (not a training run directory)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as err:
        raise RunError(f"{manifest_path}: not valid JSON ({err})") from None
    for key in ("classes", "inputs", "normalisation"):
        if key not in manifest:
            raise RunError(f"{manifest_path}: missing key {key!r}")
    config_path = run_dir / "data_config.yaml"
    if not config_path.is_file():
        raise RunError(f"{run_dir}: no data_config.yaml")
    config = load_config(config_path)
    if list(config.class_names) != list(manifest["classes"]):
        raise RunError(f"{config_path}: classes {list(config.class_names)} differ from manifest.json "
                       f"{manifest['classes']}")
    candidates = [model] if model else MODEL_FILES
    for name in candidates:
        if (run_dir / name).is_file():
            return Run(run_dir, manifest, config, run_dir / name)
    raise RunError(f"{run_dir}: no model file ({' or '.join(candidates)})")


def predict(run_dir: str | os.PathLike | Run, inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
            model=None, shards: Sequence[str] | None = None, step_size: int = DEFAULT_STEP_SIZE,
            batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True) -> Path:
    """Run a trained model over ``inputs`` and write the prediction file ``out``.

    Inputs: ``run_dir`` a run directory (or a :class:`Run`); ``inputs`` ROOT ntuples and/or converted
    dataset directories; ``model`` an already loaded Keras model to use instead of the run's file;
    ``shards`` restricts dataset inputs to these shard names; ``step_size`` jets per chunk;
    ``batch_size`` jets per forward pass. Returns ``out`` as a Path.

    Raises :class:`RunError` (run directory), :class:`InputFileError` (ROOT input: file, tree or branch),
    :class:`DatasetError` (a dataset made with other classes, inputs or normalisation than the run),
    :class:`ArgumentError` for no inputs or bad sizes. Nothing is left at ``out`` on failure.
    """
    import uproot

    run = run_dir if isinstance(run_dir, Run) else load_run(run_dir)
    if not inputs:
        raise ArgumentError("predict: no input files given")
    if step_size < 1 or batch_size < 1:
        raise ArgumentError(f"predict: step_size and batch_size must be >= 1, got {step_size}, {batch_size}")
    sources = [_source(Path(p), run) for p in inputs]
    model = model if model is not None else run.load_model()
    _check_model(model, run)
    bar = _progress(progress, sum(n for _, _, n in sources))
    out = Path(out)
    with atomic_path(out) as tmp, uproot.recreate(tmp) as file:
        tree = None
        for kind, path, _ in sources:
            chunks = (_root_chunks(path, run, step_size) if kind == "root"
                      else _dataset_chunks(path, run, shards, step_size))
            for spectator_names, chunk in chunks:
                probs = _infer(model, run, chunk, batch_size)
                branches = _branches(run.classes, probs, chunk["label"], spectator_names, chunk["spectators"],
                                     path)
                if tree is None:
                    tree = file.mktree(TREE, {k: v.dtype for k, v in branches.items()})
                tree.extend(branches)
                bar.update(len(probs))
        if tree is None:  # every input was empty: still write a valid, empty tree with all branches
            names = run.config.spectators
            empty = _branches(run.classes, np.zeros((0, len(run.classes)), np.float32), np.zeros(0, np.int8),
                              list(names), np.zeros((0, len(names)), np.float32), run.path)
            file.mktree(TREE, {k: v.dtype for k, v in empty.items()})
    bar.close()
    return out


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
    return "root", path, _root_entries(path, run.config.tree)


def _root_entries(path, tree):
    # Only for the progress bar; a bad file is reported by the conversion with its proper message.
    try:
        import uproot

        with uproot.open(path) as f:
            return int(f[tree].num_entries)
    except Exception:
        return 0


def _root_chunks(path, run, step_size) -> Iterator[tuple[list, dict]]:
    from .convert import iter_arrays

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


def _check_model(model, run):
    width = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if width is not None and width != len(run.classes):
        raise RunError(f"{run.model_path}: the model has {width} outputs, the run has {len(run.classes)} "
                       f"classes {run.classes}")


def _infer(model, run, chunk, batch_size):
    # A dict keyed by group feeds the inputs by name (the builders name each keras.Input after its group).
    x = {g: chunk[g] for g in run.inputs}
    if len(chunk["label"]) == 0:
        return np.zeros((0, len(run.classes)), np.float32)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def _branches(classes, probs, label, spectator_names, spectators, source):
    from .config import REQUIRED_SPECTATORS
    from .samples import schema

    missing = [s for s in REQUIRED_SPECTATORS if s not in spectator_names]
    if missing:
        raise DatasetError(f"{source}: spectator {missing[0]!r} is not in the data (spectators: "
                           f"{list(spectator_names)})")
    out = {}
    for i, cls in enumerate(classes):
        out[f"prob_is{cls}"] = np.ascontiguousarray(probs[:, i])
    for i, cls in enumerate(classes):
        out[f"{TRUTH_PREFIX}{cls}"] = (label == i).astype(np.int32)
    integer = set(schema.FLAVOUR_FLAGS) | set(schema.FLAVOUR_INTS)
    clash = [name for name in spectator_names if name in out]
    if clash:
        raise DatasetError(f"{source}: spectator {clash[0]!r} has the name of an output branch")
    for j, name in enumerate(spectator_names):
        column = np.asarray(spectators[:, j])
        out[name] = column.astype(np.int32) if name in integer else column.astype(np.float32)
    return out


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(enabled, total):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total or None, unit="jet", desc="predicting")


# ---------------------------------------------------------------------------------------------------------
# command line


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb predict``."""
    p = subparsers.add_parser(
        "predict", help="run a trained model over ROOT ntuples or a converted dataset",
        description="Write a prediction ROOT file (tree 'tree': prob_is<Class>, truth_is<Class>, spectators) from a "
                    "training run and input jets. ROOT inputs are converted on the fly with the run's data "
                    "config and normalisation.")
    p.add_argument("inputs", nargs="+", metavar="INPUTS", help="ROOT ntuples and/or converted dataset directories")
    p.add_argument("--run", required=True, metavar="RUNDIR", help="training run directory")
    p.add_argument("--out", required=True, metavar="FILE.root", help="prediction file to write")
    p.add_argument("--model", default=None, metavar="FILE",
                   help="model file relative to the run (default: model.keras, else checkpoints/best.keras)")
    p.add_argument("--shards", nargs="+", default=None, metavar="NAME", help="only these shards of dataset inputs")
    p.add_argument("--step-size", type=int, default=DEFAULT_STEP_SIZE, metavar="N",
                   help="jets per chunk (bounds memory)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N", help="jets per forward pass")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    run = load_run(args.run, model=args.model)
    out = predict(run, args.inputs, args.out, shards=args.shards, step_size=args.step_size,
                  batch_size=args.batch_size, progress=not args.no_progress)
    import uproot

    with uproot.open(out) as f:
        n = f[TREE].num_entries
    print(f"deepjet-nb predict: {n} jets → {out}")
    return 0
