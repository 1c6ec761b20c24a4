"""Training: a :class:`Trainer` for notebooks and the ``deepjet-nb train`` command, writing a run directory.

A run directory (docs/formats.md §3) holds copies of the data config and manifest, the training config, one
``history.csv`` row per finished epoch, the last and best checkpoints (written atomically after each epoch),
the final model and a text log. ``resume=True`` continues from the last checkpoint after a crash, a SIGKILL or
a Stop: the checkpoint carries the run state (finished epochs, history, best loss, learning rate, early-stopping
counters) inside the ``.keras`` file itself, so model and state can never disagree, and the input pipeline
shuffles each epoch from ``(seed, epoch)``, so a resumed epoch sees the data an uninterrupted run would.
Epochs are counted from 1 in everything a person reads (``history.csv``, the log, the dashboard, plots).

Stop (the dashboard's button, or :meth:`Trainer.stop`) ends training after the current batch, also while
``fit()`` blocks a notebook cell; so does a kernel interrupt, which then re-raises KeyboardInterrupt. A
checkpoint is only ever written at the end of an epoch: after a Stop mid-epoch the last finished epoch's
checkpoint stays the valid one, ``model.keras`` becomes a copy of it, and a resume repeats the cut epoch.

Recipes (docs/reference.md §4): DeepCSV Adam lr 3e-3; DeepJet 1 epoch at lr 1e-3, then the input batch norms are
frozen and training goes on at lr 1e-4 (with a fresh optimizer, as the CMS recipe recompiles the model).
On top: learning rate halved when the validation loss stalls (``lr_patience`` epochs), early stopping after
``patience`` epochs without improvement. Validation is a seeded share of the jets of every input file
(``deepjet_nb.pipeline.split_jets``), recorded in the run's ``split.json``.

Metrics: weighted sparse categorical cross-entropy and accuracy (argmax of the softmax), and on the
validation jets each epoch the b vs udsg AUC and b-jet efficiency at 1 % light mistag of the b
discriminant P(B)+P(BB)+P(LeptB) (jets unweighted, as in evaluation).

Typical use::

    from deepjet_nb.train import Trainer
    trainer = Trainer("deepjet", data="data/deepjet", out="runs/deepjet", epochs=5)
    trainer.fit()          # blocks; live dashboard in a notebook, text lines elsewhere
    trainer.start()        # or: train in a background thread, so the notebook stays free for other cells

This module does not import TensorFlow at import time (the CLI registers it); Keras loads in :meth:`fit`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._args import integer, number
from ._atomic import check_output, remove_stale
from ._lock import output_lock
from .errors import ArgumentError, DatasetError, DeepJetError, RunError
from .flavours import CLASS_FLAVOURS, FLAVOUR_CODES, discriminants
from .models import MODEL_NAMES, get_builder
from .run import CHECKPOINTS, MODEL_FILES, STATE_VERSION, Run

__all__ = ["RECIPES", "TrainConfig", "Trainer", "train", "validation_metrics", "register_cli"]

# Per-model defaults (docs/reference.md §4). DeepJet's CMS batch is large; 2048 keeps a CPU step short.
RECIPES = {
    "deepcsv": {"lr": 3e-3, "batch_size": 10000, "epochs": 50, "freeze_input_bn_after": None,
                "lr_after_freeze": None},
    "deepjet": {"lr": 1e-3, "batch_size": 2048, "epochs": 30, "freeze_input_bn_after": 1,
                "lr_after_freeze": 1e-4},
    "pcnn": {"lr": 1e-3, "batch_size": 1024, "epochs": 30, "freeze_input_bn_after": None,
             "lr_after_freeze": None},
    "dense": {"lr": 1e-3, "batch_size": 512, "epochs": 20, "freeze_input_bn_after": None,
              "lr_after_freeze": None},
}
assert set(RECIPES) == set(MODEL_NAMES)

# Names of the per-epoch validation metrics (history.csv columns, dashboard).
VAL_AUC = "val_auc_b_vs_udsg"
VAL_BEFF = "val_beff_at_mistag_0.01"
MISTAG = 0.01
HEADLINE = (VAL_BEFF, "b-eff @ 1% mistag")  # the validation metric the dashboard shows per epoch
# For datasets whose classes are not jet flavours (fat jets, events), the same two metrics compare the first
# class (signal, e.g. Top) with the last (background, e.g. QCD) on P(first) / (P(first) + P(last)).


class UnmixedShardsWarning(UserWarning):
    """Training batches would hold few classes (see :meth:`Trainer.fit`)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``train_config.json``.

    ``None`` fields take the model's recipe value (:data:`RECIPES`). ``shards`` (the dataset's shards the run
    uses; a seeded share ``val_fraction`` of each validates) and ``data_config_hash`` are filled in when the
    run directory is created.
    """

    model: str
    data: str
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_after_freeze: float | None = None
    freeze_input_bn_after: int | None = None
    seed: int = 0
    val_fraction: float = 0.2
    patience: int = 10
    lr_patience: int = 3
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    buffer_shards: int = 2
    in_memory: bool = False
    hyper: dict = field(default_factory=dict)
    shards: list = field(default_factory=list)
    data_config_hash: str = ""

    def with_recipe(self) -> TrainConfig:
        """A copy whose ``None`` fields take the recipe of ``self.model``."""
        recipe = RECIPES[self.model]
        changes = {k: v for k, v in recipe.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **changes)


# Fields a resumed run must share with the stored one (epochs may grow; data may have moved).
_RESUME_FIXED = ("model", "batch_size", "lr", "lr_after_freeze", "freeze_input_bn_after", "seed", "val_fraction",
                 "hyper", "shards", "data_config_hash")


class Trainer:
    """Train ``model`` on the converted dataset ``data`` into the run directory ``out``.

    Parameters: ``model`` a name of :data:`deepjet_nb.models.MODEL_NAMES`; ``data`` a converted dataset
    directory; ``out`` the run directory (created; must not hold another run unless ``resume``); ``resume``
    True continues the run in ``out`` (arguments left ``None`` are taken from it), "auto" continues it if
    there is one and starts a new run otherwise, saying which (a finished run is not trained again: :meth:`fit`
    then loads its final model and returns its history); ``dashboard`` "auto" (widget in a notebook, text
    elsewhere), "widget", "text" or "off"; other keywords are :class:`TrainConfig` fields.

    Raises (at construction, before any training): :class:`ArgumentError` for an unknown model or bad value,
    :class:`DatasetError` for a data directory that is not a converted dataset, :class:`RunError` when ``out``
    holds another run (without ``resume``) or a run that does not match these arguments or data.
    """

    def __init__(self, model: str, data, out, *, resume: bool | str = False, dashboard: str = "auto",
                 epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 seed: int | None = None, **options):
        from .dataset import open_dataset

        get_builder(model)  # unknown model -> ArgumentError, before anything is written
        if resume not in (True, False, "auto"):
            raise ArgumentError(f"resume must be True, False or 'auto', got {resume!r}")
        if dashboard not in ("auto", "widget", "text", "off"):
            raise ArgumentError(f"dashboard must be 'auto', 'widget', 'text' or 'off', got {dashboard!r}")
        unknown = set(options) - {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "data"}
        if unknown:
            raise ArgumentError(f"unknown training options {sorted(unknown)}")
        self.run_dir = check_output(out, directory=True, what="run directory")
        self.run = Run(out)
        self.dataset = open_dataset(data)
        self.dataset.verify()  # a bad shard is named now, not as a tf.data traceback after the run dir exists
        self.dashboard_mode = dashboard
        given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, **options}
        given = {k: v for k, v in given.items() if v is not None}
        if resume == "auto":
            resume = self.run.exists
            print(f"{self.run_dir}: {self.run.status() + ', continuing it' if resume else 'new run'}")
        self.resuming = resume
        if resume:
            self.config = self._resumed_config(model, str(data), given)
        else:
            self._refuse_existing_run()
            self.config = self._new_config(model, str(data), given)
        self.model = None
        self.history: list[dict] = []
        self.stop_reason: str | None = None  # None (all epochs), "stopped", "early stopping", "interrupted"
        self.dashboard = None
        self._stop_requested = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- public ------------------------------------------------------------------------------------------

    def fit(self, callbacks: list | None = None) -> list[dict]:
        """Train until ``epochs``, early stopping or :meth:`stop`; return the history rows (one per epoch).

        ``callbacks``: extra Keras callbacks (they see the validation metrics in the epoch logs). Writes the
        run directory as training goes; the final model is written when training ends.
        """
        with output_lock(self.run_dir, what="deepjet-nb train"):
            remove_stale(self.run_dir)
            remove_stale(self.run_dir / CHECKPOINTS)  # checkpoints of a run killed with SIGKILL
            if not self.resuming:
                self._refuse_existing_run()  # another Trainer may have written a run here since __init__
            return self._fit_locked(callbacks)

    def _fit_locked(self, callbacks):
        import keras

        from .pipeline import JetBatches

        cfg = self.config
        if self._finished_before():
            self.model = self.run.load_model("final")
            self.history = self.run.history()
            self.stop_reason = (self.run.last_state() or {}).get("stopped")
            print(f"{self.run_dir}: run complete, {len(self.history)}/{cfg.epochs} epochs; nothing to train")
            return self.history
        self._write_run_files()
        self._log(f"start: model={cfg.model} data={cfg.data} epochs={cfg.epochs} batch_size={cfg.batch_size} "
                  f"seed={cfg.seed} resume={self.resuming}")
        keras.utils.set_random_seed(cfg.seed)
        state = self._restore_or_build()
        if self.stop_reason is None and state["stopped"] == "early stopping":
            self.stop_reason = "early stopping"
        self._stop_requested = False
        train = self._train_batches()
        self._warn_unmixed(train)
        validation = self._split()[1]
        self._val = JetBatches(self.dataset, validation, batch_size=cfg.batch_size, shuffle=False,
                               buffer_shards=cfg.buffer_shards, in_memory=cfg.in_memory) \
            if sum(map(len, validation.values())) else None
        if self._val:
            _, label, weight = self._val.arrays()
            self._val_truth = label.astype(np.int64), weight.astype(np.float64)
        self._steps = train.steps_per_epoch
        if self.dashboard is None or self.dashboard.finished:  # start() builds it in the caller's thread
            self.dashboard = self._make_dashboard(train)
        callbacks = [_hooks_callback(self), *([self.dashboard] if self.dashboard else []), *(callbacks or [])]
        try:
            # Keras counts epochs from 0: the next one to train is the number already finished.
            for start, end, frozen in self._phases(state["epoch"]):
                if self.stop_reason or self._stop_requested:
                    break
                self._enter_phase(frozen, state)
                self.model.fit(train.as_tf_dataset(start_epoch=start), epochs=end, initial_epoch=start,
                               steps_per_epoch=train.steps_per_epoch, callbacks=callbacks, shuffle=False,
                               verbose=0)
        except DeepJetError:
            self._end_dashboard("failed")
            raise
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            self._log(f"interrupted during epoch {state['epoch'] + 1}; last checkpoint: epoch {state['epoch']}")
            self._finish()
            raise KeyboardInterrupt(f"training interrupted; {self.run_dir} keeps the {state['epoch']} finished "
                                    f"epochs (resume='auto' continues)") from None
        except BaseException as err:
            self._end_dashboard("failed")
            # an error of the data reaches us wrapped by tf.data in a long traceback: raise the error itself
            failure = next((b.failure for b in (train, getattr(self, "_val", None)) if getattr(b, "failure", None)), None)
            if failure is not None and not isinstance(err, KeyboardInterrupt):
                raise failure from None
            raise
        self._finish()
        self.resuming = True  # the directory now holds this run: a second fit() continues it
        return self.history

    def _finished_before(self) -> bool:
        """A resumed run whose final model exists and that has all its epochs, or ended by early stopping."""
        if not (self.resuming and self.run.file(MODEL_FILES["final"]).is_file()):
            return False
        state = self.run.last_state() or {}
        return len(self.run.history()) >= self.config.epochs or state.get("stopped") == "early stopping"

    def stop(self) -> None:
        """Ask training to end after the current batch; the last finished epoch's checkpoint stays valid
        (resume repeats the interrupted epoch). Safe to call from a widget callback or another thread."""
        self._stop_requested = True
        if self.model is not None:
            self.model.stop_training = True

    def start(self, callbacks: list | None = None) -> threading.Thread:
        """Run :meth:`fit` in a background thread, so the notebook can run other cells meanwhile (Stop works
        with :meth:`fit` too). The epoch lines go into the dashboard's own output area.

        Returns the thread; :meth:`wait` joins it and re-raises an error of the training.
        """
        if self.dashboard is None or self.dashboard.finished:
            self.dashboard = self._make_dashboard(self._train_batches())
            if self.dashboard is not None:
                self.dashboard.show()

        def target():
            try:
                self.fit(callbacks)
            except BaseException as err:  # handed to wait(); a thread cannot raise into the notebook
                self._error = err

        self._thread = threading.Thread(target=target, name="deepjet-nb-train", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self) -> list[dict]:
        """Wait for a training started with :meth:`start`; return the history or raise its error."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.history

    # -- run directory -----------------------------------------------------------------------------------

    def _refuse_existing_run(self):
        if self.run.exists:
            raise RunError(f"{self.run_dir} already holds a training run; pass resume=True (--resume) to "
                           f"continue it or choose another output directory")

    def _new_config(self, model, data, given) -> TrainConfig:
        cfg = TrainConfig(model=model, data=data, **given).with_recipe()
        self._check_values(cfg)
        if not self.dataset.n_jets:
            raise DatasetError(f"{data}: the dataset holds no jets")
        return dataclasses.replace(cfg, shards=self.dataset.shard_names,
                                   data_config_hash=self.dataset.manifest.config_hash)

    def _resumed_config(self, model, data, given) -> TrainConfig:
        try:
            stored = TrainConfig(**self.run.train_config())
        except TypeError as err:
            raise RunError(f"{self.run.file('train_config.json')}: unreadable training config ({err})") from None
        wanted = {"model": model, **given,
                  "data_config_hash": self.dataset.manifest.config_hash}
        for key in _RESUME_FIXED:
            if key in wanted and wanted[key] != getattr(stored, key):
                what = "data (manifest config_hash)" if key == "data_config_hash" else key
                raise RunError(f"{self.run_dir}: cannot resume, {what} was {getattr(stored, key)!r} in "
                               f"train_config.json but is {wanted[key]!r} now")
        missing = sorted(set(stored.shards) - set(self.dataset.shard_names))
        if missing:
            raise RunError(f"{self.run_dir}: cannot resume, shards {missing} are not in dataset {data}")
        cfg = dataclasses.replace(stored, data=data, **{k: v for k, v in given.items() if k not in _RESUME_FIXED})
        self._check_values(cfg)
        return cfg

    @staticmethod
    def _check_values(cfg: TrainConfig):
        what = "Trainer"
        for key in ("epochs", "batch_size", "lr_patience", "buffer_shards"):
            integer(getattr(cfg, key), key, what, minimum=1)
        integer(cfg.patience, "patience", what, minimum=0)
        integer(cfg.seed, "seed", what)
        if cfg.freeze_input_bn_after is not None:
            integer(cfg.freeze_input_bn_after, "freeze_input_bn_after", what, minimum=0)
        number(cfg.lr, "lr", what, positive=True)
        if cfg.lr_after_freeze is not None:
            number(cfg.lr_after_freeze, "lr_after_freeze", what, positive=True)
        number(cfg.lr_factor, "lr_factor", what, positive=True, maximum=1)
        number(cfg.min_lr, "min_lr", what, minimum=0)
        if not 0 <= number(cfg.val_fraction, "val_fraction", what) < 1:
            raise ArgumentError(f"val_fraction must lie in [0, 1), got {cfg.val_fraction}")
        if not isinstance(cfg.in_memory, bool):
            raise ArgumentError(f"{what}: in_memory must be True or False, got {cfg.in_memory!r}")
        if not isinstance(cfg.hyper, dict):
            raise ArgumentError(f"{what}: hyper must be a dict of builder keywords, got {cfg.hyper!r}")

    def _write_run_files(self):
        """Configs and manifest copy; written once, at the start of a new run (a resume keeps them)."""
        if self.resuming and self.run.exists:
            self.run.write_train_config(dataclasses.asdict(self.config))
        else:
            self.run.create(self.dataset.manifest, dataclasses.asdict(self.config), split=self.split_record())

    def _log(self, message: str):
        self.run.log(message)

    # -- model and state ---------------------------------------------------------------------------------

    def _restore_or_build(self) -> dict:
        from .models import build_model

        if self.resuming and self.run.file(MODEL_FILES["last"]).is_file():
            self.model, state = self.run.load_checkpoint("last")
            built = state.get("model", self.model.name if self.model.name in MODEL_NAMES else self.config.model)
            if built != self.config.model:
                raise RunError(f"{self.run.file(MODEL_FILES['last'])}: the checkpoint holds a {built} model, "
                               f"train_config.json says {self.config.model}; the run directory is inconsistent")
            self._log(f"resumed from {MODEL_FILES['last']} after epoch {state['epoch']}")
            # history.csv may have missed the last rows if the process died after the checkpoint.
            self.history = list(state["history"])
            self.run.write_history(self.history)
        else:
            self.model = build_model(self.config.model, self.dataset.manifest, **self.config.hyper)
            # "epoch": the last finished epoch, counted from 1 (0: none yet), as in history.csv.
            state = {"version": STATE_VERSION, "model": self.config.model, "epoch": 0, "history": [],
                     "best_val_loss": math.inf,
                     "best_epoch": 0, "wait": 0, "lr_wait": 0, "lr": self.config.lr, "stopped": None}
        self._state = state
        return state

    def _phases(self, first_epoch: int):
        """(start, end, frozen) epoch ranges still to train, in Keras's 0-based counting, from ``first_epoch``;
        the recipe's freeze splits the run in two."""
        cfg = self.config
        cut = cfg.freeze_input_bn_after
        bounds = [(0, cfg.epochs, False)] if not cut or cut >= cfg.epochs else [(0, cut, False),
                                                                                 (cut, cfg.epochs, True)]
        return [(max(a, first_epoch), b, frozen) for a, b, frozen in bounds if b > first_epoch]

    def _enter_phase(self, frozen: bool, state: dict):
        """Compile for a phase: a fresh model, or freeze the input batch norms and lower the lr (recipe)."""
        from .models.layers import input_batchnorm_layers

        bns = input_batchnorm_layers(self.model)
        if frozen and any(layer.trainable for layer in bns):
            for layer in bns:
                layer.trainable = False  # inference mode: the moving statistics stop changing
            state["lr"] = self.config.lr_after_freeze or state["lr"]
            state["lr_wait"] = 0
            self._log(f"froze input batch norms {[layer.name for layer in bns]}; lr {state['lr']:g}")
            self._compile(state["lr"])
        elif not self.model.compiled:
            self._compile(state["lr"])

    def _compile(self, lr: float):
        import keras

        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=lr),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            # argmax accuracy is the one that means something for a softmax over exclusive classes.
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    # -- per-epoch bookkeeping (called by the hooks callback) -------------------------------------------

    def _on_epoch_begin(self, epoch: int):
        self._epoch_start = time.perf_counter()
        self._steps_seen = 0
        self.model.optimizer.learning_rate = self._state["lr"]
        _reseed_dropout(self.model, self.config.seed, epoch)

    def _on_batch_end(self):
        self._steps_seen += 1
        if self._stop_requested:
            self.model.stop_training = True

    def _on_epoch_end(self, epoch: int, logs: dict):
        state, cfg = self._state, self.config
        epoch += 1  # Keras counts from 0, people (and history.csv) from 1
        if self._steps_seen < self._steps:
            # Stopped mid-epoch: nothing of this epoch is recorded; the last checkpoint stays the valid one.
            self.stop_reason = "stopped"
            self._log(f"stopped during epoch {epoch} after {self._steps_seen}/{self._steps} batches; "
                      f"last checkpoint: epoch {state['epoch']}")
            logs.clear()
            return
        logs.update(self._validation_metrics())
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items()}, "lr": state["lr"],
               "time_s": round(time.perf_counter() - self._epoch_start, 3)}
        monitor = row.get("val_loss", row["loss"])
        improved = monitor < state["best_val_loss"]
        if improved:
            state.update(best_val_loss=monitor, best_epoch=epoch, wait=0, lr_wait=0)
        else:
            state["wait"] += 1
            state["lr_wait"] += 1
            if state["lr_wait"] >= cfg.lr_patience and state["lr"] > cfg.min_lr:
                state["lr"] = max(state["lr"] * cfg.lr_factor, cfg.min_lr)
                state["lr_wait"] = 0
                self._log(f"validation loss stalled for {cfg.lr_patience} epochs: lr -> {state['lr']:g}")
        if state["wait"] >= cfg.patience:
            state["stopped"] = self.stop_reason = "early stopping"
            self.model.stop_training = True
        state["epoch"] = epoch
        state["history"] = [*self.history, row]
        # Order matters for a crash in between: best, then last (the commit point), then the readable copies.
        if improved:
            self.run.save_checkpoint(self.model, "best", state)
        self.run.save_checkpoint(self.model, "last", state)
        self.history = state["history"]
        self.run.write_history(self.history)
        self._log(f"epoch {epoch}/{cfg.epochs} " + " ".join(f"{k}={_fmt(v)}" for k, v in row.items()
                                                             if k != "epoch"))
        if self._stop_requested and not self.stop_reason:
            self.stop_reason = "stopped"  # Stop pressed during the epoch's last batch: the epoch counts
            self._log(f"stopped after epoch {epoch}")
        if self.stop_reason == "early stopping":
            self._log(f"early stopping: no improvement for {cfg.patience} epochs (best epoch {state['best_epoch']})")

    def _finish(self):
        if self.stop_reason in ("stopped", "interrupted"):
            if self._state["epoch"] >= 1:
                # The in-memory weights may be mid-epoch; the final model is the last finished epoch's.
                self.run.final_from_last()
        else:
            self.run.save_model(self.model)
        self._log(f"end: {len(self.history)} epochs recorded, stop reason: {self.stop_reason or 'finished'}")
        self._end_dashboard(self.stop_reason)

    def _end_dashboard(self, reason):
        if self.dashboard is not None:
            self.dashboard.finish(reason)

    # -- validation --------------------------------------------------------------------------------------

    def _split(self):
        """(train, validation): shard name → jet indices (:func:`deepjet_nb.pipeline.split_jets`)."""
        from .pipeline import split_jets

        jets = self.dataset.shard_jets()
        return split_jets({name: jets[name] for name in self.config.shards}, self.config.val_fraction,
                          self.config.seed)

    def split_record(self) -> dict:
        """What ``split.json`` holds: jets per source file and per class, for training and validation."""
        return split_record(self.dataset, self._split())

    def _validation_metrics(self) -> dict:
        """val_loss, val_accuracy (weighted like training), b vs udsg AUC and b-eff at 1 % mistag."""
        if self._val is None:
            return {}
        probs = self.model.predict(self._val.as_tf_dataset(repeat=False), verbose=0).astype(np.float64)
        label, weight = self._val_truth
        return validation_metrics(probs, label, weight, self.dataset.manifest)

    # -- dashboard ---------------------------------------------------------------------------------------

    def _train_batches(self):
        from .pipeline import JetBatches

        cfg = self.config
        return JetBatches(self.dataset, self._split()[0], batch_size=cfg.batch_size, seed=cfg.seed,
                          buffer_shards=cfg.buffer_shards, in_memory=cfg.in_memory)

    def _warn_unmixed(self, train):
        """Warn when streaming windows would give batches of few classes: some training shards hold (almost)
        one class each, as when every input file is one process (fat-jet and event samples), and a window holds
        fewer shards than there are."""
        cfg = self.config
        if cfg.in_memory or cfg.buffer_shards >= len(train.shards):
            return
        dominant = {}
        for name in train.shards:
            counts = np.bincount(np.asarray(self.dataset.shard(name, mmap=True)["label"]),
                                 minlength=len(self.dataset.classes))
            if counts.sum():
                dominant[name] = (int(counts.argmax()), counts.max() / counts.sum())
        pure = {name for name, (_, share) in dominant.items() if share > 0.95}
        if pure and len({cls for cls, _ in dominant.values()}) > 1:
            message = (f"{cfg.data}: shards {sorted(pure)} hold almost only one class each, and a streaming window "
                       f"holds {cfg.buffer_shards} of {len(train.shards)} shards: batches would mix few classes "
                       f"and training oscillate. Pass in_memory=True (small data) or buffer_shards="
                       f"{len(train.shards)}")
            warnings.warn(message, UnmixedShardsWarning, stacklevel=3)
            self._log(f"warning: {message}")

    def _make_dashboard(self, train):
        if self.dashboard_mode == "off":
            return None
        from .dashboard import TrainingDashboard

        key, label = HEADLINE
        n_light = self.validation_light_jets()
        if _by_flavour(self.dataset.manifest):
            label = f"{label} ({n_light} light jets)"
        else:
            first, last = self.dataset.classes[0], self.dataset.classes[-1]
            label = f"{first} eff @ 1% {last} mistag ({n_light} {last} entries)"
        return TrainingDashboard(epochs=self.config.epochs, steps_per_epoch=train.steps_per_epoch,
                                 batch_size=self.config.batch_size, mode=self.dashboard_mode,
                                 on_stop=self.stop, history=self.history, log=self._log,
                                 headline=(key, label))

    def validation_light_jets(self) -> int:
        """How many light (udsg) jets validate: the 1 % mistag of the headline metric rests on 1 % of them
        (for classes that are not flavours: the entries of the last, background, class)."""
        classes = self.split_record()["validation"]["classes"]
        if not _by_flavour(self.dataset.manifest):
            return int(classes[self.dataset.classes[-1]])
        flavours = {**CLASS_FLAVOURS, **(self.dataset.manifest.class_flavours or {})}
        return sum(n for cls, n in classes.items() if flavours.get(cls) == "udsg")


