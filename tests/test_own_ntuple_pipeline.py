"""Files that no shipped schema describes go the whole way with only a user-written config: convert, train,
predict, evaluate, export (with the equivalence check) and serve. One has an entry per jet (weaver style),
one an entry per event with a jet collection and candidates linked by index (NanoAOD style)."""

import json
import shutil

import numpy as np
import pytest
import requests
import uproot
import yaml

from deepjet_nb.collection import explode, links
from deepjet_nb.config import load_config
from deepjet_nb.convert import convert
from deepjet_nb.deploy import export
from deepjet_nb.evaluate import evaluate
from deepjet_nb.jets import convert_jets, input_branches
from deepjet_nb.predict import predict
from deepjet_nb.predictor import Predictor
from deepjet_nb.service import ServerProcess
from deepjet_nb.train import train
from fixtures.custom_ntuples import NANOAOD_CONFIG, WEAVER_CONFIG, write_nanoaod_ntuple, write_weaver_ntuple

pytestmark = pytest.mark.slow


def _pipeline(root, raw_config, train_file, test_file):
    """Config file, dataset, run, predictions, metrics and model of one layout, from its config alone."""
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(raw_config))
    result = convert([train_file], root / "dataset", str(config), jobs=1, progress=False)
    assert result.ok
    train("dense", root / "dataset", root / "run", epochs=4, batch_size=128, seed=3, dashboard="text")
    predictions = predict(root / "run", [test_file], root / "predictions.root", progress=False)
    evaluate([predictions], root / "evaluation", plots=False)
    model = export(root / "run", root / "model", check=[test_file], progress=False)
    return {"root": root, "config": config, "test": test_file, "predictions": predictions, "model": model}


@pytest.fixture(scope="module")
def weaver_pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("weaver")
    return _pipeline(root, WEAVER_CONFIG, write_weaver_ntuple(root / "train.root", 3000, seed=1),
                     write_weaver_ntuple(root / "test.root", 1500, seed=2))


@pytest.fixture(scope="module")
def nano_pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("nano")
    return _pipeline(root, NANOAOD_CONFIG, write_nanoaod_ntuple(root / "train.root", 1200, seed=1),
                     write_nanoaod_ntuple(root / "test.root", 600, seed=2))


def test_predictions_carry_probabilities_class_truth_and_the_configs_spectators(weaver_pipeline):
    with uproot.open(weaver_pipeline["predictions"]) as f:
        arrays = f["tree"].arrays(library="np")
    for name in ("prob_isB", "prob_isC", "prob_isUDSG", "truth_isB", "jet_pt", "jet_eta", "jet_hflav", "jet_mass"):
        assert name in arrays
    # every kept jet is in exactly one class, and the class follows the hadron flavour of the file
    truth = np.stack([arrays[f"truth_is{c}"] for c in ("B", "C", "UDSG")], axis=1)
    assert np.all(truth.sum(axis=1) == 1)
    assert np.all(arrays["jet_hflav"][arrays["truth_isB"] == 1] == 5)
    assert np.all(arrays["jet_pt"] > 20)  # the config's selection


def test_evaluation_of_a_layout_of_ones_own_tells_flavours_by_class(weaver_pipeline):
    metrics = json.loads((weaver_pipeline["root"] / "evaluation" / "metrics.json").read_text())
    assert list(metrics) == ["predictions"]  # no track-counting baseline without its branch
    assert metrics["predictions"]["b_vs_udsg"]["auc"] > 0.85  # b jets' candidates are displaced


def test_export_checks_equivalence_and_writes_flavour_discriminants(weaver_pipeline):
    model = weaver_pipeline["model"]
    report = json.loads((model.path / "equivalence.json").read_text())
    assert report["passed"] and report["max_abs_diff"] < 1e-4
    card = json.loads((model.path / "model.json").read_text())
    assert card["tree"] == "tree" and set(card["discriminants"]) == {"b", "CvsL", "CvsB"}
    assert load_config(str(weaver_pipeline["config"])).hash == card["data_config_hash"]


