"""The event-level use case end to end: synthetic tt̄ (all-hadronic) and QCD events (fixtures/events.py) →
``deepjet-nb convert`` with the shipped ``events.yaml`` → the ``dense`` classifier → prediction → export to
ONNX with its equivalence and int8 checks → the service's TFaaS route ``/json`` with the 42 event features as
``keys``. Also the export of a fat-jet (``schema: deepak8``) model with classes Top/W/QCD: its model card's
discriminant and int8 check compare the first class with the last.

One short training for the module (a few thousand events, a model of a few thousand parameters).
"""

import shutil

import numpy as np
import pytest
import requests
import uproot

from deepjet_nb import deploy, equivalence, schema
from deepjet_nb.config import load_config

KEYS = list(schema.EVENT_FEATURES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("events_model")


@pytest.fixture(scope="module")
def events_dataset(event_samples, workdir):
    from deepjet_nb.convert import convert

    result = convert(event_samples, workdir / "data", "events", jobs=1, progress=False)
    assert result.ok, result.failed
    return workdir / "data"


@pytest.fixture(scope="module")
def events_trainer(events_dataset, workdir):
    from deepjet_nb.train import train

    return train("dense", events_dataset, workdir / "run", epochs=3, batch_size=256, dashboard="off")


@pytest.fixture(scope="module")
def events_model(events_trainer, event_test_samples, workdir):
    return deploy.export(events_trainer.run_dir, workdir / "models" / "events", check=event_test_samples,
                         progress=False)


@pytest.fixture(scope="module")
def events_server(events_model, workdir):
    from deepjet_nb.service import ServerProcess

    folder = workdir / "served"
    folder.mkdir()
    shutil.copytree(events_model.path, folder / "events")
    process = ServerProcess(folder)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def read_events(path, n):
    with uproot.open(path) as f:
        arrays = f[schema.EVENT_TREE].arrays(KEYS, entry_stop=n, library="np")
    return [[arrays[k][i].item() for k in KEYS] for i in range(n)]


def local_probabilities(model, rows):
    """Probabilities of the exported model on raw event rows, converted here as the server converts them."""
    from deepjet_nb.convert import convert_jets

    predictor = deploy.Predictor(model)
    branches = {k: [row[j] for row in rows] for j, k in enumerate(KEYS)}
    return predictor.predict_array(convert_jets(branches, model.config, model.normalisation))


# --- the config and the model ----------------------------------------------------------------------------


def test_events_config_reads_the_event_features_as_one_scalar_group():
    from deepjet_nb.convert import input_branches

    cfg = load_config("events")
    assert cfg.schema == "events" and cfg.tree == "events" and cfg.ntuple is schema.EVENTS
    assert cfg.class_names == ("ttbar", "QCD") and cfg.classes == {"ttbar": ("label_ttbar",), "QCD": ("label_QCD",)}
    assert [g.name for g in cfg.inputs] == ["features"] and not cfg.inputs[0].jagged
    assert cfg.inputs[0].branches == schema.EVENT_FEATURES and len(KEYS) == 42
    assert input_branches(cfg) == (schema.EVENT_FEATURES, ())
    assert cfg.weighting.mode == "none" and cfg.selection is None
    assert {"nJets", "jetPt_0", "label_ttbar", "label_QCD"} <= set(cfg.spectators)


def test_dense_builds_small_with_an_input_batch_norm():
    from deepjet_nb.models import build_model
    from deepjet_nb.models.layers import input_batchnorm_layers
    from deepjet_nb.train import RECIPES

    manifest = {"classes": ["ttbar", "QCD"], "inputs": {"features": {"shape": [42]}}}
    model = build_model("dense", manifest)
    assert model.name == "dense" and model.output.shape[-1] == 2
    assert [layer.name for layer in input_batchnorm_layers(model)] == ["input_bn_features"]
    # 42 → 64 → 64 → 32 → 2 with batch norms: a few thousand parameters
    assert model.count_params() == 9_866
    assert build_model("dense", manifest, units=(8,), dropout=0.0).count_params() < 600
    assert RECIPES["dense"]["freeze_input_bn_after"] is None


def test_converted_dataset_holds_both_processes(events_dataset):
    from deepjet_nb.dataset import open_dataset

    ds = open_dataset(events_dataset)
    assert ds.classes == ["ttbar", "QCD"] and list(ds.inputs) == ["features"]
    assert ds.manifest["inputs"]["features"]["shape"] == [42]
    arrays = ds.load()
    assert np.bincount(arrays["label"]).tolist() == [1500, 1500]  # no selection, no reweighting


def test_streaming_windows_of_one_shard_mix_both_processes(events_dataset):
    """Each event file is one process: every streaming batch still holds both classes."""
    from deepjet_nb.batches import JetBatches
    from deepjet_nb.dataset import open_dataset

    batches = JetBatches(open_dataset(events_dataset), batch_size=256, seed=1, buffer_shards=1)
    for _, label, _ in list(batches.epoch_batches(0))[:-1]:
        assert set(np.unique(label)) == {0, 1}


def test_dense_separates_ttbar_from_qcd(events_trainer):
    from deepjet_nb.train import VAL_AUC, VAL_BEFF

    history = events_trainer.history
    assert len(history) == 3
    last = history[-1]
    # P(ttbar) / (P(ttbar) + P(QCD)) on the validation events: far from a coin toss on these samples
    assert last[VAL_AUC] > 0.85, last
    assert 0 < last[VAL_BEFF] <= 1 and last["val_accuracy"] > 0.75
    assert last["val_loss"] < history[0]["loss"]


def test_prediction_file_has_the_event_probabilities_truth_and_spectators(events_trainer, event_test_samples,
                                                                          workdir):
    from deepjet_nb.predict import predict

    out = predict(events_trainer.run_dir, event_test_samples, workdir / "pred.root", progress=False)
    with uproot.open(out) as f:
        tree = f["tree"]
        arrays = tree.arrays(library="np")
        names = set(tree.keys())
    assert {"prob_isttbar", "prob_isQCD", "truth_isttbar", "truth_isQCD", "nJets", "jetPt_0", "label_ttbar",
            "label_QCD"} <= names
    assert len(arrays["prob_isttbar"]) == 600
    np.testing.assert_allclose(arrays["prob_isttbar"] + arrays["prob_isQCD"], 1, atol=1e-5)
    np.testing.assert_array_equal(arrays["truth_isttbar"], arrays["label_ttbar"])
    assert arrays["truth_isttbar"][:300].all() and not arrays["truth_isttbar"][300:].any()
    assert arrays["nJets"].min() >= 1 and arrays["jetPt_0"].min() > 0
    # the model ranks the tt̄ events above the QCD ones
    assert arrays["prob_isttbar"][:300].mean() > arrays["prob_isttbar"][300:].mean() + 0.3


# --- export ----------------------------------------------------------------------------------------------


def test_export_reproduces_keras_and_its_card_has_the_first_vs_last_discriminant(events_model):
    card = events_model.card
    assert card["model"] == "dense" and card["classes"] == ["ttbar", "QCD"] and card["tree"] == "events"
    assert card["discriminants"] == {"ttbarvsQCD": "P(ttbar) / (P(ttbar) + P(QCD))"}
    assert card["class_flavours"] == {}
    assert card["inputs"]["features"]["features"] == KEYS and card["inputs"]["features"]["shape"] == [42]
    report = events_model.equivalence
    assert report["passed"] and report["jets"] == 600 and report["max_abs_diff"] < 1e-5
    assert set(report["classes"]) == {"ttbar", "QCD"} and list(report["discriminants"]) == ["ttbarvsQCD"]
    assert events_model.file(deploy.EQUIVALENCE_PLOT).stat().st_size > 10_000


def test_int8_check_compares_the_signal_efficiency_at_one_percent_background(events_trainer, event_test_samples,
                                                                           workdir, monkeypatch):
    # 1 % of 300 QCD events is 3 events: the change is noisy here, so any change is accepted for this test
    monkeypatch.setattr(equivalence, "INT8_MAX_BEFF_CHANGE", 1.0)
    model = deploy.export(events_trainer.run_dir, workdir / "models" / "int8", check=event_test_samples,
                          quantize="int8", progress=False)
    assert model.has("int8") and deploy.Predictor(model, precision="int8").path.name == deploy.INT8_ONNX
    int8 = model.equivalence["int8"]
    assert int8["signal"] == "ttbar" and int8["background"] == "QCD" and int8["mistag"] == 0.01
    assert int8["discriminant"] == "ttbarvsQCD"
    assert int8["signal_entries"] == 300 and int8["background_entries"] == 300
    assert int8["eff_change"] == pytest.approx(int8["eff_int8"] - int8["eff_float32"])
    assert int8["accepted"] and int8["max_eff_change"] == 1.0 and 0 < int8["max_abs_diff"] < 0.1
    assert 0 < int8["eff_float32"] <= 1 and "beff_change" not in int8


def test_int8_refusal_names_the_classes(events_trainer, event_test_samples, workdir, monkeypatch):
    from deepjet_nb.errors import DeployError

    monkeypatch.setattr(equivalence, "INT8_MAX_BEFF_CHANGE", -1.0)  # any change is too large
    out = workdir / "models" / "refused"
    with pytest.raises(DeployError, match=r"not exported: the int8 model changes the ttbar efficiency at 1 % QCD "
                                          r"mistag by .* QCD entries"):
        deploy.export(events_trainer.run_dir, out, check=event_test_samples, quantize="int8", progress=False)
    assert not out.exists()


def test_predictor_reads_event_ntuples_like_the_training_framework(events_model, event_test_samples, workdir):
    predictor = deploy.Predictor(events_model)
    probs = predictor.predict_root(event_test_samples, progress=False)
    with uproot.open(workdir / "pred.root") as f:
        training = f["tree"].arrays(["prob_isttbar"], library="np")["prob_isttbar"]
    assert np.abs(probs["ttbar"] - training).max() < 1e-5


# --- the service -----------------------------------------------------------------------------------------


def test_tfaas_json_route_serves_events_by_their_feature_keys(events_server, events_model, event_test_samples):
    rows = read_events(event_test_samples[0], 20) + read_events(event_test_samples[1], 20)
    local = local_probabilities(events_model, rows)
    url = events_server.url + "/json"
    many = requests.post(url, json={"model": "events", "keys": KEYS, "values": rows}, timeout=30).json()
    assert many["classes"] == ["ttbar", "QCD"]
    assert np.abs(np.asarray(many["probabilities"]) - local).max() < 1e-6
    one = requests.post(url, json={"model": "events", "keys": KEYS, "values": rows[0]}, timeout=30).json()
    assert np.abs(np.asarray(one["probabilities"]) - local[0]).max() < 1e-6
    # keys in another order: the values follow their keys
    order = np.random.default_rng(0).permutation(len(KEYS))
    shuffled = requests.post(url, json={"model": "events", "keys": [KEYS[i] for i in order],
                                        "values": [[row[i] for i in order] for row in rows]}, timeout=30).json()
    assert np.abs(np.asarray(shuffled["probabilities"]) - local).max() < 1e-6
    # as many rows as keys is still a list of rows
    rows42 = (rows * 2)[:42]
    reply = requests.post(url, json={"model": "events", "keys": KEYS, "values": rows42}, timeout=30).json()
    assert len(reply["probabilities"]) == 42


def test_tfaas_json_route_also_takes_the_converted_keys(events_server, events_model, event_test_samples):
    from deepjet_nb.convert import convert_jets

    rows = read_events(event_test_samples[1], 5)
    converted = convert_jets({k: [row[j] for row in rows] for j, k in enumerate(KEYS)}, events_model.config,
                             events_model.normalisation)["features"]
    reply = requests.post(events_server.url + "/json",
                          json={"model": "events", "keys": [f"features.{k}" for k in KEYS],
                                "values": converted.tolist()}, timeout=30).json()
    assert np.abs(np.asarray(reply["probabilities"]) - local_probabilities(events_model, rows)).max() < 1e-6


def test_client_predicts_an_event_given_as_a_dict(events_server, events_model, event_test_samples):
    from deepjet_nb.service import Client

    row = read_events(event_test_samples[0], 1)[0]
    with Client(events_server.url) as client:
        probs = client.predict("events", dict(zip(KEYS, row)))
        listed = client.model("events")
    local = local_probabilities(events_model, [row])[0]
    assert abs(probs["ttbar"] - local[0]) < 1e-6 and abs(probs["QCD"] - local[1]) < 1e-6
    assert listed["keys"] == 42 and listed["raw_branches"] == {"scalar": KEYS, "jagged": []}
    assert listed["discriminants"] == {"ttbarvsQCD": "P(ttbar) / (P(ttbar) + P(QCD))"}


@pytest.mark.parametrize("keys, values, message", [
    (["nJetz", *KEYS[1:]], [0.0] * 42, "unknown branch(es) ['nJetz']"),
    (KEYS[:-1], [0.0] * 41, "missing branch(es) ['jetTau3_4']"),
    (KEYS, [0.0] * 41, "values: a row must have 42 entries"),
])
def test_a_malformed_event_request_names_the_key(events_server, keys, values, message):
    response = requests.post(events_server.url + "/json", json={"model": "events", "keys": keys, "values": values},
                             timeout=30)
    assert response.status_code == 400 and message in response.json()["error"], response.text


# --- fat jets: classes that are not flavours, more than two of them -------------------------------------


FATJET_INPUTS = ["fj_pt", "fj_eta", "fj_mass", "fj_sdmass", "fj_tau21", "fj_tau32"]


def write_fatjets(path, n, seed):
    """Fat jets of three kinds (Top, W, QCD) with scalar branches only: a config that reads no object list."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n)  # 0 Top, 1 W, 2 QCD
    mass = np.choose(kind, [rng.normal(172, 15, n), rng.normal(80, 8, n), 20 + rng.exponential(40, n)])
    data = {"fj_pt": rng.uniform(300, 800, n), "fj_eta": rng.uniform(-2.4, 2.4, n), "fj_mass": np.abs(mass),
            "fj_sdmass": np.abs(mass) * rng.uniform(0.8, 1.0, n),
            "fj_tau21": np.choose(kind, [rng.normal(0.5, 0.1, n), rng.normal(0.35, 0.1, n), rng.normal(0.7, 0.1, n)]),
            "fj_tau32": np.choose(kind, [rng.normal(0.5, 0.1, n), rng.normal(0.8, 0.1, n), rng.normal(0.8, 0.1, n)])}
    data = {k: v.astype(np.float32) for k, v in data.items()}
    for label in schema.FJ_LABELS:
        data[label] = np.zeros(n, np.int32)
    data["label_Top_bqq"] = (kind == 0).astype(np.int32)
    data["label_W_qq"] = (kind == 1).astype(np.int32)
    data["label_QCD_others"] = (kind == 2).astype(np.int32)
    with uproot.recreate(path) as f:
        f[schema.DEEPAK8.tree] = data
    return path


@pytest.mark.slow
def test_fat_jet_export_compares_the_first_class_with_the_last(workdir, monkeypatch):
    import yaml

    from deepjet_nb.convert import convert
    from deepjet_nb.train import train

    base = workdir / "fatjets"
    base.mkdir()
    config = {"schema": "deepak8", "name": "fatjets_scalar", "classes": {
        "Top": ["label_Top_bcq", "label_Top_bqq", "label_Top_bc", "label_Top_bq", "label_Top_others"],
        "W": ["label_W_cq", "label_W_qq"], "QCD": ["label_QCD_bb", "label_QCD_cc", "label_QCD_b", "label_QCD_c",
                                                 "label_QCD_others"]},
        "inputs": {"jet": {"branches": FATJET_INPUTS}}}
    (base / "fatjets.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    files = [write_fatjets(base / "train.root", 1200, seed=3)]
    check = [write_fatjets(base / "check.root", 600, seed=4)]
    assert convert(files, base / "data", base / "fatjets.yaml", jobs=1, progress=False).ok
    trainer = train("dense", base / "data", base / "run", epochs=2, batch_size=128, dashboard="off",
                    hyper={"units": [16]})
    monkeypatch.setattr(equivalence, "INT8_MAX_BEFF_CHANGE", 1.0)  # a tiny model on a few hundred jets: noisy
    model = deploy.export(trainer.run_dir, base / "model", check=check, quantize="int8", progress=False)
    assert model.card["discriminants"] == {"TopvsQCD": "P(Top) / (P(Top) + P(QCD))"}
    report = model.equivalence
    assert report["passed"] and report["jets"] == 600 and list(report["discriminants"]) == ["TopvsQCD"]
    int8 = report["int8"]
    assert int8["signal"] == "Top" and int8["background"] == "QCD"
    labels = uproot.open(check[0])[schema.DEEPAK8.tree].arrays(["label_Top_bqq", "label_QCD_others"], library="np")
    assert int8["signal_entries"] == labels["label_Top_bqq"].sum()
    assert int8["background_entries"] == labels["label_QCD_others"].sum()
