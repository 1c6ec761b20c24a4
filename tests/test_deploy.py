"""Deployment (docs/formats.md §6): export of deepcsv, deepjet and pcnn runs to ONNX with a model card, the
equivalence check against the training framework (in memory), the int8 acceptance rule, atomic replacement, the
TensorFlow-free Predictor (ROOT files through the conversion, thread sharing, a light import), the old import
paths, the CLI and tutorial 06.

Runs are untrained, seeded models on the small converted datasets of the session (fixtures/datasets.py):
equivalence does not depend on training.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import uproot

from deepjet_nb import cli
from deepjet_nb import deploy, equivalence
from deepjet_nb._lock import LockedError, output_lock
from deepjet_nb.deploy import export
from deepjet_nb.predictor import (CARD, EQUIVALENCE, EQUIVALENCE_PLOT, INT8_ONNX, MODEL_ONNX, OPTIMISED_ONNX,
                                  OUTPUT, BATCH_AXIS, Predictor, open_model, write_checksums)
from deepjet_nb.errors import ArgumentError, DeployError
from deepjet_nb.predict import predict

ROOT = Path(__file__).resolve().parents[1]


def make_run(dataset, out, model_name, seed=3):
    """A run directory (docs/formats.md §3) holding an untrained, seeded ``model_name`` for ``dataset``."""
    import keras
    import yaml

    from deepjet_nb.models import build_model

    manifest = json.loads((Path(dataset) / "manifest.json").read_text())
    out.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "data_config.yaml").write_text(yaml.safe_dump(manifest["config"], sort_keys=False))
    (out / "train_config.json").write_text(json.dumps({"model": model_name, "epochs": 0}))
    keras.utils.set_random_seed(seed)
    build_model(model_name, manifest).save(out / "model.keras")
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="module")
def deepcsv_run(deepcsv_dataset, workdir):
    return make_run(deepcsv_dataset, workdir / "run_deepcsv", "deepcsv")


@pytest.fixture(scope="module")
def deepjet_run(deepjet_dataset, workdir):
    return make_run(deepjet_dataset, workdir / "run_deepjet", "deepjet")


@pytest.fixture(scope="module")
def deepcsv_model(deepcsv_run, ttbar_sample, workdir):
    return export(deepcsv_run, workdir / "models" / "deepcsv", check=[ttbar_sample], progress=False)


@pytest.fixture(scope="module")
def deepjet_model(deepjet_run, ttbar_sample, workdir):
    """DeepJet exported with an int8 model; the b-efficiency rule is relaxed so the untrained net's int8 model
    is published whatever its change (the rule itself is tested with both outcomes below)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(equivalence, "INT8_MAX_BEFF_CHANGE", 1.0)
        return export(deepjet_run, workdir / "models" / "deepjet", check=[ttbar_sample], quantize="int8",
                      progress=False)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- the exported directory -----------------------------------------------------------------------------


def test_export_writes_onnx_named_after_the_input_groups_with_a_dynamic_batch_axis(deepjet_model, deepjet_run):
    import onnx

    from deepjet_nb.run import open_run

    run = open_run(deepjet_run)
    graph = onnx.load(str(deepjet_model.file(MODEL_ONNX))).graph
    assert [i.name for i in graph.input] == list(run.inputs) == ["global", "cpf", "npf", "sv"]
    for value, (group, spec) in zip(graph.input, run.inputs.items()):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == BATCH_AXIS
        assert [d.dim_value for d in dims[1:]] == spec["shape"]
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in graph.output] == [OUTPUT]
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 6


