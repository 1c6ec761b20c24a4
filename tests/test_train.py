"""Input pipeline, Trainer and run directory, resume after SIGKILL, CLI errors, training notebooks."""

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepjet_nb import tutorial_samples
from deepjet_nb.dataset import open_dataset
from deepjet_nb.errors import ArgumentError, DatasetError, RunError
from deepjet_nb.run import Run, open_run, read_history
from deepjet_nb.batches import JetBatches, split_jets
from deepjet_nb.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "deepjet_nb", "train", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


# -- pipeline ----------------------------------------------------------------------------------------------


def _jet_ids(batches, epoch):
    # The first feature of the global group is unique per jet (random floats): use it as an identifier.
    return np.concatenate([x["global"][:, 1] for x, _, _ in batches.epoch_batches(epoch)])


def test_streaming_epoch_yields_every_jet_once_reshuffled_and_reproducibly(synthetic_deepjet):
    ds = open_dataset(synthetic_deepjet)
    stream = JetBatches(ds, batch_size=48, seed=3, buffer_shards=2)
    memory = JetBatches(ds, batch_size=48, seed=3, in_memory=True)
    all_ids = np.sort(stream.arrays()[0]["global"][:, 1])
    e0, e1 = _jet_ids(stream, 0), _jet_ids(stream, 1)
    assert len(e0) == ds.n_jets == stream.n_jets
    np.testing.assert_array_equal(np.sort(e0), all_ids)
    np.testing.assert_array_equal(np.sort(_jet_ids(memory, 0)), all_ids)
    assert not np.array_equal(e0, e1)  # reshuffled each epoch
    np.testing.assert_array_equal(e0, _jet_ids(JetBatches(ds, batch_size=48, seed=3), 0))  # seeded
    sizes = [len(y) for _, y, _ in stream.epoch_batches(0)]
    assert sizes == [48] * 5 + [16] and len(sizes) == stream.steps_per_epoch


def test_streaming_holds_about_buffer_shards_worth_of_jets_in_memory(synthetic_deepjet):
    ds = open_dataset(synthetic_deepjet)
    reads = []
    original = JetBatches._read
    batches = JetBatches(ds, batch_size=32, seed=0, buffer_shards=1)
    batches._read = lambda name, block=0, n_blocks=1: reads.append((name, block, n_blocks)) or \
        original(batches, name, block, n_blocks)
    seen_before_first_batch = []
    for i, _ in enumerate(batches.epoch_batches(0)):
        if i == 0:
            seen_before_first_batch = list(reads)
    # Before the first batch: one block of each shard, as many blocks per shard as shards (a window holds one
    # shard's worth of jets); over the epoch every block of every shard once.
    n = len(ds.shard_names)
    assert sorted(r[0] for r in seen_before_first_batch) == sorted(ds.shard_names)
    assert {r[2] for r in reads} == {n}
    assert sorted(reads) == sorted((name, b, n) for name in ds.shard_names for b in range(n))


def test_streaming_batches_mix_every_file_even_when_each_file_is_one_class(synthetic_deepjet):
    """Input files are often one process each: windows of whole files gave runs of batches from one file."""
    ds = open_dataset(synthetic_deepjet)
    owner = {}
    for name in ds.shard_names:
        for jet_id in ds.shard(name)["global"][:, 1]:
            owner[float(jet_id)] = name
    for seed in range(3):
        batches = JetBatches(ds, batch_size=64, seed=seed, buffer_shards=1)
        for epoch in range(2):
            for x, _, _ in list(batches.epoch_batches(epoch))[:-1]:  # the last batch may be a short remainder
                assert {owner[float(i)] for i in x["global"][:, 1]} == set(ds.shard_names)


def test_streaming_of_one_window_reads_whole_shards(synthetic_deepjet):
    ds = open_dataset(synthetic_deepjet)
    one = JetBatches(ds, batch_size=48, seed=3, buffer_shards=len(ds.shard_names))
    assert [len(y) for _, y, _ in one.epoch_batches(0)] == [48] * (ds.n_jets // 48) + [ds.n_jets % 48] * (
        ds.n_jets % 48 > 0)


