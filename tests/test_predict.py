"""Prediction: a run directory (untrained DeepCSV, laid out per docs/formats.md §3) over ROOT ntuples and a
converted dataset; the output file's contract; errors; the CLI."""

import json
import shutil

import numpy as np
import pytest
import uproot

from deepjet_nb import cli
from deepjet_nb import evaluate as ev
from deepjet_nb.errors import DatasetError, InputFileError, RunError
from deepjet_nb.jets import iter_arrays
from deepjet_nb.predict import infer, predict
from deepjet_nb.rootio import count_entries
from deepjet_nb.run import open_run

DEEPCSV_CLASSES = {"B": ("isB", "isLeptonicB", "isLeptonicB_C"), "BB": ("isBB", "isGBB"),
                   "C": ("isC", "isCC", "isGCC"), "UDSG": ("isUD", "isS", "isG")}


@pytest.fixture(scope="module")
def dataset(synthetic_ntuples, tmp_path_factory):
    from deepjet_nb.convert import convert

    out = tmp_path_factory.mktemp("predict") / "data"
    result = convert(synthetic_ntuples, out, "deepcsv", jobs=1, fraction=0.5, progress=False)
    assert result.ok, result.failed
    return out


@pytest.fixture(scope="module")
def run_dir(dataset):
    """A run directory with an untrained, seeded DeepCSV model (prediction does not care about training)."""
    from fixtures.runs import write_untrained_run

    return write_untrained_run(dataset, dataset.parent / "run")


@pytest.fixture(scope="module")
def model(run_dir):
    return open_run(run_dir).load_model()


def read(path):
    with uproot.open(path) as f:
        return f["tree"].arrays(library="np")


def reference_predictions(run_dir, model, path):
    """Plain path: the conversion in one chunk, the model on everything at once."""
    run = open_run(run_dir)
    (chunk,) = list(iter_arrays(path, run.config, run.normalisation, step_size=10**9))
    probs = model.predict({g: chunk[g] for g in run.inputs}, verbose=0)
    return chunk, probs