def test_model_card_has_everything_from_branches_to_probabilities(deepjet_model, deepjet_run):
    from deepjet_nb.config import load_config
    from deepjet_nb.run import open_run

    run = open_run(deepjet_run)
    card = json.loads(deepjet_model.file(CARD).read_text())
    assert card["classes"] == ["B", "BB", "LeptB", "C", "UDS", "G"]
    assert card["discriminants"]["b"] == "P(B) + P(BB) + P(LeptB)"
    assert card["discriminants"]["CvsL"] == "(P(C)) / (P(C) + P(UDS) + P(G))"
    cfg = load_config("deepjet")
    assert card["data_config_hash"] == run.config.hash == run.manifest.config_hash
    assert card["data_config"] == run.config.to_dict()
    cpf = card["inputs"]["cpf"]
    assert cpf["shape"] == [25, 16] and cpf["objects"] and cpf["sort_by"] == "Cpfcan_BtagPf_trackSip2dSig"
    assert cpf["features"] == list(cfg.group("cpf").branches) and cpf["pad_value"] == 0.0
    assert card["normalisation"] == run.normalisation
    assert card["preprocessing"]["default_values"] == list(cfg.preprocessing.default_values)
    assert card["preprocessing"]["clip"] == run.config.preprocessing.clip
    assert card["tree"] == "deepntuplizer/tree"
    for key in ("keras", "tensorflow", "tf2onnx", "onnx", "onnxruntime", "deepjet_nb", "opset"):
        assert card["versions"][key]
    for record in card["files"].values():
        assert sha256(deepjet_model.file(record["file"])) == record["sha256"]
    assert card["source"]["model_sha256"] == sha256(deepjet_run / "model.keras")
    # an untrained run has no best checkpoint: the card says the final model was exported
    assert card["source"]["checkpoint"] == {"which": "final", "file": "model.keras", "epoch": None, "val_loss": None}
    assert card["parameters"] == 267_258
    # The ONNX file is smaller than the Keras checkpoint it came from.
    assert 0 < card["files"]["float32"]["bytes"] < card["source"]["model_bytes"]


def test_equivalence_report_compares_the_same_jets_as_deepjet_nb_predict(deepjet_model, deepjet_run, ttbar_sample,
                                                                        tmp_path):
    report = json.loads(deepjet_model.file(EQUIVALENCE).read_text())
    pred = predict(deepjet_run, [ttbar_sample], tmp_path / "pred.root", progress=False)
    with uproot.open(pred) as f:
        n_predicted = f["tree"].num_entries
    assert report["jets"] == n_predicted > 500
    assert report["passed"] and 0 <= report["max_abs_diff"] < 1e-5
    assert report["max_abs_diff"] == max(c["max_abs_diff"] for c in report["classes"].values())
    assert set(report["classes"]) == {"B", "BB", "LeptB", "C", "UDS", "G"}
    assert all(c["median_abs_diff"] <= c["max_abs_diff"] for c in report["classes"].values())
    assert report["fraction_above_1e-5"] == 0.0
    assert deepjet_model.file(EQUIVALENCE_PLOT).stat().st_size > 20_000


def test_int8_report_gives_the_b_efficiency_change_at_one_percent_mistag(deepjet_model):
    int8 = deepjet_model.equivalence["int8"]
    assert int8["accepted"] and int8["mistag"] == 0.01
    assert int8["beff_change"] == pytest.approx(int8["beff_int8"] - int8["beff_float32"])
    assert int8["b_jets"] > 100 and int8["light_jets"] > 100
    assert 0 < int8["max_abs_diff"] < 0.05  # quantisation changes probabilities a little, not a lot
    card = deepjet_model.card["files"]
    assert card["int8"]["bytes"] < 0.5 * card["float32"]["bytes"]
    q = Predictor(deepjet_model, precision="int8")
    assert q.path.name == INT8_ONNX


