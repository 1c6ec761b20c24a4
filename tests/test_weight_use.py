"""How training uses the pT–η weights: per-jet loss weights, rejection resampling or resampling with replacement
of the training jets (``TrainConfig.weights``, ``batches.draw_by_weight``), for the networks and the BDT."""

import json

import numpy as np
import pytest

from deepjet_nb.batches import JetBatches, WEIGHT_USES, draw_by_weight, split_jets
from deepjet_nb.config import load_config
from deepjet_nb.convert import convert
from deepjet_nb.dataset import open_dataset
from deepjet_nb.errors import ArgumentError, RunError
from deepjet_nb.train_config import TrainConfig


@pytest.fixture(scope="module")
def weighted(synthetic_ntuples, tmp_path_factory):
    """A DeepCSV dataset of the synthetic ntuples converted with per-jet weights (every jet kept)."""
    out = tmp_path_factory.mktemp("weights") / "weighted"
    assert convert(synthetic_ntuples, out, load_config("deepcsv").with_weighting(apply="weight"), jobs=1,
                   progress=False).ok
    return out


@pytest.fixture(scope="module")
def parts(weighted):
    dataset = open_dataset(weighted)
    train, validation = split_jets(dataset.shard_jets(), 0.2, seed=4)
    return dataset, train, validation


def _per_jet(dataset, indices, key):
    return np.concatenate([np.asarray(dataset.shard(name, mmap=True)[key])[idx] for name, idx in indices.items()])


def test_loss_weights_keep_every_training_jet_once(parts):
    dataset, train, _ = parts
    drawn = draw_by_weight(dataset, train, "loss", seed=4)
    assert drawn.keys() == train.keys()
    for name in train:
        np.testing.assert_array_equal(drawn[name], train[name])


def test_resampling_keeps_each_jet_with_its_weight_over_its_class_maximum(parts):
    dataset, train, validation = parts
    drawn = draw_by_weight(dataset, train, "resample", seed=4)
    weight, label = _per_jet(dataset, train, "weight"), _per_jet(dataset, train, "label")
    kept_label = _per_jet(dataset, drawn, "label")
    for name in train:
        assert set(drawn[name]) <= set(train[name]) and np.all(np.diff(drawn[name]) > 0)
        assert not set(drawn[name]) & set(validation[name])
    for c in range(len(dataset.classes)):
        w = weight[label == c].astype(np.float64)
        if len(w) < 50:
            continue
        p = w / w.max()
        expected, sigma = p.sum(), np.sqrt(np.sum(p * (1 - p)))
        assert abs((kept_label == c).sum() - expected) <= 4 * sigma + 1, dataset.classes[c]
    # the reference class (b) weighs 1 everywhere, so all its jets stay
    assert (kept_label == 0).sum() == (label == 0).sum()
    assert len(kept_label) < len(label)


def test_replacement_draws_each_jet_the_floor_of_its_weight_or_one_more(parts):
    dataset, train, validation = parts
    drawn = draw_by_weight(dataset, train, "replacement", seed=4)
    for name, idx in train.items():
        w = np.asarray(dataset.shard(name, mmap=True)["weight"], dtype=np.float64)[idx]
        counts = np.array([np.count_nonzero(drawn[name] == i) for i in idx])
        assert np.all((counts == np.floor(w)) | (counts == np.floor(w) + 1))
        assert not set(drawn[name]) & set(validation[name])  # a repeated jet never validates
        # about the class's number of jets: the expected draws are the weights' sum
        assert abs(counts.sum() - w.sum()) <= 4 * np.sqrt(len(w)) + 1
    assert sum(map(len, drawn.values())) > sum(len(np.unique(v)) for v in drawn.values())


def test_draws_are_seeded(parts):
    dataset, train, _ = parts
    for how in ("resample", "replacement"):
        a, b = (draw_by_weight(dataset, train, how, seed=4) for _ in range(2))
        other = draw_by_weight(dataset, train, how, seed=5)
        assert all(np.array_equal(a[n], b[n]) for n in train)
        assert not all(np.array_equal(a[n], other[n]) for n in train)