def train(model: str, data, out, **kwargs) -> Trainer:
    """Create a :class:`Trainer` with ``kwargs`` and run it; return the trainer (``.history``, ``.model``)."""
    trainer = Trainer(model, data, out, **kwargs)
    trainer.fit()
    return trainer


# ---------------------------------------------------------------------------------------------------------
# helpers shared with tests, the prediction stage and the reference BDT


def split_record(dataset, split: tuple[dict, dict]) -> dict:
    """What ``split.json`` holds for ``split`` = (train, validation) shard → jet indices of ``dataset``: jets per
    source file and per class, for training and validation."""
    record = {}
    for part, indices in zip(("train", "validation"), split):
        classes = np.zeros(len(dataset.classes), dtype=np.int64)
        for name, idx in indices.items():
            label = np.asarray(dataset.shard(name, mmap=True)["label"])[idx]
            classes += np.bincount(label, minlength=len(classes))
        record[part] = {"sources": {name: len(idx) for name, idx in indices.items()},
                        "classes": dict(zip(dataset.classes, classes.tolist()))}
    return record



def validation_metrics(probs: np.ndarray, label: np.ndarray, weight: np.ndarray, manifest: dict) -> dict:
    """Validation metrics from softmax outputs ``probs`` (n, n_classes), integer ``label`` and ``weight``.

    Returns ``val_loss`` (mean of weight × cross-entropy, the Keras convention), ``val_accuracy`` (weighted
    argmax accuracy), ``VAL_AUC`` and ``VAL_BEFF`` (b vs udsg on the b discriminant, jets unweighted; NaN when
    the validation set lacks b or light jets). For classes that are not jet flavours (a fat-jet or event
    config), ``VAL_AUC`` and ``VAL_BEFF`` compare the first class with the last on P(first)/(P(first)+P(last)).
    """
    from .dataset import Manifest
    from .kernels.roc import auc, eff_at_mistag, roc_curve

    classes = list(manifest["classes"])
    picked = np.clip(probs[np.arange(len(label)), label], 1e-7, 1.0)  # Keras clips at its epsilon too
    out = {"val_loss": float(np.mean(weight * -np.log(picked))),
           "val_accuracy": float(np.sum(weight * (probs.argmax(axis=1) == label)) / np.sum(weight))}
    if _by_flavour(manifest):
        flavours = {**CLASS_FLAVOURS, **(Manifest(manifest).class_flavours or {})}
        b = discriminants({c: probs[:, i] for i, c in enumerate(classes)}, flavours)["b"]
        jet_flavour = np.array([FLAVOUR_CODES.get(flavours.get(c), -1) for c in classes])[label]
        use = (jet_flavour == FLAVOUR_CODES["b"]) | (jet_flavour == FLAVOUR_CODES["udsg"])
        is_b = jet_flavour[use] == FLAVOUR_CODES["b"]
    else:
        last = len(classes) - 1
        signal, background = probs[:, 0].astype(np.float64), probs[:, last].astype(np.float64)
        total = signal + background
        b = np.divide(signal, total, out=np.zeros_like(signal), where=total > 0)
        use = (label == 0) | (label == last)
        is_b = label[use] == 0
    if is_b.all() or not is_b.any():
        return {**out, VAL_AUC: math.nan, VAL_BEFF: math.nan}
    sig_eff, bkg_eff, _ = roc_curve(b[use], is_b)
    return {**out, VAL_AUC: auc(sig_eff, bkg_eff), VAL_BEFF: float(eff_at_mistag(sig_eff, bkg_eff, MISTAG))}