def test_int8_model_is_refused_when_the_b_efficiency_changes_too_much(deepcsv_run, ttbar_sample, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setattr(equivalence, "INT8_MAX_BEFF_CHANGE", -1.0)  # any change is too much
    with pytest.raises(DeployError, match=r"int8 model changes the b efficiency.*export without --quantize"):
        export(deepcsv_run, tmp_path / "m", check=[ttbar_sample], quantize="int8", progress=False)
    assert not (tmp_path / "m").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(ArgumentError, match="needs check files"):
        export(deepcsv_run, tmp_path / "m", quantize="int8", progress=False)


def test_second_export_replaces_the_directory_whole_or_not_at_all(deepcsv_run, ttbar_sample, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "model"
    export(deepcsv_run, out, progress=False)
    (out / "stale.txt").write_text("from an earlier export")
    before = {p.name: sha256(p) for p in out.iterdir()}
    monkeypatch.setattr(equivalence, "TOLERANCE", -1.0)  # every check fails
    with pytest.raises(DeployError, match=r"not exported: the deployed model differs .* max \|Δp\|"):
        export(deepcsv_run, out, check=[ttbar_sample], progress=False)
    assert {p.name: sha256(p) for p in out.iterdir()} == before  # untouched
    monkeypatch.undo()
    export(deepcsv_run, out, check=[ttbar_sample], progress=False)
    assert not (out / "stale.txt").exists() and (out / EQUIVALENCE).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DeployError, match="not an exported model directory"):
        export(deepcsv_run, other, progress=False)
    assert (other / "keep.txt").read_text() == "mine"
    # Two exports into one directory never interleave: the second is refused, naming the holder.
    with output_lock(tmp_path, what="another export", name=".model.lock"):
        with pytest.raises(LockedError, match=r"model\.lock: in use by another export \(pid"):
            export(deepcsv_run, out, progress=False)
    assert (out / EQUIVALENCE).is_file()


def test_check_reports_on_an_existing_directory_and_refuses_a_changed_run_model(deepcsv_model, deepcsv_dataset,
                                                                              qcd_sample, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(deepcsv_model.path, copy)
    report = equivalence.check(copy, [qcd_sample], progress=False)
    assert report["files"] == [qcd_sample.name] and report["passed"] and report["jets"] > 100
    assert open_model(copy).equivalence == report
    retrained = make_run(deepcsv_dataset, tmp_path / "retrained", "deepcsv", seed=4)
    with pytest.raises(DeployError, match="not the model exported"):
        equivalence.check(copy, [qcd_sample], run_dir=retrained, progress=False)


def test_equivalence_check_compares_both_models_in_memory_without_writing_a_root_file(deepcsv_model, ttbar_sample,
                                                                                   tmp_path, monkeypatch):
    import shutil

    import deepjet_nb.predict

    def refuse(*args, **kwargs):
        raise AssertionError("the equivalence check wrote a ROOT file or ran deepjet-nb predict")

    copy = tmp_path / "model"
    shutil.copytree(deepcsv_model.path, copy)
    for writer in ("recreate", "create", "update"):
        monkeypatch.setattr(uproot, writer, refuse)
    monkeypatch.setattr(deepjet_nb.predict, "predict", refuse)
    report = equivalence.check(copy, [ttbar_sample], progress=False)
    assert report["passed"] and report["jets"] == deepcsv_model.equivalence["jets"] > 500
    assert report["max_abs_diff"] == deepcsv_model.equivalence["max_abs_diff"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing left beside the directory


def test_check_refuses_a_card_whose_normalisation_is_not_the_runs(deepcsv_model, qcd_sample, tmp_path):
    """Both sides take the card's conversion, so the card must convert as the run did."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(deepcsv_model.path, copy)
    card = json.loads((copy / CARD).read_text())
    group = next(iter(card["normalisation"]))
    feature = next(iter(card["normalisation"][group]))
    card["normalisation"][group][feature]["mean"] += 1.0
    (copy / CARD).write_text(json.dumps(card))
    write_checksums(copy)  # as if the checksums had been written again too: the card still cannot pass
    with pytest.raises(DeployError, match="normalisation"):
        equivalence.check(copy, [qcd_sample], progress=False)


def test_pcnn_exports_and_predicts_like_keras(deepjet_dataset, workdir):
    from deepjet_nb.dataset import open_dataset
    from deepjet_nb.run import open_run

    run = make_run(deepjet_dataset, workdir / "run_pcnn", "pcnn")
    model = export(run, workdir / "models" / "pcnn", progress=False)
    arrays = open_dataset(deepjet_dataset).load()
    x = {g: arrays[g][:300] for g in model.inputs}
    expected = open_run(run).load_model().predict(x, verbose=0)
    got = Predictor(model).predict_array(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert model.card["model"] == "pcnn"


# --- the Predictor --------------------------------------------------------------------------------------


def test_predict_root_gives_the_jets_and_order_of_deepjet_nb_predict(deepcsv_model, deepcsv_run, ttbar_sample,
                                                                    qcd_sample, tmp_path):
    files = [ttbar_sample, qcd_sample]
    pred = predict(deepcsv_run, files, tmp_path / "pred.root", step_size=700, progress=False)
    with uproot.open(pred) as f:
        expected = f["tree"].arrays(library="np")
    predictor = Predictor(deepcsv_model)
    probs = predictor.predict_root(files, step_size=500, progress=False)
    assert list(probs) == ["B", "BB", "C", "UDSG"]
    assert len(probs["B"]) == len(expected["jet_pt"]) > 1000
    for cls in probs:
        assert probs[cls].dtype == np.float32
        np.testing.assert_allclose(probs[cls], expected[f"prob_is{cls}"], atol=1e-5)
    pt = np.concatenate([chunk["spectators"][:, 0] for chunk, _ in predictor.iter_root(files, step_size=500)])
    np.testing.assert_array_equal(pt, expected["jet_pt"])
    np.testing.assert_allclose(sum(probs.values()), 1.0, atol=1e-5)


def test_predict_on_converted_arrays_checks_groups_and_shapes(deepcsv_model):
    predictor = Predictor(deepcsv_model)
    x = {g: np.zeros((3, *s), np.float32) for g, s in predictor.shapes.items()}
    probs = predictor.predict(x)
    assert {k: v.shape for k, v in probs.items()} == {c: (3,) for c in predictor.classes}
    with pytest.raises(ArgumentError, match="'vertex' is missing"):
        predictor.predict({g: a for g, a in x.items() if g != "vertex"})
    with pytest.raises(ArgumentError, match=r"'tracks' has shape \(3, 5, 7\)"):
        predictor.predict({**x, "tracks": np.zeros((3, 5, 7), np.float32)})
    with pytest.raises(ArgumentError, match="'tracks' has 3 jets, 'global' has 2"):
        predictor.predict({**x, "global": x["global"][:2]})
    # Float64 input is cast; large inputs go through in batches with the same result.
    big = {g: np.random.default_rng(1).normal(size=(2500, *s)) for g, s in predictor.shapes.items()}
    np.testing.assert_array_equal(Predictor(deepcsv_model, batch_size=1000).predict_array(big),
                                  predictor.predict_array({g: a.astype(np.float32) for g, a in big.items()}))


def test_concurrent_calls_from_threads_sharing_one_predictor_give_the_sequential_results(deepjet_model):
    predictor = Predictor(deepjet_model)
    rng = np.random.default_rng(7)
    batches = [{g: rng.normal(size=(n, *s)).astype(np.float32) for g, s in predictor.shapes.items()}
               for n in (1, 5, 64, 1, 17, 256, 3, 40)]
    expected = [predictor.predict_array(b) for b in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(predictor.predict_array, batches * 6))
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, expected[i % len(batches)])


def test_predictor_neither_imports_tensorflow_nor_starts_threads(deepjet_model, ttbar_sample):
    script = textwrap.dedent(f"""
        import os, sys
        threads = lambda: len(os.listdir("/proc/self/task"))
        import numpy as np
        import onnxruntime
        from deepjet_nb.predictor import Predictor
        before = threads()
        predictor = Predictor({str(deepjet_model.path)!r})
        started = threads() - before
        probs = predictor.predict_root([{str(ttbar_sample)!r}], progress=False)
        predictor.predict({{g: np.zeros((2, *s), np.float32) for g, s in predictor.shapes.items()}})
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx", "tf_keras"))
        print(started, len(probs["B"]), heavy)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    started, n_jets, heavy = out.stdout.strip().splitlines()[-1].split(" ", 2)
    assert heavy == "[]"
    assert started == "0"  # one intra-op thread = the caller's: no pool
    assert int(n_jets) == deepjet_model.equivalence["jets"]


def test_importing_the_predictor_loads_neither_tensorflow_nor_plotting_nor_the_conversion_job():
    script = textwrap.dedent("""
        import sys
        import deepjet_nb.predictor
        heavy = ("tensorflow", "keras", "tf2onnx", "matplotlib", "uproot", "onnxruntime")
        jobs = ("deepjet_nb.convert", "deepjet_nb.train", "deepjet_nb.deploy", "deepjet_nb.equivalence",
                "deepjet_nb.predict", "deepjet_nb.dataset", "deepjet_nb.parallel", "deepjet_nb.run")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in jobs))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_inference_names_keep_their_old_import_path_from_deploy():
    import deepjet_nb as djn
    from deepjet_nb import predictor
    from deepjet_nb.deploy import CARD as card_name, Predictor as OldPredictor, check, latency, open_model as old_open

    assert OldPredictor is Predictor is djn.Predictor and old_open is open_model and card_name == CARD
    assert check is equivalence.check and latency is predictor.latency
    assert deploy.TOLERANCE == equivalence.TOLERANCE and deploy.ModelDirectory is predictor.ModelDirectory
    with pytest.raises(AttributeError, match="no attribute 'Predicter'"):
        deploy.Predicter


def test_predictor_refuses_changed_files_and_bad_directories(deepcsv_model, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(deepcsv_model.path, copy)
    with open(copy / OPTIMISED_ONNX, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(DeployError, match=r"model\.opt\.onnx: its sha256 differs"):
        Predictor(copy)
    card = json.loads((copy / CARD).read_text())
    card["data_config"]["selection"] = "(jet_pt > 30)"
    (copy / CARD).write_text(json.dumps(card))
    with pytest.raises(DeployError, match=r"model\.json: its sha256 differs from the one in SHA256SUMS"):
        open_model(copy)
    with pytest.raises(DeployError, match="does not match data_config_hash"):
        open_model(copy, verify=False)
    with pytest.raises(DeployError, match="no such exported model directory"):
        Predictor(tmp_path / "nowhere")
    with pytest.raises(DeployError, match="no int8 model"):
        Predictor(deepcsv_model, precision="int8")
    with pytest.raises(ArgumentError, match="threads"):
        Predictor(deepcsv_model, threads=0)


def test_equivalence_plot_counts_jets_off_the_diagonal():
    from deepjet_nb.plots import EquivalencePlot

    x = np.random.default_rng(2).uniform(size=1000)
    plot = EquivalencePlot().add("b", x, x).add("CvsL", x, np.clip(x + 0.1, 0, 1))
    assert plot.off_diagonal("b") == 0 and plot.histograms["b"][1].sum() == 1000
    assert plot.off_diagonal("CvsL") > 800 and plot.max_abs_diff["CvsL"] == pytest.approx(0.1)
    assert len(plot.draw().axes) == 4  # two panels, two colour bars
    plot.close()


# --- command line and tutorial --------------------------------------------------------------------------


def test_cli_export_prints_sizes_and_fails_with_one_line(deepcsv_run, ttbar_sample, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli"
    rc = cli.main(["export", "--run", str(deepcsv_run), "--out", str(out), "--check", str(ttbar_sample),
                   "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0 and "model.onnx" in printed and "max |Δp|" in printed
    assert json.loads((out / EQUIVALENCE).read_text())["passed"]
    monkeypatch.setattr(equivalence, "TOLERANCE", -1.0)
    rc = cli.main(["export", "--run", str(deepcsv_run), "--out", str(tmp_path / "bad"), "--check", str(ttbar_sample),
                   "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("deepjet-nb export: error:") and "not exported" in err[0]
    assert not (tmp_path / "bad").exists()
    assert cli.main(["export", "--run", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 1


@pytest.mark.slow
def test_tutorial_06_exports_checks_times_and_predicts(run_notebook, deepcsv_run, ttbar_sample):
    nb = run_notebook("tutorials/06_deploy.ipynb", runs={"deepcsv": str(deepcsv_run)}, test_files=[str(ttbar_sample)],
                      repeats=2)
    record = nb.summary["taggers"]["deepcsv"]
    report = json.loads((nb.out_dir / "models" / "deepcsv" / EQUIVALENCE).read_text())
    assert record["max_abs_diff"] == report["max_abs_diff"] < 1e-4
    assert record["jets"] == report["jets"] == record["predicted_jets"]
    assert 0 < record["onnx_kb"] < record["keras_checkpoint_kb"]
    assert record["predictor_ms_batch1"] > 0 and record["bare_ort_ms_batch1"] > 0 and record["keras_ms_batch1"] > 0
    assert record["predictor_ms_per_jet_batch256"] < record["predictor_ms_batch1"]
    assert 0.0 < record["mean_b_discriminant"] < 1.0
    int8 = nb.summary["int8"]
    assert int8["tagger"] == "deepcsv"
    assert (int8["accepted"] and abs(int8["beff_change"]) <= 0.005) or "not exported" in int8["refused"]
    assert sum("image/png" in o.get("data", {}) for o in nb.outputs()) >= 1
