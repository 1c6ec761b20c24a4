"""Training dashboard: widget state, text lines, Stop button (headless), overhead bookkeeping."""

import io
import math

import numpy as np
import pytest

from deepjet_nb.errors import ArgumentError
from deepjet_nb.run import Run, read_history
from deepjet_nb.train import Trainer


def _tiny_fit(dashboard, epochs=2, steps=6):
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(steps * 8, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model.fit(x, y, batch_size=8, epochs=epochs, callbacks=[dashboard], verbose=0, shuffle=False)


def test_widget_state_follows_training():
    from deepjet_nb.dashboard import TrainingDashboard

    dash = TrainingDashboard(epochs=2, steps_per_epoch=6, batch_size=8, mode="widget", update_every=0,
                             loss_every=2, display=False, stream=io.StringIO())
    history = _tiny_fit(dash)
    assert dash._progress.value == dash._progress.max == 12
    assert "epoch 2/2" in dash._status.value and "jets/s" in dash._status.value
    assert "lr 0.01" in dash._lr_label.value
    assert [r["epoch"] for r in dash.epoch_rows] == [1, 2]
    assert dash.epoch_rows[-1]["loss"] == pytest.approx(history.history["loss"][-1])
    assert len(dash.batch_loss) == 6 and "<polyline" in dash._loss_plot.value
    assert dash.overhead_s > 0


def test_text_mode_prints_concise_lines():
    from deepjet_nb.dashboard import TrainingDashboard

    stream = io.StringIO()
    dash = TrainingDashboard(epochs=2, steps_per_epoch=6, batch_size=8, mode="text", text_every=0,
                             stream=stream)
    _tiny_fit(dash)
    lines = stream.getvalue().splitlines()
    assert any(line.startswith("epoch 1/2 step") and "jets/s" in line and "ETA" in line for line in lines)
    epoch_lines = [line for line in lines if "step" not in line]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"] and "loss" in epoch_lines[0]


def test_bad_mode_is_refused():
    from deepjet_nb.dashboard import TrainingDashboard

    with pytest.raises(ArgumentError, match="mode"):
        TrainingDashboard(epochs=1, steps_per_epoch=1, batch_size=1, mode="gui")


@pytest.mark.slow
def test_stop_button_ends_training_after_the_batch_with_a_valid_checkpoint(synthetic_deepcsv, tmp_path):
    import keras

    class ClickStop(keras.callbacks.Callback):
        """Press Stop in the second epoch, as its batch 1 ends (between two batches, as events arrive)."""

        def __init__(self, trainer):
            super().__init__()
            self.trainer, self.epoch, self.batches_after_click = trainer, 0, 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.trainer.dashboard.stop_requested:
                self.batches_after_click += 1
            if self.epoch == 1 and batch == 1:
                self.trainer.dashboard._stop_button.click()

    run = tmp_path / "stopped"
    trainer = Trainer("deepcsv", synthetic_deepcsv, run, epochs=4, batch_size=16, dashboard="widget")
    clicker = ClickStop(trainer)
    trainer.fit(callbacks=[clicker])
    dash = trainer.dashboard
    # Pressed as batch 1 ended: no other batch starts.
    assert trainer.stop_reason == "stopped" and dash.stop_requested and clicker.batches_after_click == 0
    assert dash._stop_button.disabled and dash._stop_button.description == "Stopped"
    assert dash._progress.value == dash.steps_per_epoch + 2  # one epoch and two batches
    assert "b-eff @ 1% mistag (" in dash._headline_value.value and "light jets): " in dash._headline_value.value
    # Only the finished epoch is recorded; the checkpoint is that epoch's and the final model is a copy of it.
    assert [r["epoch"] for r in read_history(run)] == [1]
    _, state = Run(run).load_checkpoint("last")
    assert state["epoch"] == 1
    assert (run / "model.keras").read_bytes() == (run / "checkpoints" / "last.keras").read_bytes()
    # A resume repeats the interrupted epoch and goes on to the end.
    Trainer("deepcsv", synthetic_deepcsv, run, resume=True, dashboard="off").fit()
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3, 4]


def test_rate_and_eta_leave_out_compilation_and_short_epochs_still_draw_the_running_loss():
    from deepjet_nb.dashboard import TrainingDashboard

    dash = TrainingDashboard(epochs=3, steps_per_epoch=4, batch_size=8, mode="widget", update_every=0,
                             display=False, stream=io.StringIO())
    seen = []

    import keras

    class Watch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append((dash.phase, len(dash._step_times)))

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, (x[:, 0] > 0).astype("int32"), batch_size=8, epochs=3, callbacks=[dash, Watch()], verbose=0)
    assert seen[0] == ("compiling", 0)  # the first step traces the model: shown, and not timed
    assert len(dash._step_times) == 3 * 4 - 1  # every later step is timed
    assert len(dash._epoch_end_times) == 3 and math.isfinite(dash.eta_s) and dash.eta_s == 0.0
    assert dash.jets_per_s == pytest.approx(8 / (sum(dash._step_times) / len(dash._step_times)))
    # Epochs of 4 steps still give running-loss points (one per step here).
    assert dash.loss_every == 1 and len(dash.batch_loss) == 12
    assert "train (running)" in dash._loss_plot.value and dash._loss_plot.value.count("<polyline") == 2
    assert "validation" not in dash._loss_plot.value  # no validation data here: no empty legend entry
    dash.finish()
    assert dash._stop_button.disabled and dash._stop_button.description == "Finished"
    dash.request_stop()  # a click after the end changes nothing
    assert not dash.stop_requested and dash._stop_button.description == "Finished"