def test_pipeline_rejects_unknown_shards(synthetic_deepjet):
    with pytest.raises(ArgumentError, match="nope"):
        JetBatches(open_dataset(synthetic_deepjet), ["nope"])


def test_validation_is_a_seeded_share_of_every_file():
    jets = {"ttbar": 1000, "qcd": 300, "tiny": 3}
    train, val = split_jets(jets, 0.2, seed=1)
    for name, n in jets.items():
        assert len(val[name]) == round(0.2 * n) and len(train[name]) + len(val[name]) == n
        assert not set(train[name]) & set(val[name])
    again = split_jets(jets, 0.2, seed=1)
    assert all(np.array_equal(again[1][name], val[name]) for name in jets)
    # a shard's split does not depend on the other shards
    alone = split_jets({"qcd": 300}, 0.2, seed=1)[1]["qcd"]
    assert np.array_equal(alone, val["qcd"])
    assert not np.array_equal(split_jets(jets, 0.2, seed=2)[1]["ttbar"], val["ttbar"])


def test_pipeline_reads_only_the_selected_jets_of_each_shard(synthetic_deepjet):
    ds = open_dataset(synthetic_deepjet)
    train, val = split_jets(ds.shard_jets(), 0.25, seed=0)
    batches = JetBatches(ds, val, batch_size=1000, shuffle=False)
    _, label, _ = batches.arrays()
    expected = np.concatenate([np.asarray(ds.shard(n)["label"])[val[n]] for n in ds.shard_names])
    np.testing.assert_array_equal(label, expected)
    assert batches.n_jets == sum(map(len, val.values())) == len(label)


# -- trainer and run directory -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deepcsv_run(synthetic_deepcsv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "deepcsv"
    trainer = Trainer("deepcsv", synthetic_deepcsv, out, epochs=3, batch_size=32, seed=7, dashboard="off")
    trainer.fit()
    return trainer


def test_run_directory_holds_configs_history_checkpoints_and_model(deepcsv_run, synthetic_deepcsv):
    run = deepcsv_run.run_dir
    for name in ("data_config.yaml", "manifest.json", "train_config.json", "split.json", "history.csv", "model.keras",
                 "checkpoints/last.keras", "checkpoints/best.keras", "checkpoints/last_state.json",
                 "logs/train.log"):
        assert (run / name).is_file(), name
    assert json.loads((run / "manifest.json").read_text()) == open_dataset(synthetic_deepcsv).manifest
    config = json.loads((run / "train_config.json").read_text())
    assert config["model"] == "deepcsv" and config["lr"] == 3e-3 and config["seed"] == 7
    assert config["shards"] == open_dataset(synthetic_deepcsv).shard_names
    split = json.loads((run / "split.json").read_text())
    jets = open_dataset(synthetic_deepcsv).shard_jets()
    for name, n in jets.items():  # every file trains and validates
        assert split["train"]["sources"][name] + split["validation"]["sources"][name] == n
        assert split["validation"]["sources"][name] == round(0.2 * n)
    assert sum(split["validation"]["classes"].values()) == sum(split["validation"]["sources"].values())
    rows = read_history(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "val_auc", "val_beff_at_mistag_0.01",
                "lr"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert 0.5 < rows[-1]["val_auc"] <= 1.0  # the synthetic classes are separable
    _, state = Run(run).load_checkpoint("last")
    assert state["epoch"] == 3 and [r["epoch"] for r in state["history"]] == [1, 2, 3]
    assert not list(run.rglob(".tmp-*"))  # nothing half-written left behind


@pytest.mark.slow
def test_trainer_applies_and_logs_the_runtime_settings_a_run_asks_for(synthetic_deepcsv, tmp_path):
    trainer = Trainer("deepcsv", synthetic_deepcsv, tmp_path / "run", epochs=1, batch_size=32, seed=7,
                      dashboard="off", steps_per_execution=4)
    trainer.fit()
    assert trainer.model.steps_per_execution == 4
    assert re.search(r"runtime: .*steps_per_execution=4", (tmp_path / "run" / "logs" / "train.log").read_text())
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["steps_per_execution"] == 4

def test_final_model_predicts_like_the_trained_model(deepcsv_run):
    ds = deepcsv_run.dataset
    x = {g: a[:16] for g, a in ds.load(mmap=True).items() if g in ds.inputs}
    expected = deepcsv_run.model.predict(x, verbose=0)
    np.testing.assert_allclose(open_run(deepcsv_run.run_dir).load_model("final").predict(x, verbose=0), expected, rtol=1e-6)


def test_same_seed_gives_the_same_numbers(deepcsv_run, synthetic_deepcsv, tmp_path):
    again = Trainer("deepcsv", synthetic_deepcsv, tmp_path / "again", epochs=3, batch_size=32, seed=7,
                    dashboard="off")
    again.fit()
    for a, b in zip(deepcsv_run.history, again.history):
        assert {k: v for k, v in a.items() if k != "time_s"} == {k: v for k, v in b.items() if k != "time_s"}


def test_resume_extends_a_finished_run_without_repeating_epochs(deepcsv_run, synthetic_deepcsv, tmp_path):
    import shutil

    run = tmp_path / "extended"
    shutil.copytree(deepcsv_run.run_dir, run)
    Trainer("deepcsv", synthetic_deepcsv, run, resume=True, epochs=4, dashboard="off").fit()
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3, 4]


