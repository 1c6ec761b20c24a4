"""Training: a :class:`Trainer` for notebooks and the ``deepjet-nb train`` command, writing a run directory.

A run directory (docs/formats.md §3) holds copies of the data config and manifest, the training config, one
``history.csv`` row per finished epoch, the last and best checkpoints (written atomically after each epoch),
the final model and a text log. ``resume=True`` continues from the last checkpoint after a crash, a SIGKILL or
a Stop: the checkpoint carries the run state (finished epochs, history, best loss, learning rate, early-stopping
counters) inside the ``.keras`` file itself, so model and state can never disagree, and the input pipeline
shuffles each epoch from ``(seed, epoch)``, so a resumed epoch sees the data an uninterrupted run would.
Epochs are counted from 1 in everything a person reads (``history.csv``, the log, the dashboard, plots).

The model may be a built-in name or one of the user's own (an import path, a builder function, a
``keras.Model``), recorded with its source's checksum; losses, metrics, optimizers and callbacks may be the
user's too, and a credential monitor keeps Kerberos tickets and tokens alive (docs/custom_models.md).

Stop (the dashboard's button, or :meth:`Trainer.stop`) ends training after the current batch, also while
``fit()`` blocks a notebook cell; so does a kernel interrupt, which then re-raises KeyboardInterrupt. A
checkpoint is only ever written at the end of an epoch: after a Stop mid-epoch the last finished epoch's
checkpoint stays the valid one, ``model.keras`` becomes a copy of it, and a resume repeats the cut epoch.

Recipes (docs/reference.md §4): DeepCSV Adam lr 3e-3; DeepJet 1 epoch at lr 1e-3, then the input batch norms are
frozen and training goes on at lr 1e-4 (with a fresh optimizer, as the CMS recipe recompiles the model).
On top: learning rate halved when the validation loss stalls (``lr_patience`` epochs), early stopping after
``patience`` epochs without improvement. Validation is a seeded share of the jets of every input file
(``deepjet_nb.batches.split_jets``), recorded in the run's ``split.json``.

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

import numpy as np

from ._atomic import check_output, remove_stale
from ._lock import output_lock
from .components import reimportable, resolve_components
from .credentials import monitor_option
from .errors import ArgumentError, DatasetError, DeepJetError, RunError
from .flavours import CLASS_FLAVOURS
from .models import MODEL_NAMES, custom_layer_sources, reseed_dropout, resolve, source_changes
from .run import CHECKPOINTS, MODEL_FILES, STATE_VERSION, Run
from .train_config import RECIPES, RESUME_FIXED, TrainConfig, recipe_of
from .validation import HEADLINE, VAL_AUC, VAL_BEFF, by_flavour, split_record, validation_metrics

# RECIPES, TrainConfig (deepjet_nb.train_config) and the validation metrics' names and function
# (deepjet_nb.validation) are also importable from here, where they lived before.
__all__ = ["RECIPES", "TrainConfig", "Trainer", "train", "validation_metrics", "VAL_AUC", "VAL_BEFF"]

# How training ended when a credential could not be renewed (see deepjet_nb.credentials).
CREDENTIALS_STOP = "credentials expiring"

class Trainer:
    """Train ``model`` on the converted dataset ``data`` into the run directory ``out``.

    Parameters: ``model`` a name of :data:`deepjet_nb.models.MODEL_NAMES`, an import path to a builder of the
    user's own (``package.module:function`` or ``path/to/file.py:function``), a builder function or a
    ``keras.Model`` (None on a resume: the run's own, when it was named by a name or import path); ``data`` a
    converted dataset directory; ``out`` the run directory (created; must not hold another run unless
    ``resume``); ``resume`` True continues the run in ``out`` (arguments left ``None`` are taken from it),
    "auto" continues it if there is one and starts a new run otherwise, saying which (a finished run is not
    trained again: :meth:`fit` then loads its final model and returns its history); ``dashboard`` "auto"
    (widget in a notebook, text elsewhere), "widget", "text" or "off"; ``loss``, ``metrics``, ``optimizer``,
    ``callbacks``: Keras objects, Keras names or import paths (:mod:`deepjet_nb.components`; default: weighted
    sparse categorical cross-entropy, accuracy, Adam, none); ``credentials`` "auto" (watch the Kerberos ticket
    and bearer token when the inputs are ``root://`` URLs), True, False or a
    :class:`~deepjet_nb.credentials.CredentialMonitor`; ``allow_model_change`` resume although the model's
    source file changed since the run started; other keywords are :class:`TrainConfig` fields.

    Callbacks run in this order at every event: the trainer's own bookkeeping (learning rate at an epoch's
    start; validation metrics, history and checkpoints at its end), the credential monitor, the dashboard, then
    the ``callbacks`` given here and those given to :meth:`fit`. A user callback thus sees the validation
    metrics in the epoch logs, and one that sets ``model.stop_training`` ends training like Stop.

    Raises (at construction, before any training): :class:`ArgumentError` for an unknown model or bad value,
    :class:`~deepjet_nb.errors.ModelError` for a model, loss, metric, optimizer or callback that cannot be
    imported, :class:`DatasetError` for a data directory that is not a converted dataset, :class:`RunError` when
    ``out`` holds another run (without ``resume``) or a run that does not match these arguments or data.
    """

    def __init__(self, model, data, out, *, resume: bool | str = False, dashboard: str = "auto",
                 epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 seed: int | None = None, loss=None, metrics: list | None = None, optimizer=None,
                 callbacks: list | None = None, credentials="auto", allow_model_change: bool = False, **options):
        from .dataset import open_dataset

        if model is None and not resume:
            raise ArgumentError("Trainer: model is required for a new run (a name, an import path, a builder "
                                "function or a keras.Model)")
        # unknown model or import path -> ArgumentError / ModelError, before anything is written
        self.model_spec = resolve(model) if model is not None else None
        self.model_change: str | None = None  # why the model source differs from a resumed run's (allowed)
        self.allow_model_change = bool(allow_model_change)
        self._given_components = {"loss": loss, "metrics": metrics, "optimizer": optimizer, "callbacks": callbacks}
        self.components = resolve_components(**self._given_components)
        self.credentials = monitor_option(credentials)
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
            self.config = self._resumed_config(str(data), given)
        else:
            self._refuse_existing_run()
            self.config = self._new_config(str(data), given)
        self.model = None
        self._parts = None  # (train, validation) jet indices, drawn once (_split)
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

        from .batches import JetBatches

        cfg = self.config
        if self._finished_before():
            self.model = self.run.load_model("final", custom_objects=self.components.custom_objects())
            self.history = self.run.history()
            self.stop_reason = (self.run.last_state() or {}).get("stopped")
            print(f"{self.run_dir}: run complete, {len(self.history)}/{cfg.epochs} epochs; nothing to train")
            return self.history
        self._write_run_files()
        self._log(f"start: model={cfg.model} data={cfg.data} epochs={cfg.epochs} batch_size={cfg.batch_size} "
                  f"seed={cfg.seed} resume={self.resuming}")
        self._apply_runtime()
        keras.utils.set_random_seed(cfg.seed)
        state = self._restore_or_build()
        if self.stop_reason is None and state["stopped"] == "early stopping":
            self.stop_reason = "early stopping"
        self._stop_requested = False
        train = self._train_batches()
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
        # The order is documented (Trainer): bookkeeping first, so the others see the validation metrics.
        callbacks = [_hooks_callback(self), *self._credential_callbacks(),
                     *([self.dashboard] if self.dashboard else []), *self.components.callbacks,
                     *resolve_components(callbacks=callbacks).callbacks]
        try:
            # Keras counts epochs from 0: the next one to train is the number already finished.
            for start, end, frozen in self._phases(state["epoch"]):
                if self.stop_reason or self._stop_requested:
                    break
                self._enter_phase(frozen, state)
                self.model.fit(train.as_tf_dataset(start_epoch=start), epochs=end, initial_epoch=start,
                               steps_per_epoch=train.steps_per_epoch, callbacks=callbacks, shuffle=False,
                               verbose=0)
                if self.model.stop_training and not (self.stop_reason or self._stop_requested):
                    self.stop_reason = "stopped"  # a user's callback ended training, after a finished epoch
                    self._log(f"stopped by a callback after epoch {state['epoch']}")

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

    def _new_config(self, data, given) -> TrainConfig:
        spec = self.model_spec
        cfg = TrainConfig(model=spec.spec, data=data, model_source=dict(spec.source),
                          components=self.components.record(), **given).with_recipe(recipe_of(spec))
        cfg.check()
        if not self.dataset.n_jets:
            raise DatasetError(f"{data}: the dataset holds no jets")
        return dataclasses.replace(cfg, shards=self.dataset.shard_names,
                                   data_config_hash=self.dataset.manifest.config_hash)

    def _resumed_config(self, data, given) -> TrainConfig:
        try:
            stored = TrainConfig(**self.run.train_config())
        except TypeError as err:
            raise RunError(f"{self.run.file('train_config.json')}: unreadable training config ({err})") from None
        given = {**given, **self._resumed_model(stored)}
        if any(v is not None for v in self._given_components.values()):
            given["components"] = self.components.record()
        elif stored.components:
            self.components = resolve_components(**reimportable(stored.components))
        wanted = {**given, "data_config_hash": self.dataset.manifest.config_hash}
        for key in RESUME_FIXED:
            if key in wanted and wanted[key] != getattr(stored, key):
                what = "data (manifest config_hash)" if key == "data_config_hash" else key
                raise RunError(f"{self.run_dir}: cannot resume, {what} was {getattr(stored, key)!r} in "
                               f"train_config.json but is {wanted[key]!r} now")
        missing = sorted(set(stored.shards) - set(self.dataset.shard_names))
        if missing:
            raise RunError(f"{self.run_dir}: cannot resume, shards {missing} are not in dataset {data}")
        cfg = dataclasses.replace(stored, data=data, **{k: v for k, v in given.items() if k not in RESUME_FIXED})
        cfg.check()
        return cfg

    def _resumed_model(self, stored: TrainConfig) -> dict:
        """Check the model of a resume against the run's: the same name or import path, and (unless
        ``allow_model_change``) an unchanged source; no model given takes the run's own. Returns the config
        values to carry forward (the model's source record, with a changed checksum when allowed)."""
        recorded = stored.model_source or {"kind": "builtin" if stored.model in MODEL_NAMES else "module"}
        if self.model_spec is None:
            if recorded.get("kind") in ("callable", "object"):
                raise RunError(f"{self.run_dir}: the run's model {stored.model!r} was given as a "
                               f"{recorded['kind']} in Python; pass it again to resume")
            self.model_spec = resolve(stored.model)
        spec = self.model_spec
        both_objects = spec.source.get("kind") == "object" == recorded.get("kind")  # their names may differ
        if not both_objects and spec.spec != stored.model:
            raise RunError(f"{self.run_dir}: cannot resume, model was {stored.model!r} in train_config.json but is "
                           f"{spec.spec!r} now")
        self.model_change = source_changes(recorded, spec.source) if stored.model_source else None
        if self.model_change and not self.allow_model_change:
            raise RunError(f"{self.run_dir}: cannot resume, {self.model_change}; pass allow_model_change=True "
                           f"(--allow-model-change) to resume with the changed model")
        return {"model_source": {**recorded, **spec.source, "layers": recorded.get("layers", [])}}

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
            self.model, state = self.run.load_checkpoint("last", custom_objects=self.components.custom_objects())
            self._refuse_uncompiled_checkpoint()
            if self.model_change:
                self._log(f"resuming with a changed model source (allowed): {self.model_change}")
            built = state.get("model", self.model.name if self.model.name in MODEL_NAMES else self.config.model)
            if built != self.config.model:
                raise RunError(f"{self.run.file(MODEL_FILES['last'])}: the checkpoint holds a {built} model, "
                               f"train_config.json says {self.config.model}; the run directory is inconsistent")
            self._log(f"resumed from {MODEL_FILES['last']} after epoch {state['epoch']}")
            # history.csv may have missed the last rows if the process died after the checkpoint.
            self.history = list(state["history"])
            self.run.write_history(self.history)
        else:
            self.model = build_model(self.model_spec, self.dataset.manifest, **self.config.hyper)
            self._record_custom_layers()
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
        parts = self.components
        # argmax accuracy is the one that means something for a softmax over exclusive classes; user metrics
        # are weighted by the jet weights like it.
        self.model.compile(optimizer=parts.make_optimizer(lr), loss=parts.make_loss(),
                           weighted_metrics=parts.make_metrics(),
                           steps_per_execution=self._runtime.get("steps_per_execution", 1))

    def _apply_runtime(self):
        """Thread pools and steps per execution: the run's own, else the model's measured choice
        (:data:`deepjet_nb.tf_runtime.TRAINING_SETTINGS`); logged, as they change the speed, not the numbers.
        Op determinism: the run's own, else :data:`deepjet_nb.tf_runtime.DETERMINISTIC`."""
        from .tf_runtime import DETERMINISTIC, apply_determinism, apply_threads, settings_for

        cfg = self.config
        self._runtime = settings_for(cfg.model, intra_op_threads=cfg.intra_op_threads,
                                     inter_op_threads=cfg.inter_op_threads,
                                     steps_per_execution=cfg.steps_per_execution)
        threads = self._runtime.get("intra_op_threads"), self._runtime.get("inter_op_threads")
        if any(t is not None for t in threads) and not apply_threads(*threads):
            self._log(f"TensorFlow was already running in this process: its thread pools stay as they are "
                      f"(wanted intra_op={threads[0]}, inter_op={threads[1]}; start a fresh kernel to apply them)")
            self._runtime = {k: v for k, v in self._runtime.items() if k == "steps_per_execution"}
        deterministic = DETERMINISTIC if cfg.deterministic is None else cfg.deterministic
        if not apply_determinism(deterministic):
            self._log("TensorFlow's op determinism could not be switched off in this process: it stays on")
        self._runtime["deterministic"] = deterministic
        if self._runtime:
            self._log("runtime: " + " ".join(f"{k}={v}" for k, v in sorted(self._runtime.items())))

    def _record_custom_layers(self):
        """Record the user's custom layer classes (for loading the model in another process)."""
        layers = custom_layer_sources(self.model)
        if layers or self.config.model_source.get("layers"):
            self.config.model_source["layers"] = layers
            self.run.write_train_config(dataclasses.asdict(self.config))

    def _refuse_uncompiled_checkpoint(self):
        why = getattr(self.model, "_deepjet_nb_uncompiled", None)
        if why:
            given = {k: v for k, v in self.config.components.items() if v}
            raise RunError(f"{self.run.file(MODEL_FILES['last'])}: cannot resume, the checkpoint was compiled with "
                           f"{given} and Keras cannot rebuild them here ({why}); pass loss=, metrics=, "
                           f"optimizer= again (objects typed into a notebook are not recorded)")

    # -- per-epoch bookkeeping (called by the hooks callback) -------------------------------------------

    def _on_epoch_begin(self, epoch: int):
        self._epoch_start = time.perf_counter()
        self._steps_seen = 0
        self.model.optimizer.learning_rate = self._state["lr"]
        reseed_dropout(self.model, self.config.seed, epoch)

    def _on_batch_end(self, batch: int, logs: dict | None = None):
        # Keras' batch index, not a count of calls: with steps_per_execution > 1 it calls back once per chunk.
        self._steps_seen = batch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._stop_on_non_finite_loss(loss)
        if self._stop_requested:
            self.model.stop_training = True

    def _stop_on_non_finite_loss(self, loss: float):
        """Stop at the step whose loss is NaN or inf (Keras' running mean turns non-finite at that very step):
        the weights are already ruined, so finishing the epoch would only write a useless model."""
        finished = self._state["epoch"]
        message = (f"{self.run_dir}: the training loss became {loss} at step {self._steps_seen} of epoch "
                   f"{finished + 1} (step {finished * self._steps + self._steps_seen} of the run); training "
                   f"stopped there. The checkpoint of epoch {finished} is intact; try a lower learning rate "
                   f"(--lr) or check the data (deepjet-nb verify {self.config.data})")
        self._log(message)
        raise RunError(message, path=self.run_dir)

    def _on_epoch_end(self, epoch: int, logs: dict):
        state, cfg = self._state, self.config
        epoch += 1  # Keras counts from 0, people (and history.csv) from 1
        if self._steps_seen < self._steps:
            # Stopped mid-epoch: nothing of this epoch is recorded; the last checkpoint stays the valid one.
            self.stop_reason = self.stop_reason or "stopped"
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
        if self.stop_reason in ("stopped", "interrupted", CREDENTIALS_STOP):
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
        """(train, validation): shard name → jet indices (:func:`deepjet_nb.batches.split_jets`), the training
        jets drawn by their weights as ``weights`` says (:func:`deepjet_nb.batches.draw_by_weight`)."""
        from .batches import draw_by_weight, split_jets

        if self._parts is None:  # the fields it depends on cannot change for a run (RESUME_FIXED)
            cfg = self.config
            jets = self.dataset.shard_jets()
            train, validation = split_jets({name: jets[name] for name in cfg.shards}, cfg.val_fraction, cfg.seed,
                                           cfg.train_fraction)
            self._parts = draw_by_weight(self.dataset, train, cfg.weights, cfg.seed), validation
        return self._parts

    def split_record(self) -> dict:
        """What ``split.json`` holds: jets per source file and per class, for training and validation."""
        return split_record(self.dataset, self._split(), self.config.train_fraction, self.config.weights)

    def _validation_metrics(self) -> dict:
        """val_loss, val_accuracy (weighted like training), b vs udsg AUC and b-eff at 1 % mistag."""
        if self._val is None:
            return {}
        probs = self.model.predict(self._val.as_tf_dataset(repeat=False), verbose=0).astype(np.float64)
        label, weight = self._val_truth
        # With a loss of the user's own, val_loss is that loss (early stopping and checkpoints follow it).
        return {**validation_metrics(probs, label, weight, self.dataset.manifest),
                **self.components.validation_values(probs, label, weight)}

    # -- credentials -------------------------------------------------------------------------------------

    def _credential_callbacks(self) -> list:
        """The credential monitor's callback, when it is on (``credentials``; "auto": root:// inputs)."""
        from .credentials import credential_callback, monitor_for

        monitor = monitor_for(self.credentials, self.config.data, self.dataset.manifest)
        return [] if monitor is None else [
            credential_callback(monitor, on_message=self._credential_message, on_stop=self._credential_stop)]

    def _credential_message(self, message: str):
        self._log(f"credentials: {message}")
        if self.dashboard is not None:
            self.dashboard.notice(f"credentials: {message}")
        else:
            print(f"{self.run_dir}: credentials: {message}", flush=True)

    def _credential_stop(self, reason: str):
        """Stop cleanly, keeping the last finished epoch's checkpoint, and say how to go on."""
        self.stop_reason = CREDENTIALS_STOP
        done = self._state["epoch"]
        kept = f"the checkpoint of epoch {done} is kept ({MODEL_FILES['last']})" if done else "no epoch had finished"
        self._credential_message(
            f"stopping: {reason}. {kept.capitalize()}; renew the credential, then resume: deepjet-nb train "
            f"--data {self.config.data} --out {self.run_dir} --resume (or Trainer(..., resume=True))")

    # -- dashboard ---------------------------------------------------------------------------------------

    def _train_batches(self):
        from .batches import JetBatches

        cfg = self.config
        return JetBatches(self.dataset, self._split()[0], batch_size=cfg.batch_size, seed=cfg.seed,
                          buffer_shards=cfg.buffer_shards, in_memory=cfg.in_memory, unit_weights=cfg.weights != "loss")

    def _make_dashboard(self, train):
        if self.dashboard_mode == "off":
            return None
        from .dashboard import TrainingDashboard

        key, label = HEADLINE
        n_light = self.validation_light_jets()
        if by_flavour(self.dataset.manifest):
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
        if not by_flavour(self.dataset.manifest):
            return int(classes[self.dataset.classes[-1]])
        flavours = {**CLASS_FLAVOURS, **(self.dataset.manifest.class_flavours or {})}
        return sum(n for cls, n in classes.items() if flavours.get(cls) == "udsg")


def train(model: str, data, out, **kwargs) -> Trainer:
    """Create a :class:`Trainer` with ``kwargs`` and run it; return the trainer (``.history``, ``.model``)."""
    trainer = Trainer(model, data, out, **kwargs)
    trainer.fit()
    return trainer


# ---------------------------------------------------------------------------------------------------------
# private


def _hooks_callback(trainer: Trainer):
    """A Keras callback that hands epoch and batch events to ``trainer`` (defined here to import Keras late)."""
    import keras

    class _TrainerHooks(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            trainer._on_epoch_begin(epoch)

        def on_train_batch_end(self, batch, logs=None):
            trainer._on_batch_end(batch, logs)

        def on_epoch_end(self, epoch, logs=None):
            trainer._on_epoch_end(epoch, logs if logs is not None else {})

    return _TrainerHooks()


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