def _by_flavour(manifest) -> bool:
    """Whether a dataset's classes are jet flavours (a DeepNTuples config) rather than fat-jet or event
    classes."""
    from .schema import DEEPNTUPLES

    raw = manifest.get("config") or {}
    return raw.get("schema", DEEPNTUPLES.name) == DEEPNTUPLES.name  # the key is written only when not default


# ---------------------------------------------------------------------------------------------------------
# command line


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb train``."""
    p = subparsers.add_parser("train", help="train a model on a converted dataset into a run directory",
                              description="Train MODEL on a converted dataset; writes a run directory "
                                          "(configs, history.csv, checkpoints, model.keras, logs).")
    p.add_argument("--model", required=True, choices=MODEL_NAMES, help="model architecture")
    p.add_argument("--data", required=True, help="converted dataset directory (deepjet-nb convert)")
    p.add_argument("--out", required=True, help="run directory to create (or to continue with --resume)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: the model's recipe)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--batch-size", type=int, help="jets per batch (default: the model's recipe)")
    p.add_argument("--lr", type=float, help="initial learning rate (default: the model's recipe)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--val-fraction", type=float,
                   help="share of each input file's jets used for validation, seeded (default 0.2)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 10)")
    p.add_argument("--in-memory", action="store_true", default=None, help="load all shards into memory")
    p.set_defaults(func=_cli_train)


def _cli_train(args) -> int:
    options = {"val_fraction": args.val_fraction, "patience": args.patience, "in_memory": args.in_memory}
    trainer = Trainer(args.model, args.data, args.out, resume=args.resume, dashboard="text", epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      **{k: v for k, v in options.items() if v is not None})
    history = trainer.fit()
    last = history[-1] if history else {}
    summary = " ".join(f"{k}={_fmt(last[k])}" for k in ("val_loss", VAL_AUC, VAL_BEFF) if k in last)
    print(f"deepjet-nb train: {len(history)} epochs in {args.out} ({trainer.stop_reason or 'finished'}) {summary}")
    return 0


# ---------------------------------------------------------------------------------------------------------
# private


def _hooks_callback(trainer: Trainer):
    """A Keras callback that hands epoch and batch events to ``trainer`` (defined here to import Keras late)."""
    import keras

    class _TrainerHooks(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            trainer._on_epoch_begin(epoch)

        def on_train_batch_end(self, batch, logs=None):
            trainer._on_batch_end()

        def on_epoch_end(self, epoch, logs=None):
            trainer._on_epoch_end(epoch, logs if logs is not None else {})

    return _TrainerHooks()


def _reseed_dropout(model, seed: int, epoch: int) -> None:
    """Set the random stream of every dropout (and other seeded) layer from ``(seed, epoch)``.

    Keras keeps a layer's random state in a ``SeedGenerator`` variable that ``model.save`` does not write, so a
    model loaded from a checkpoint would draw other dropout masks than the uninterrupted run. Reseeding at the
    start of each epoch makes the masks of epoch ``e`` depend only on (seed, e): a resumed run is then
    bit-identical to an uninterrupted one.
    """
    generators = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    if not generators:
        return
    seeds = np.random.SeedSequence([seed, epoch]).generate_state(len(generators)) % (2**31 - 1)
    for variable, value in zip(generators, seeds):
        variable.assign(np.array([value, 0], dtype=variable.dtype))


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
