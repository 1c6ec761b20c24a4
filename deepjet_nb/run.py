"""The training run directory (docs/formats.md §3): the one place that names, reads and writes its files.

::

    RUN/data_config.yaml        the data config of the training dataset
    RUN/manifest.json           copy of the dataset manifest (classes, inputs, normalisation)
    RUN/train_config.json       the training configuration; its presence marks the directory as a run
    RUN/split.json              the train/validation split (jets per source and class)
    RUN/history.csv             one row per finished epoch (column "epoch" counts from 1)
    RUN/checkpoints/last.keras  after every epoch, with the run state inside (atomic)
    RUN/checkpoints/best.keras  best validation loss so far
    RUN/model.keras             the final model
    RUN/logs/train.log          a text log

>>> from deepjet_nb.run import open_run
>>> run = open_run("runs/deepjet")                   # doctest: +SKIP
>>> run.classes, run.status()                        # doctest: +SKIP
(['B', 'BB', 'LeptB', 'C', 'UDS', 'G'], 'run complete, 8/8 epochs')
>>> model = run.load_model()                         # doctest: +SKIP

Keras is imported only by the functions that load or save models.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import math
import os
import time
import zipfile
from pathlib import Path

from ._atomic import atomic_path, write_text_atomic
from ._jsonio import dumps, read_object
from .dataset import MANIFEST, Manifest, ManifestView
from .errors import ArgumentError, RunError

__all__ = ["Run", "open_run", "read_history", "TRAIN_CONFIG", "DATA_CONFIG", "HISTORY", "SPLIT", "MODEL",
           "MODEL_FILES"]

TRAIN_CONFIG = "train_config.json"
DATA_CONFIG = "data_config.yaml"
HISTORY = "history.csv"
SPLIT = "split.json"
MODEL = "model.keras"
CHECKPOINTS = "checkpoints"
LAST_STATE = f"{CHECKPOINTS}/last_state.json"
LOG = "logs/train.log"
# Which model file: the final model, or a checkpoint.
MODEL_FILES = {"final": MODEL, "best": f"{CHECKPOINTS}/best.keras", "last": f"{CHECKPOINTS}/last.keras"}

STATE_MEMBER = "deepjet_nb_state.json"  # run state stored inside each checkpoint (a .keras file is a zip)
STATE_VERSION = 2  # 2: epochs counted from 1 ("epoch" = finished epochs); 1 counted from 0


class Run(ManifestView):
    """A run directory (existing or about to be written). Use :func:`open_run` to read a finished one.

    Attributes: ``path``; from the manifest copy: ``manifest``, ``classes``, ``inputs``, ``spectators``,
    ``normalisation``; ``config`` (the data config). Files are named by the module constants.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._manifest = None

    def file(self, name: str) -> Path:
        """Path of a file of the run (``run.file(HISTORY)``)."""
        return self.path / name

    @property
    def exists(self) -> bool:
        """Whether the directory holds a run (its ``train_config.json`` is written first-to-last)."""
        return self.file(TRAIN_CONFIG).is_file()

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = Manifest.read(self.file(MANIFEST), error=RunError)
        return self._manifest

    @functools.cached_property
    def config(self):
        """The data config of the run (``data_config.yaml``), validated; its classes must match the manifest's."""
        from .config import load_config

        path = self.file(DATA_CONFIG)
        if not path.is_file():
            raise RunError(f"{self.path}: no {DATA_CONFIG}")
        config = load_config(path)
        if list(config.class_names) != self.classes:
            raise RunError(f"{path}: classes {list(config.class_names)} differ from {MANIFEST} {self.classes}")
        return config

    # -- writing ----------------------------------------------------------------------------------------

    def create(self, manifest: Manifest, train_config: dict, split: dict) -> None:
        """Write the files of a new run: data config, manifest copy, split, then ``train_config.json`` (last:
        its presence marks the directory as a run)."""
        import yaml

        self.file("logs").mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.file(DATA_CONFIG), yaml.safe_dump(manifest.get("config", {}), sort_keys=False))
        Manifest(manifest).write(self.path)
        self._manifest = Manifest(manifest)
        self.write_split(split)
        self.write_train_config(train_config)

    def write_train_config(self, train_config: dict) -> None:
        write_text_atomic(self.file(TRAIN_CONFIG), _json(train_config))

    def train_config(self) -> dict:
        """The stored training configuration as a dict. Raises :class:`RunError` naming the file."""
        return read_object(self.file(TRAIN_CONFIG), error=RunError, what="training config (is this a training run?)")

    def write_split(self, split: dict) -> None:
        write_text_atomic(self.file(SPLIT), _json(split))

    def split(self) -> dict:
        """The train/validation split: ``{"train": {"sources": {...}, "classes": {...}}, "validation": ...}``."""
        return read_object(self.file(SPLIT), error=RunError, what="split record")

    def write_history(self, rows: list[dict]) -> None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns or ["epoch"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.file(HISTORY), buffer.getvalue())

    def history(self) -> list[dict]:
        """Rows of ``history.csv`` as dicts of floats (``epoch`` as int, counted from 1); [] before the first
        epoch. Files of older versions, which counted from 0, are read with their epochs shifted by one, and
        their columns under today's names (``val_auc_b_vs_udsg`` → ``val_auc``)."""
        path = self.file(HISTORY)
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            rows = [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]
        return _one_based(_renamed(rows))

    def log(self, message: str) -> None:
        """Append a time-stamped line to ``logs/train.log``."""
        path = self.file(LOG)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    # -- models -----------------------------------------------------------------------------------------

    def model_path(self, which: str = "auto") -> Path:
        """Path of a model file: ``which`` is "final", "best", "last", a path relative to the run, or "auto"
        (the best checkpoint, the one validation chose: lowest validation loss; else the final model).
        "final" and "last" hold the last finished epoch's weights. Raises :class:`RunError` when it does not
        exist."""
        if which == "auto":
            for name in (MODEL_FILES["best"], MODEL_FILES["final"]):
                if self.file(name).is_file():
                    return self.file(name)
            raise RunError(f"{self.path}: no model file ({MODEL_FILES['final']} or {MODEL_FILES['best']}); "
                           f"training not finished, or not a run directory")
        name = MODEL_FILES.get(which, which)
        if which not in MODEL_FILES and not str(which).endswith(".keras"):
            raise ArgumentError(f"which must be one of {['auto', *MODEL_FILES]} or a .keras path, got {which!r}")
        path = self.file(name)
        if not path.is_file():
            raise RunError(f"{self.path}: no {name} (training not finished, or not a run directory)")
        return path

    def model_choice(self, which: str = "auto") -> dict:
        """Which model file ``which`` resolves to, for the metadata of predictions and exported models:
        ``{"which": "best" | "final" | "last" | path, "file": path relative to the run, "epoch": the epoch whose
        weights it holds (counted from 1), "val_loss": that epoch's validation loss}`` (epoch and val_loss None
        when the run does not record them)."""
        path = self.model_path(which)
        rel = path.relative_to(self.path).as_posix() if path.is_relative_to(self.path) else str(path)
        kind = next((k for k, v in MODEL_FILES.items() if v == rel), rel)
        state = self.last_state() or {}
        epoch = state.get("best_epoch") if kind == "best" else state.get("epoch") if kind in MODEL_FILES else None
        rows = {int(r["epoch"]): r for r in self.history() if r.get("epoch") is not None}
        val_loss = rows.get(epoch, {}).get("val_loss") if epoch else None
        return {"which": kind, "file": rel, "epoch": epoch,
                "val_loss": None if val_loss is None else float(val_loss)}

    def load_model(self, which: str = "auto", *, custom_objects: dict | None = None):
        """The Keras model (see :meth:`model_path` for ``which``). Raises :class:`RunError` naming the file.

        A model of the user's own (docs/custom_models.md) loads after its recorded source is imported, so its
        registered custom layers are known; a custom loss or metric that cannot be found here (a function typed
        into a notebook) leaves the model uncompiled, which prediction and export do not need.
        """
        path = self.model_path(which)
        self.import_model_sources()
        try:
            return _load_keras(path, custom_objects)
        except Exception as err:  # Keras raises ValueError, OSError, zipfile errors...
            raise RunError(f"{path}: cannot load the model ({type(err).__name__}: {err}){self._source_hint()}") \
                from None

    @property
    def model_source(self) -> dict:
        """Where the run's model came from (``train_config.json`` "model_source"; {} for older runs and runs
        written without a trainer): ``kind`` builtin, module, file, callable or object; ``target``; ``file``;
        ``sha256``; ``layers``: the sources of custom layer classes."""
        return (self.train_config().get("model_source") or {}) if self.exists else {}

    @property
    def model_name(self) -> str | None:
        """A short name of the run's model: the built-in name, the builder function's name or the model's."""
        if not self.exists:
            return None
        return self.model_source.get("name") or self.train_config().get("model")

    def import_model_sources(self) -> None:
        """Import the modules of a user's model and its custom layers, as recorded, so Keras can load them.

        Raises :class:`RunError` naming the run when a recorded module or file cannot be imported."""
        from .errors import ModelError
        from .userimport import import_source

        source = self.model_source
        records = [*([source] if source.get("kind") in ("module", "file", "callable") else []),
                   *source.get("layers", [])]
        for record in records:
            try:
                import_source(record)
            except ModelError as err:
                raise RunError(f"{self.path}: cannot load the run's model: {err}") from None

    def _source_hint(self) -> str:
        if self.model_source.get("kind", "builtin") == "builtin":
            return ""
        return (" (a custom layer must be decorated with @keras.saving.register_keras_serializable() and live in "
                "a file or module, not a notebook cell, to load in another process)")

    def save_checkpoint(self, model, which: str, state: dict) -> None:
        """Save ``model`` (with optimizer state) as checkpoint ``which`` ("last" or "best") atomically, with the
        run ``state`` inside the archive."""
        with keras_path(self.file(MODEL_FILES[which])) as tmp:
            model.save(tmp)
            with zipfile.ZipFile(tmp, "a") as zf:
                zf.writestr(STATE_MEMBER, _json(state))
        if which == "last":
            write_text_atomic(self.file(LAST_STATE), _json({k: v for k, v in state.items() if k != "history"}))

    def load_checkpoint(self, which: str = "last", *, custom_objects: dict | None = None):
        """``(model, state)`` of checkpoint ``which``. Raises :class:`RunError` naming the file when it is
        missing, unreadable or has no run state."""
        path = self.model_path(which)
        self.import_model_sources()
        return load_checkpoint(path, custom_objects)

    def save_model(self, model) -> None:
        """Write the final model atomically."""
        with keras_path(self.file(MODEL)) as tmp:
            model.save(tmp)

    def final_from_last(self) -> None:
        """Make the final model a copy of the last checkpoint (after a Stop mid-epoch)."""
        with atomic_path(self.file(MODEL)) as tmp:
            tmp.write_bytes(self.file(MODEL_FILES["last"]).read_bytes())

    def last_state(self) -> dict | None:
        """The readable copy of the last checkpoint's state (no history), or None before the first epoch."""
        path = self.file(LAST_STATE)
        return read_object(path, error=RunError, what="run state") if path.is_file() else None

    # -- summary ----------------------------------------------------------------------------------------

    def status(self) -> str:
        """One line: "no run", "run complete, 8/8 epochs", "run stopped after 3/8 epochs (early stopping)"."""
        if not self.exists:
            return "no run"
        planned = self.train_config().get("epochs")
        done = len(self.history())
        state = self.last_state() or {}
        if self.file(MODEL).is_file() and (done >= (planned or 0) or state.get("stopped")):
            why = f" ({state['stopped']})" if state.get("stopped") and done < (planned or 0) else ""
            return f"run complete{why}, {done}/{planned} epochs"
        return f"run stopped after {done}/{planned} epochs"

    @property
    def complete(self) -> bool:
        """Whether training is finished (all epochs done, or ended by early stopping)."""
        return self.status().startswith("run complete")

    def __repr__(self):
        return f"<Run {str(self.path)!r}: {self.status()}>"


