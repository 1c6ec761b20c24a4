"""Models, losses, metrics, optimizers and callbacks of the user's own: import paths, files, objects; errors;
the run's record of the model source; resume, prediction, export and serving of a user-defined model."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from deepjet_nb.errors import ArgumentError, ModelError, RunError
from deepjet_nb.models import build_model, resolve
from deepjet_nb.run import open_run, read_history
from deepjet_nb.train import VAL_AUC, Trainer, validation_metrics

ROOT = Path(__file__).resolve().parents[1]

# A user's model file: a registered custom layer, a deep-sets builder with a hyper-parameter and a recipe, a
# loss, a metric, an optimizer factory and a callback, all outside the package.
USER_MODELS = '''
import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="usertest")
class MeanPool(layers.Layer):
    """Average over the objects of a list."""

    def call(self, x):
        return ops.mean(x, axis=1)


def build_sets(manifest, *, width=8):
    inputs = {g: keras.Input(shape=tuple(s["shape"]), name=g) for g, s in manifest["inputs"].items()}
    parts = [MeanPool()(layers.Dense(width, activation="relu")(x)) if len(x.shape) == 3 else x
             for x in inputs.values()]
    x = layers.Dense(width, activation="relu")(layers.Concatenate()(parts))
    out = layers.Dense(len(manifest["classes"]), activation="softmax")(x)
    return keras.Model(list(inputs.values()), out, name="sets")


build_sets.recipe = {"lr": 3e-3, "batch_size": 64}


def build_wrong_inputs(manifest):
    x = keras.Input(shape=(3,), name="nonsense")
    return keras.Model(x, layers.Dense(len(manifest["classes"]), activation="softmax")(x))


def build_wrong_output(manifest):
    inputs = [keras.Input(shape=tuple(s["shape"]), name=g) for g, s in manifest["inputs"].items()]
    x = layers.Concatenate()([layers.Flatten()(i) for i in inputs])
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


def build_broken(manifest):
    raise RuntimeError("width must be even")


@keras.saving.register_keras_serializable(package="usertest")
def smoothed_loss(y_true, y_pred):
    return keras.losses.sparse_categorical_crossentropy(y_true, 0.98 * y_pred + 0.02 / y_pred.shape[-1])


def top_probability(y_true, y_pred):
    return ops.max(y_pred, axis=-1)


def sgd(learning_rate):
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)


class StopAfterFirstEpoch(keras.callbacks.Callback):
    seen = []

    def on_epoch_end(self, epoch, logs=None):
        StopAfterFirstEpoch.seen.append(sorted(logs))
        self.model.stop_training = True
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "project" / "mymodels.py"
    path.parent.mkdir()
    path.write_text(USER_MODELS)
    return path


def _manifest(dataset):
    return json.loads((Path(dataset) / "manifest.json").read_text())


# -- naming a model ------------------------------------------------------------------------------------------


def test_file_and_module_import_paths_name_the_same_builder(user_file, monkeypatch, synthetic_deepjet):
    monkeypatch.syspath_prepend(str(user_file.parent))
    by_file = resolve(f"{user_file}:build_sets")
    by_module = resolve("mymodels:build_sets")
    assert by_file.source["kind"] == "file" and by_module.source["kind"] == "module"
    assert by_file.source["sha256"] == by_module.source["sha256"]
    assert by_file.spec == f"{user_file.resolve()}:build_sets" and by_file.name == "build_sets"
    model = build_model(f"{user_file}:build_sets", _manifest(synthetic_deepjet), width=4)
    assert [t.name for t in model.inputs] == ["global", "cpf", "npf", "sv"] and model.outputs[0].shape[-1] == 6


def test_a_relative_file_path_is_recorded_absolute(user_file, monkeypatch):
    monkeypatch.chdir(user_file.parent.parent)
    spec = resolve("project/mymodels.py:build_sets")
    assert spec.spec == f"{user_file.resolve()}:build_sets"


@pytest.mark.parametrize("text, message", [
    ("nowhere/missing.py:build", "no such file /"),
    ("no_such_package.models:build", "no module named 'no_such_package'"),
    ("deepjet_nb.models.dense:build_dens", "has no 'build_dens' (did you mean 'build_dense'?)"),
    ("deepjt", "unknown model 'deepjt'"),
])
def test_a_model_that_does_not_exist_is_a_one_line_error(text, message):
    with pytest.raises(ArgumentError, match=re.escape(message)) as err:
        resolve(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("builder, message", [
    ("build_wrong_inputs", r"inputs \['nonsense'\] are not the dataset's input groups"),
    ("build_wrong_output", "output shape \\[2\\] does not match the 6 classes"),
    ("build_broken", "the builder raised RuntimeError: width must be even"),
])
def test_a_builder_that_fails_or_does_not_fit_the_dataset_is_named(user_file, synthetic_deepjet, builder, message):
    with pytest.raises(ModelError, match=message) as err:
        build_model(f"{user_file}:{builder}", _manifest(synthetic_deepjet))
    assert builder in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_hyper_parameter_names_the_builder(user_file, synthetic_deepjet):
    with pytest.raises(ArgumentError, match="build_sets.*unexpected keyword argument 'depth'"):
        build_model(f"{user_file}:build_sets", _manifest(synthetic_deepjet), depth=3)


def test_a_model_error_stops_the_trainer_before_anything_is_written(user_file, synthetic_deepjet, tmp_path):
    with pytest.raises(ModelError):
        Trainer(f"{user_file}:build_sett", synthetic_deepjet, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# -- training a model of one's own ---------------------------------------------------------------------------


@pytest.fixture
def sets_run(user_file, synthetic_deepjet, tmp_path):
    trainer = Trainer(f"{user_file}:build_sets", synthetic_deepjet, tmp_path / "sets", epochs=2, dashboard="off",
                      hyper={"width": 6})
    trainer.fit()
    return trainer


def test_a_builder_from_a_file_trains_with_its_own_recipe_and_records_its_source(sets_run, user_file):
    config = json.loads((sets_run.run_dir / "train_config.json").read_text())
    assert (config["lr"], config["batch_size"], config["epochs"]) == (3e-3, 64, 2)  # builder's recipe, then ours
    source = config["model_source"]
    assert source["kind"] == "file" and source["file"] == str(user_file.resolve())
    assert source["layers"][0]["target"].endswith(":MeanPool")
    import hashlib

    assert source["sha256"] == hashlib.sha256(user_file.read_bytes()).hexdigest()
    assert open_run(sets_run.run_dir).model_name == "build_sets"
    assert [r["epoch"] for r in read_history(sets_run.run_dir)] == [1, 2]


def test_a_fresh_process_loads_the_model_with_its_custom_layer_from_the_users_file(sets_run, user_file):
    script = textwrap.dedent(f"""
        import json
        import numpy as np
        from deepjet_nb.run import open_run
        run = open_run({str(sets_run.run_dir)!r})
        model = run.load_model()
        x = {{g: np.ones((2, *s['shape']), np.float32) for g, s in run.inputs.items()}}
        print(json.dumps(model.predict(x, verbose=0).sum(axis=1).tolist()))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    sums = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    # Without the user's file the model cannot load: the error names the run and the missing file.
    user_file.rename(user_file.with_suffix(".moved"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert f"cannot load the run's model: {user_file.resolve()}: the source file recorded" in out.stderr


def test_resume_refuses_a_changed_builder_unless_allowed(sets_run, user_file, synthetic_deepjet):
    user_file.write_text(USER_MODELS + "\n# a later edit\n")
    with pytest.raises(RunError, match="source of .*build_sets.* changed .*allow_model_change"):
        Trainer(f"{user_file}:build_sets", synthetic_deepjet, sets_run.run_dir, resume=True, epochs=3)
    trainer = Trainer(f"{user_file}:build_sets", synthetic_deepjet, sets_run.run_dir, resume=True, epochs=3,
                      dashboard="off", allow_model_change=True)
    trainer.fit()
    assert [r["epoch"] for r in read_history(sets_run.run_dir)] == [1, 2, 3]
    assert "resuming with a changed model source" in (sets_run.run_dir / "logs" / "train.log").read_text()


def test_resume_without_a_model_takes_the_runs_own(sets_run, synthetic_deepjet):
    trainer = Trainer(None, synthetic_deepjet, sets_run.run_dir, resume=True, epochs=3, dashboard="off")
    assert trainer.model_spec.source["kind"] == "file"
    trainer.fit()
    assert len(trainer.history) == 3


@pytest.mark.slow
def test_a_builder_function_and_a_model_object_train_from_a_notebook(user_file, synthetic_deepjet, tmp_path):
    from deepjet_nb.userimport import load_object

    builder = load_object(f"{user_file}:build_sets")
    trained = Trainer(builder, synthetic_deepjet, tmp_path / "fn", epochs=1, dashboard="off")
    trained.fit()
    assert json.loads((tmp_path / "fn" / "train_config.json").read_text())["model_source"]["kind"] == "callable"
    model = build_model(builder, _manifest(synthetic_deepjet))
    given = Trainer(model, synthetic_deepjet, tmp_path / "obj", epochs=1, dashboard="off")
    given.fit()
    assert given.model is model
    source = json.loads((tmp_path / "obj" / "train_config.json").read_text())["model_source"]
    assert source["kind"] == "object" and len(source["sha256"]) == 64
    # A new model object of the same architecture (other layer names) resumes the run.
    again = Trainer(build_model(builder, _manifest(synthetic_deepjet)), synthetic_deepjet, tmp_path / "obj",
                    resume=True, epochs=2, dashboard="off")
    again.fit()
    assert len(again.history) == 2


@pytest.mark.slow
def test_loss_metric_optimizer_and_callback_from_import_paths(user_file, synthetic_deepjet, tmp_path):
    where = str(user_file)
    trainer = Trainer(f"{where}:build_sets", synthetic_deepjet, tmp_path / "parts", epochs=3, dashboard="off",
                      loss=f"{where}:smoothed_loss", metrics=[f"{where}:top_probability"],
                      optimizer=f"{where}:sgd", callbacks=[f"{where}:StopAfterFirstEpoch"])
    rows = trainer.fit()
    assert len(rows) == 1 and trainer.stop_reason == "stopped"  # the callback stopped training after epoch 1
    row = rows[0]
    assert {"top_probability", "val_top_probability", "val_loss", VAL_AUC} <= set(row)
    assert 0 < row["val_top_probability"] <= 1
    assert type(trainer.model.optimizer).__name__ == "SGD"
    assert json.loads((tmp_path / "parts" / "train_config.json").read_text())["components"]["loss"] == \
        f"{where}:smoothed_loss"
    # The user's callback ran after the trainer's bookkeeping: it saw the validation metrics.
    assert "val_top_probability" in type(trainer.components.callbacks[0]).seen[-1]
    # val_loss is the user's loss on the validation jets (the plain cross-entropy differs).
    x, label, weight = trainer._val.arrays()
    probs = trainer.model.predict(x, verbose=0).astype(np.float64)
    label, weight = label.astype(np.int64), weight.astype(np.float64)
    assert row["val_loss"] == pytest.approx(trainer.components.validation_values(probs, label, weight)["val_loss"],
                                            rel=1e-4)
    plain = validation_metrics(probs, label, weight, trainer.dataset.manifest)["val_loss"]
    assert row["val_loss"] != pytest.approx(plain, rel=1e-3)


@pytest.mark.slow
def test_resume_reimports_a_loss_given_as_an_import_path(user_file, synthetic_deepjet, tmp_path):
    where = str(user_file)
    Trainer(f"{where}:build_sets", synthetic_deepjet, tmp_path / "r", epochs=1, dashboard="off",
            loss=f"{where}:smoothed_loss").fit()
    resumed = Trainer(None, synthetic_deepjet, tmp_path / "r", resume=True, epochs=2, dashboard="off")
    assert resumed.components.custom_loss
    resumed.fit()
    assert resumed.model.optimizer.iterations.numpy() > 0 and len(resumed.history) == 2


def test_unknown_keras_names_are_argument_errors(synthetic_deepjet, tmp_path):
    with pytest.raises(ArgumentError, match="loss 'cross_entropyy'"):
        Trainer("dense", synthetic_deepjet, tmp_path / "a", loss="cross_entropyy")
    with pytest.raises(ArgumentError, match="optimizer 'adamm'"):
        Trainer("dense", synthetic_deepjet, tmp_path / "b", optimizer="adamm")
    with pytest.raises(ArgumentError, match="callback 'EarlyStopping'"):
        Trainer("dense", synthetic_deepjet, tmp_path / "c", callbacks=["EarlyStopping"])


# -- end to end: kill -9, resume, predict, evaluate, export, serve -------------------------------------------


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "deepjet_nb", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finished(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.mark.slow
def test_a_model_from_a_users_file_resumes_after_sigkill_predicts_exports_and_is_served(
        user_file, deepjet_dataset, ttbar_sample, tmp_path):
    from deepjet_nb.deploy import Predictor, open_model
    from deepjet_nb.evaluate import evaluate
    from deepjet_nb.service import Client, ServerProcess

    run = tmp_path / "sets"
    args = ("train", "--model", f"{user_file}:build_sets", "--hyper", "width=12", "--data", deepjet_dataset,
            "--out", run, "--epochs", 4, "--batch-size", 64)
    proc = _cli(*args)
    history = run / "history.csv"  # written after the epoch's checkpoint: wait for it, then kill -9
    deadline = time.time() + 300
    while not history.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = [r["epoch"] for r in read_history(run)]
    assert done == list(range(1, len(done) + 1)) and len(done) < 4
    # Resumed in a fresh process that never saw the user's file: the checkpoint's custom layer must load.
    out = _finished(_cli("train", "--out", run, "--data", deepjet_dataset, "--resume"))
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3, 4] and "4 epochs" in out
    assert f"resumed from checkpoints/last.keras after epoch {done[-1]}" in (run / "logs" / "train.log").read_text()

    predictions = tmp_path / "sets.root"
    _finished(_cli("predict", "--run", run, "--out", predictions, "--no-progress", ttbar_sample))
    metrics = evaluate([predictions], tmp_path / "eval", plots=False)
    auc = metrics["sets"]["b_vs_udsg"]["auc"]
    assert 0.5 < auc <= 1.0

    model_dir = tmp_path / "models" / "sets"
    _finished(_cli("export", "--run", run, "--out", model_dir, "--check", ttbar_sample, "--no-progress"))
    exported = open_model(model_dir)
    assert exported.equivalence["max_abs_diff"] <= 1e-4
    assert exported.card["model"] == "build_sets"

    predictor = Predictor(model_dir)
    rng = np.random.default_rng(0)
    x = {g: rng.normal(size=(3, *s)).astype(np.float32) for g, s in predictor.shapes.items()}
    with ServerProcess(model_dir.parent) as server:
        served = Client(server.url).predict("sets", x)
    for cls, probs in predictor.predict(x).items():
        np.testing.assert_allclose(served[cls], probs, atol=1e-6)


def test_a_scan_gives_each_point_the_absolute_path_of_a_users_model_file(user_file, monkeypatch):
    from deepjet_nb.scan.grid import plan

    monkeypatch.chdir(user_file.parent)
    planned = plan(ROOT / "notebooks" / "train.ipynb",
                   {"model": ["mymodels.py:build_sets", "deepjet"]})
    models = [point.parameters["model"] for point in planned.points]
    assert models == [f"{user_file.resolve()}:build_sets", "deepjet"]