def test_the_served_model_converts_raw_branches_of_the_own_layout(weaver_pipeline, tmp_path):
    predictor = Predictor(weaver_pipeline["model"].path)
    scalars, jagged = input_branches(predictor.model.config)
    with uproot.open(weaver_pipeline["test"]) as f:
        arrays = f["tree"].arrays(list(scalars + jagged), entry_stop=4, library="ak")
    jets = [{b: arrays[b][i].tolist() for b in scalars + jagged} for i in range(4)]
    _served_like_local(predictor, weaver_pipeline["model"].path, jets, tmp_path)


def _served_like_local(predictor, model_dir, jets, tmp_path):
    """The server's answer for raw ``jets`` (branch → value or list, per jet) is the local Predictor's."""
    want = predictor.predict_array(convert_jets({b: [j[b] for j in jets] for b in jets[0]},
                                                predictor.model.config, predictor.model.normalisation))
    folder = tmp_path / "models"
    shutil.copytree(model_dir, folder / "own")
    server = ServerProcess(folder)
    server.start()
    try:
        keys = list(jets[0])
        reply = requests.post(server.url + "/json", timeout=20,
                              json={"model": "own", "keys": keys, "values": [[j[k] for k in keys] for j in jets]})
    finally:
        server.stop()
    np.testing.assert_allclose(reply.json()["probabilities"], want, atol=1e-6)


def test_events_give_one_prediction_per_jet_joined_back_by_entry_and_index(nano_pipeline):
    with uproot.open(nano_pipeline["predictions"]) as f:
        pred = f["tree"].arrays(library="np")
    with uproot.open(nano_pipeline["test"]) as f:
        events = f["Events"].arrays(["event", "Jet_pt", "Jet_eta", "Jet_hadronFlavour"], library="ak")
    entry, index = pred["entry"].astype(int), pred["object_index"].astype(int)
    # each prediction is one jet of the file: its pT, flavour and event number are that jet's
    np.testing.assert_array_equal(pred["Jet_pt"], np.asarray(events["Jet_pt"][entry, index], np.float32))
    np.testing.assert_array_equal(pred["Jet_hadronFlavour"], np.asarray(events["Jet_hadronFlavour"][entry, index]))
    np.testing.assert_array_equal(pred["event"], np.asarray(events["event"][entry], np.float32))
    # every jet of the file passing the selection is there once
    passing = (events["Jet_pt"] > 20) & (abs(events["Jet_eta"]) < 2.4)
    assert len(pred["entry"]) == int(np.sum(passing)) == len(set(zip(entry, index)))
    np.testing.assert_array_equal(pred["jet_pt"], pred["Jet_pt"])  # the names evaluation reads


def test_events_evaluate_export_and_serve_like_jets(nano_pipeline, tmp_path):
    metrics = json.loads((nano_pipeline["root"] / "evaluation" / "metrics.json").read_text())
    assert metrics["predictions"]["b_vs_udsg"]["auc"] > 0.8  # the linked candidates carry the displacement
    report = json.loads((nano_pipeline["model"].path / "equivalence.json").read_text())
    assert report["passed"] and report["jets"] > 0
    # the server takes one jet's branches, its linked candidates as lists, as the conversion made them
    predictor = Predictor(nano_pipeline["model"].path)
    scalars, jagged = input_branches(predictor.model.config)
    config = predictor.model.config
    with uproot.open(nano_pipeline["test"]) as f:
        events = f["Events"].arrays(entry_stop=3, library="ak", how=dict)
    rows = explode(events, config.collection, links(config))
    jets = [{b: (rows[b][i].tolist() if b in jagged else float(rows[b][i])) for b in scalars + jagged} for i in range(4)]
    _served_like_local(predictor, nano_pipeline["model"].path, jets, tmp_path)