def test_drawing_from_a_dataset_without_weights_is_refused_naming_it(synthetic_ntuples, tmp_path):
    out = tmp_path / "resampled"
    assert convert(synthetic_ntuples, out, "deepcsv", jobs=1, progress=False).ok
    dataset = open_dataset(out)
    train, _ = split_jets(dataset.shard_jets(), 0.2, seed=1)
    with pytest.raises(ArgumentError, match=f"{out}.*apply 'resample'.*weighting.apply: weight") as err:
        draw_by_weight(dataset, train, "replacement", seed=1)
    assert err.value.key == "weights"
    assert draw_by_weight(dataset, train, "loss", seed=1).keys() == train.keys()  # loss weights need nothing


@pytest.mark.parametrize("bad", ["weight", "Resample", None])
def test_an_unknown_use_is_refused_with_the_known_ones(bad, parts):
    dataset, train, _ = parts
    config = TrainConfig(model="deepcsv", data="data", weights=bad).with_recipe()
    with pytest.raises(ArgumentError, match="weights must be one of") as err:
        config.check()
    assert err.value.key == "weights" and all(use in str(err.value) for use in WEIGHT_USES)
    with pytest.raises(ArgumentError, match="weights must be one of"):
        draw_by_weight(dataset, train, bad, seed=1)


def test_unit_weights_give_every_batch_jet_weight_one(parts):
    dataset, train, _ = parts
    assert not np.all(JetBatches(dataset, train, shuffle=False).arrays()[2] == 1)
    np.testing.assert_array_equal(JetBatches(dataset, train, shuffle=False, unit_weights=True).arrays()[2], 1)


def test_trainer_with_replacement_records_its_draws_and_validates_on_the_loss_runs_jets(weighted, tmp_path):
    from deepjet_nb.train import Trainer

    loss = Trainer("deepcsv", weighted, tmp_path / "loss", seed=4, dashboard="off").split_record()
    trainer = Trainer("deepcsv", weighted, tmp_path / "replacement", seed=4, epochs=1, batch_size=512,
                      weights="replacement", dashboard="off")
    assert trainer._train_batches().unit_weights
    trainer.fit()
    written = json.loads((tmp_path / "replacement" / "split.json").read_text())
    assert written["weights"] == "replacement" and loss["weights"] == "loss"
    assert written["validation"] == loss["validation"]
    assert written["train"]["unique_jets"] < sum(written["train"]["sources"].values())
    assert json.loads((tmp_path / "replacement" / "train_config.json").read_text())["weights"] == "replacement"
    with pytest.raises(RunError, match="weights"):  # a resume cannot change how the weights are used
        Trainer("deepcsv", weighted, tmp_path / "replacement", resume=True, weights="loss", dashboard="off")


def test_bdt_draws_the_jets_the_network_draws(weighted, tmp_path):
    from deepjet_nb.bdt import train_bdt
    from deepjet_nb.run import open_run
    from deepjet_nb.train import Trainer

    train_bdt(weighted, tmp_path / "bdt", seed=4, weights="resample", max_iter=5)
    network = Trainer("deepcsv", weighted, tmp_path / "net", seed=4, weights="resample", dashboard="off")
    assert open_run(tmp_path / "bdt").split() == network.split_record()
    assert open_run(tmp_path / "bdt").train_config()["weights"] == "resample"


def test_the_train_command_takes_the_use_of_the_weights_and_a_training_share(weighted, tmp_path):
    from deepjet_nb import cli

    assert cli.main(["train", "--model", "deepcsv", "--data", str(weighted), "--out", str(tmp_path / "run"),
                     "--epochs", "1", "--batch-size", "512", "--weights", "resample", "--train-fraction", "0.5"]) == 0
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["weights"] == "resample" and config["train_fraction"] == 0.5


def test_a_learning_curve_refuses_an_unknown_use_of_the_weights(weighted, tmp_path):
    from deepjet_nb.learning_curve import learning_curve

    with pytest.raises(ArgumentError, match="learning_curve: weights must be one of"):
        learning_curve({"deepcsv": str(weighted)}, [str(weighted)], tmp_path, weights="weight")