def open_run(path: str | os.PathLike) -> Run:
    """Open an existing run directory (checks the manifest copy). Raises :class:`RunError` naming the
    directory and the missing or invalid file."""
    run = Run(path)
    if not run.path.is_dir():
        raise RunError(f"{run.path}: no such run directory")
    run.manifest  # noqa: B018 -- validates now, so errors name the file before any work starts
    return run


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """Rows of a run's ``history.csv`` (see :meth:`Run.history`); raises :class:`RunError` when there is none."""
    run = Run(run_dir)
    if not run.file(HISTORY).is_file():
        raise RunError(f"{run.path}: no {HISTORY}")
    return run.history()


def load_checkpoint(path: str | os.PathLike, custom_objects: dict | None = None):
    """Load a checkpoint written by :meth:`Run.save_checkpoint`: returns ``(model, state)``.

    ``custom_objects``: the user's loss, metrics and optimizer by registered name, so the checkpoint's
    compiled state (optimizer moments included) comes back for a resume."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            state = json.loads(zf.read(STATE_MEMBER))
        model = _load_keras(path, custom_objects)
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as err:
        raise RunError(f"{path}: not a readable deepjet-nb checkpoint ({err})") from None
    except TypeError as err:  # Keras: a custom layer it cannot find
        raise RunError(f"{path}: cannot load the checkpoint's model ({err})") from None
    if not isinstance(state, dict):
        raise RunError(f"{path}: the run state {STATE_MEMBER} is not a JSON object")
    # strict JSON has no Infinity: a run without a validation loss yet stores null
    best = state.get("best_val_loss")
    state["best_val_loss"] = math.inf if best is None else float(best)
    if state.get("version", 1) < 2:  # epochs counted from 0: "epoch" was the last finished one's index
        state.update(version=STATE_VERSION, epoch=state["epoch"] + 1, best_epoch=state["best_epoch"] + 1,
                     history=_one_based(state["history"]))
    if "history" in state:
        state["history"] = _renamed(state["history"])
    return model, state


def _load_keras(path, custom_objects=None):
    """``keras.models.load_model``; when only the compile state cannot be rebuilt (a loss or metric Keras cannot
    find), the model without it."""
    import keras

    try:
        return keras.models.load_model(path, custom_objects=custom_objects)
    except TypeError as err:
        if "Could not locate" not in str(err):
            raise
        model = keras.models.load_model(path, custom_objects=custom_objects, compile=False)
        model._deepjet_nb_uncompiled = str(err).split(". ")[0]  # why; the trainer names it on a resume
        return model


# History columns that older versions named otherwise: the validation AUC of the task the classes define was
# "val_auc_b_vs_udsg" whatever that task was.
RENAMED_COLUMNS = {"val_auc_b_vs_udsg": "val_auc"}


def _renamed(rows: list[dict]) -> list[dict]:
    """History rows with the columns of older versions under their current names (:data:`RENAMED_COLUMNS`)."""
    return [{RENAMED_COLUMNS.get(k, k): v for k, v in row.items()} for row in rows]


def _one_based(rows: list[dict]) -> list[dict]:
    """History rows with epochs counted from 1 (rows written by versions that counted from 0 are shifted)."""
    if rows and rows[0].get("epoch") == 0:
        return [{**row, "epoch": row["epoch"] + 1} for row in rows]
    return rows


@contextlib.contextmanager
def keras_path(destination):
    """Atomic destination for ``model.save``, which insists on a ``.keras`` suffix for its file name."""
    with atomic_path(destination) as tmp:
        staged = tmp.with_name(tmp.name + ".keras")
        try:
            yield staged
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)


def _json(obj) -> str:
    # strict JSON (no NaN/Infinity: null), readable by any parser; paths and other objects as text
    return dumps(json.loads(json.dumps(obj, default=str, allow_nan=True)))