@pytest.mark.slow
def test_deepjet_recipe_freezes_input_batchnorm_and_lowers_lr(synthetic_deepjet, tmp_path):
    trainer = Trainer("deepjet", synthetic_deepjet, tmp_path / "dj", epochs=2, batch_size=64, dashboard="off")
    rows = trainer.fit()
    assert [r["lr"] for r in rows] == [1e-3, 1e-4]
    frozen = [layer for layer in trainer.model.layers if layer.name.startswith("input_bn_")]
    assert len(frozen) == 4 and not any(layer.trainable for layer in frozen)
    reloaded = open_run(tmp_path / "dj").load_model("final")
    assert not any(layer.trainable for layer in reloaded.layers if layer.name.startswith("input_bn_"))


@pytest.mark.slow
def test_resume_after_sigkill_records_every_epoch_once(synthetic_deepjet, tmp_path):
    run = tmp_path / "killed"
    args = ("--model", "deepjet", "--data", synthetic_deepjet, "--out", run, "--epochs", 3, "--batch-size", 64)
    proc = _cli(*args)
    # history.csv is the last file an epoch writes (after the checkpoint, its commit point): wait for it, so
    # the kill does not fall between the two on a loaded machine.
    history = run / "history.csv"
    deadline = time.time() + 300
    while not history.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    # The recipe recompiles after epoch 1, so the process is still busy when the first epoch is recorded.
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert [r["epoch"] for r in read_history(run)] == [1]
    resumed = _cli(*args, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3]
    assert "3 epochs" in out
    log = (run / "logs" / "train.log").read_text()
    assert "resumed from" in log and "after epoch 1" in log
    _, state_in_zip = Run(run).load_checkpoint("last")
    assert state_in_zip["epoch"] == 3


# -- bad input ----------------------------------------------------------------------------------------------


def test_unknown_model_is_a_clear_error(synthetic_deepcsv, tmp_path):
    with pytest.raises(ArgumentError, match="unknown model 'bdt'"):
        Trainer("bdt", synthetic_deepcsv, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_data_dir_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="manifest.json"):
        Trainer("deepcsv", tmp_path, tmp_path / "run")


def test_existing_run_is_not_overwritten(deepcsv_run, synthetic_deepcsv):
    with pytest.raises(RunError, match="already holds a training run"):
        Trainer("deepcsv", synthetic_deepcsv, deepcsv_run.run_dir)


def test_resume_with_mismatched_config_is_refused(deepcsv_run, synthetic_deepcsv, synthetic_deepjet):
    with pytest.raises(RunError, match="model was 'deepcsv'"):
        Trainer("deepjet", synthetic_deepjet, deepcsv_run.run_dir, resume=True)
    with pytest.raises(RunError, match="batch_size was 32"):
        Trainer("deepcsv", synthetic_deepcsv, deepcsv_run.run_dir, resume=True, batch_size=64)