def test_predict_root_input_in_chunks_matches_the_model_on_the_converted_jets(run_dir, model, synthetic_ntuples,
                                                                             tmp_path):
    out = predict(run_dir, [synthetic_ntuples[0]], tmp_path / "pred.root", model=model, step_size=400,
                  batch_size=128, progress=False)
    arrays = read(out)
    chunk, probs = reference_predictions(run_dir, model, synthetic_ntuples[0])
    assert len(arrays["jet_pt"]) == len(chunk["label"]) > 1000
    for i, cls in enumerate(DEEPCSV_CLASSES):
        np.testing.assert_allclose(arrays[f"prob_is{cls}"], probs[:, i], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(arrays[f"truth_is{cls}"], (chunk["label"] == i).astype(np.int32))
    np.testing.assert_allclose(sum(arrays[f"prob_is{c}"] for c in DEEPCSV_CLASSES), 1.0, atol=1e-5)
    # Truth classes agree with the raw flags carried as spectators.
    for cls, flags in DEEPCSV_CLASSES.items():
        np.testing.assert_array_equal(arrays[f"truth_is{cls}"], sum(arrays[f] for f in flags))
    assert arrays["isB"].dtype == arrays["truth_isB"].dtype == np.int32 and arrays["jet_pt"].dtype == np.float32
    for name in ("jet_pt", "jet_eta", "trackCounting_sip3dSig2", "isUndefined", "isGBB"):
        assert name in arrays
    with uproot.open(synthetic_ntuples[0]) as f:
        raw_pt = f["deepntuplizer/tree"]["jet_pt"].array(library="np")
    assert np.isin(arrays["jet_pt"], raw_pt).all()


def test_infer_on_the_converted_chunks_gives_the_numbers_of_the_prediction_file(run_dir, model, synthetic_ntuples,
                                                                               tmp_path):
    """``infer`` is the training side of an export's equivalence check: it must be predict's arithmetic exactly."""
    out = predict(run_dir, [synthetic_ntuples[0]], tmp_path / "pred.root", model=model, step_size=400,
                  batch_size=128, progress=False)
    run = open_run(run_dir)
    chunks = iter_arrays(synthetic_ntuples[0], run.config, run.normalisation, step_size=400)
    probs = np.concatenate([infer(model, run, chunk, batch_size=128) for chunk in chunks])
    arrays = read(out)
    assert probs.dtype == np.float32
    for i, cls in enumerate(DEEPCSV_CLASSES):
        np.testing.assert_array_equal(arrays[f"prob_is{cls}"], probs[:, i])


def test_entry_count_for_the_progress_bar_is_zero_for_an_unreadable_file(synthetic_ntuples, tmp_path):
    with uproot.open(synthetic_ntuples[0]) as f:
        expected = f["deepntuplizer/tree"].num_entries
    assert count_entries(synthetic_ntuples[0], "deepntuplizer/tree") == expected > 0
    assert count_entries(synthetic_ntuples[0], "no/such/tree") == 0
    assert count_entries(tmp_path / "missing.root", "deepntuplizer/tree") == 0


def test_predict_on_a_converted_dataset_and_evaluate_reads_the_result(run_dir, model, dataset, tmp_path):
    from deepjet_nb.dataset import open_dataset

    ds = open_dataset(dataset)
    name = ds.shard_names[1]
    with pytest.warns(UserWarning, match="resampled"):  # the deepcsv config resamples its training data
        out = predict(run_dir, [dataset], tmp_path / "pred.root", model=model, shards=[name], step_size=300,
                      progress=False)
    arrays = read(out)
    shard = ds.shard(name)
    probs = model.predict({g: shard[g] for g in ds.inputs}, verbose=0)
    np.testing.assert_allclose(arrays["prob_isB"], probs[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(arrays["jet_pt"], shard["spectators"][:, ds.spectators.index("jet_pt")])
    tagger = ev.read_predictions(out)
    assert sum(tagger.counts().values()) == len(arrays["jet_pt"])
    assert 0 <= ev.roc(tagger, "b_vs_udsg").auc <= 1


def test_run_directory_problems_name_the_directory_and_file(run_dir, tmp_path, synthetic_ntuples):
    with pytest.raises(RunError, match="no such run directory"):
        open_run(tmp_path / "nowhere")
    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    (broken / "model.keras").unlink()
    with pytest.raises(RunError, match=r"model\.keras or checkpoints/best\.keras"):
        open_run(broken).model_path()
    (broken / "checkpoints" / "best.keras").write_text("not a model")
    run = open_run(broken)
    assert run.model_path().name == "best.keras"  # falls back to the best checkpoint
    with pytest.raises(RunError, match="best.keras"):
        predict(run, [synthetic_ntuples[0]], tmp_path / "x.root", progress=False)
    (broken / "manifest.json").unlink()
    with pytest.raises(RunError, match="manifest.json"):
        open_run(broken)


def test_failed_prediction_leaves_no_output(run_dir, model, synthetic_ntuples, tmp_path):
    out = tmp_path / "pred.root"
    with pytest.raises(InputFileError, match="missing.root"):
        predict(run_dir, [synthetic_ntuples[0], tmp_path / "missing.root"], out, model=model, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_dataset_with_another_normalisation_is_refused(run_dir, model, dataset, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(dataset, other)
    manifest = json.loads((other / "manifest.json").read_text())
    group = next(iter(manifest["normalisation"]))
    feature = next(iter(manifest["normalisation"][group]))
    manifest["normalisation"][group][feature]["mean"] += 1.0
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="normalisation"):
        predict(run_dir, [other], tmp_path / "pred.root", model=model, progress=False)


def test_cli_predict_writes_the_file(run_dir, synthetic_ntuples, tmp_path, capsys):
    out = tmp_path / "cli.root"
    rc = cli.main(["predict", "--run", str(run_dir), "--out", str(out), "--no-progress", str(synthetic_ntuples[1])])
    assert rc == 0 and out.is_file()
    assert "jets" in capsys.readouterr().out
    rc = cli.main(["predict", "--run", str(tmp_path / "none"), "--out", str(out), str(synthetic_ntuples[1])])
    assert rc == 1 and "none" in capsys.readouterr().err


@pytest.mark.slow
def test_tutorial_predicts_with_the_given_runs_when_no_predictions_are_given(run_notebook, run_dir):
    nb = run_notebook("tutorials/05_evaluate.ipynb", predictions=[], runs={"deepcsv": str(run_dir)},
                      test_events=150, samples_dir="samples")
    assert (nb.out_dir / "predictions" / "deepcsv.root").is_file()
    metrics = json.loads((nb.out_dir / "metrics.json").read_text())
    assert set(metrics) == {"deepcsv", "track_counting"}
    # Track counting on real (Pythia) jets separates b from light jets; an untrained network need not.
    assert metrics["track_counting"]["b_vs_udsg"]["auc"] > 0.6


def test_predict_uses_the_checkpoint_validation_chose_and_records_it(run_dir, synthetic_ntuples, tmp_path):
    """By default the best checkpoint (lowest validation loss) predicts, not the final model; the file says which."""
    import keras

    from deepjet_nb.models import build_model
    from deepjet_nb.predict import prediction_model

    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    run = open_run(run_copy)
    keras.utils.set_random_seed(11)  # other weights than the final model's
    best = build_model("deepcsv", run.manifest)
    state = {"epoch": 5, "best_epoch": 2, "best_val_loss": 0.5, "history": []}
    run.save_checkpoint(best, "best", state)
    run.save_checkpoint(run.load_model("final"), "last", state)
    run.write_history([{"epoch": e, "val_loss": v} for e, v in ((1, 0.7), (2, 0.5), (3, 0.6), (4, 0.65), (5, 0.7))])

    by_default = read(predict(run, [synthetic_ntuples[0]], tmp_path / "auto.root", progress=False))
    final = read(predict(run, [synthetic_ntuples[0]], tmp_path / "final.root", which="final", progress=False))
    chunk = next(iter_arrays(synthetic_ntuples[0], run.config, run.normalisation, step_size=10**9))
    expected = best.predict({g: chunk[g] for g in run.inputs}, verbose=0)
    np.testing.assert_allclose(by_default["prob_isB"], expected[:, 0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(final["prob_isB"], by_default["prob_isB"])
    assert prediction_model(tmp_path / "auto.root") == {
        "run": str(run_copy.resolve()), "which": "best", "file": "checkpoints/best.keras", "epoch": 2,
        "val_loss": 0.5}
    assert prediction_model(tmp_path / "final.root")["which"] == "final"
    assert prediction_model(tmp_path / "final.root")["epoch"] == 5