def test_eta_counts_remaining_steps_and_validation_per_remaining_epoch():
    from deepjet_nb.dashboard import TrainingDashboard

    dash = TrainingDashboard(epochs=4, steps_per_epoch=10, batch_size=100, mode="text", stream=io.StringIO())
    dash.epoch, dash.step, dash._epochs_done = 1, 5, 1
    dash._step_times.extend([0.2] * 5)
    dash._epoch_end_times.append(3.0)
    # 40 - 15 = 25 steps of 0.2 s, and the validation of epochs 2, 3, 4 at 3 s each.
    assert dash.eta_s == pytest.approx(25 * 0.2 + 3 * 3.0)
    assert dash.jets_per_s == pytest.approx(500)
    dash.phase = "compiling"
    assert "compiling" in dash._progress_line()


@pytest.mark.slow
def test_start_puts_every_epoch_line_in_the_dashboards_own_output_area(synthetic_deepcsv, tmp_path, capsys):
    trainer = Trainer("deepcsv", synthetic_deepcsv, tmp_path / "run", epochs=3, batch_size=32, dashboard="widget")
    trainer.start()
    history = trainer.wait()
    lines = "".join(o["text"] for o in trainer.dashboard._lines.outputs)
    assert [line.split()[1] for line in lines.splitlines()] == ["1/3", "2/3", "3/3"] and len(history) == 3
    assert "epoch 1/3 loss" not in capsys.readouterr().out  # not printed under whichever cell ran last
    assert trainer.dashboard._stop_button.disabled and trainer.dashboard._stop_button.description == "Finished"


def _cells_after_training(notebook: str) -> list[str]:
    """The code cells of a tutorial that follow its training cell (the one calling ``trainer.fit()``)."""
    import json
    from pathlib import Path

    cells = [("".join(c["source"])) for c in json.loads((Path(__file__).parents[1] / notebook).read_text())["cells"]
             if c["cell_type"] == "code"]
    training = next(i for i, source in enumerate(cells) if "trainer.fit()" in source)
    return cells[training + 1:]


@pytest.mark.slow  # trains: two epochs after the stop
@pytest.mark.parametrize("model, notebook", [
    ("deepcsv", "tutorials/03_train_deepcsv.ipynb"),
    pytest.param("deepjet", "tutorials/04_train_deepjet.ipynb", marks=pytest.mark.slow)])
def test_stop_in_the_first_batch_leaves_a_resumable_run_and_the_tutorials_next_cells_run(
        model, notebook, synthetic_deepcsv, synthetic_deepjet, tmp_path, capsys):
    import keras

    from deepjet_nb.dataset import open_dataset
    from deepjet_nb.plots import HistoryPlot
    from deepjet_nb.record import read, record

    class ClickStopInFirstBatch(keras.callbacks.Callback):
        """Press Stop while the first batch (the one that compiles the model) runs."""

        def __init__(self, trainer):
            super().__init__()
            self.trainer = trainer

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0 and not self.trainer.dashboard.stop_requested:
                self.trainer.dashboard._stop_button.click()

    data = synthetic_deepcsv if model == "deepcsv" else synthetic_deepjet
    run_dir, out = tmp_path / "run", tmp_path
    trainer = Trainer(model, data, run_dir, epochs=2, batch_size=16, dashboard="widget", resume="auto",
                      steps_per_execution=1)
    history = trainer.fit(callbacks=[ClickStopInFirstBatch(trainer)])
    assert history == [] and trainer.stop_reason == "stopped" and not (run_dir / "history.csv").exists()
    assert trainer.dashboard._stop_button.description == "Stopped"

    namespace = {"history": history, "trainer": trainer, "run_dir": run_dir, "out": out, "out_dir": str(out),
                 "summary": None, "dataset": open_dataset(data), "record": record, "HistoryPlot": HistoryPlot}
    if model == "deepjet":
        from deepjet_nb.models.layers import input_batchnorm_layers
        namespace["input_batchnorm_layers"] = input_batchnorm_layers
        namespace["deepcsv_run"] = str(tmp_path / "no_deepcsv_run")  # 04 compares with 03's run when there is one
    for source in _cells_after_training(notebook):
        exec(compile(source, notebook, "exec"), namespace)  # raises if a cell does
    assert "no epoch finished" in capsys.readouterr().out
    assert read(out)["epochs"] == 0 and read(out)["stop_reason"] == "stopped" and read(out)["val_auc"] is None

    # Running the training cell again continues the run from its start and finishes it.
    history = Trainer(model, data, run_dir, epochs=2, batch_size=16, dashboard="off", resume="auto").fit()
    assert [row["epoch"] for row in history] == [1, 2] == [r["epoch"] for r in read_history(run_dir)]


def test_mini_plots_label_round_values_and_keep_the_legend_above_the_frame():
    import re

    from deepjet_nb.dashboard import svg_lines

    svg = svg_lines({"training": [(i, 1.8 - 0.1 * i) for i in range(12)], "validation": [(3, 1.5), (6, 1.2)]},
                    title="loss", xlabel="batches")
    frame_top = float(re.search(r'<rect x="[\d.]+" y="([\d.]+)"', svg).group(1))
    legend_ys = [float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" fill="#[0-9a-f]+">&#9632;', svg)]
    assert len(legend_ys) == 2 and all(y < frame_top for y in legend_ys)
    tick_labels = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert tick_labels == ["0.75", "1", "1.25", "1.5", "1.75"]