def test_resume_of_a_directory_without_a_run_is_refused(synthetic_deepcsv, tmp_path):
    with pytest.raises(RunError, match="train_config.json: no such training config"):
        Trainer("deepcsv", synthetic_deepcsv, tmp_path, resume=True)


def test_cli_turns_errors_into_one_line_and_exit_code(tmp_path):
    proc = _cli("--model", "deepcsv", "--data", tmp_path / "missing", "--out", tmp_path / "run")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("deepjet-nb train: error:") and "missing" in err


# -- notebooks (papermill, tiny parameters; executed copies go to tmp dirs) ----------------------------------


@pytest.mark.slow
def test_tutorial_03_trains_deepcsv_on_the_converted_dataset(deepcsv_dataset, run_notebook):
    nb = run_notebook("tutorials/03_train_deepcsv.ipynb", data=str(deepcsv_dataset), epochs=2, batch_size=256)
    summary = nb.summary
    rows = read_history(nb.out_dir / "run")
    assert summary["epochs"] == len(rows) == 2 and summary["parameters"] == 47_504
    best = min(rows, key=lambda row: row["val_loss"])  # the checkpoint that predicts
    assert summary["best_epoch"] == best["epoch"] and summary["val_auc"] == pytest.approx(best["val_auc"])
    assert 0.5 < summary["val_auc"] <= 1 and 0 <= summary["val_beff_at_mistag_0.01"] <= 1
    assert summary["val_light_jets"] > 0


@pytest.mark.slow
def test_tutorial_04_trains_deepjet_with_the_recipe(deepjet_dataset, run_notebook):
    nb = run_notebook("tutorials/04_train_deepjet.ipynb", data=str(deepjet_dataset), epochs=2, batch_size=256)
    summary = nb.summary
    recipe = tutorial_samples.recipe("deepjet")
    assert summary["epochs"] == 2 and summary["lr"] == [recipe["lr"], recipe["lr_after_freeze"]]
    assert len(summary["frozen_input_batchnorms"]) == 4 and 260_000 < summary["parameters"] < 272_000
    assert summary["deepcsv_val_auc"] is None and not summary["same_validation_jets"]  # no tutorial 03 run here
    assert [r["epoch"] for r in read_history(nb.out_dir / "run")] == [1, 2]


@pytest.mark.slow
def test_pipeline_notebook_writes_a_run_directory(deepcsv_dataset, run_notebook):
    nb = run_notebook("notebooks/train.ipynb", data=str(deepcsv_dataset), model="deepcsv", epochs=2,
                      batch_size=256, out_dir="run", seed=3)
    run = nb.out_dir
    rows = read_history(run)
    assert [r["epoch"] for r in rows] == [1, 2] and (run / "model.keras").is_file()
    assert json.loads((run / "train_config.json").read_text())["seed"] == 3
    assert nb.summary["epochs"] == 2 and nb.summary["stop_reason"] == "finished"



def test_history_plot_draws_epochs_from_one_and_names_the_run(deepcsv_run):
    from deepjet_nb.plots import HistoryPlot

    plot = HistoryPlot.from_run(deepcsv_run.run_dir)
    plot.draw()
    assert list(plot.series["loss"][0]) == [1, 2, 3]
    assert plot.title.startswith("deepcsv · ")
    plot.close()


def test_histories_written_from_epoch_zero_are_read_from_one(tmp_path):
    run = Run(tmp_path)
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.5\n1,1.2\n")
    assert [r["epoch"] for r in run.history()] == [1, 2]


def test_an_older_runs_val_auc_b_vs_udsg_column_is_read_as_val_auc(tmp_path):
    from deepjet_nb.plots import HistoryPlot

    (tmp_path / "history.csv").write_text("epoch,loss,val_auc_b_vs_udsg\n1,1.5,0.81\n2,1.2,0.84\n")
    rows = read_history(tmp_path)
    assert [r["val_auc"] for r in rows] == [0.81, 0.84] and all("val_auc_b_vs_udsg" not in r for r in rows)
    plot = HistoryPlot(rows, metric="val_auc_b_vs_udsg")  # what notebooks of older versions asked for
    plot.draw()
    assert list(plot.series["val_auc"][1]) == [0.81, 0.84]
    plot.close()
