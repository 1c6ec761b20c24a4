"""Learning curves: training on a share of the training jets (Trainer, BDT), the curve itself, its crossing
point and its plot."""

import json
import math

import numpy as np
import pytest

from deepjet_nb.batches import split_jets
from deepjet_nb.errors import ArgumentError, RunError
from deepjet_nb.learning_curve import RESULT_FILE, crossing_point, datasets_in, learning_curve, plot_learning_curve
from deepjet_nb.plots.learning import LearningCurvePlot
from deepjet_nb.train_config import TrainConfig

# -- a share of the training jets ------------------------------------------------------------------------------


def test_a_training_share_keeps_the_validation_jets_and_nests_in_larger_shares():
    jets = {"ttbar": 1000, "qcd": 301, "tiny": 3}
    full_train, full_val = split_jets(jets, 0.2, seed=1)
    half_train, half_val = split_jets(jets, 0.2, seed=1, train_fraction=0.5)
    quarter_train, _ = split_jets(jets, 0.2, seed=1, train_fraction=0.25)
    for name in jets:
        np.testing.assert_array_equal(half_val[name], full_val[name])
        assert abs(len(half_train[name]) - len(full_train[name]) / 2) <= 0.5  # rounding
        assert set(quarter_train[name]) <= set(half_train[name]) <= set(full_train[name])
        assert np.all(np.diff(half_train[name]) > 0)  # in shard order
    # seeded: another seed keeps other jets
    assert not np.array_equal(split_jets(jets, 0.2, seed=2, train_fraction=0.5)[0]["ttbar"], half_train["ttbar"])


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, True, "0.5", float("nan")])
def test_a_training_share_outside_zero_to_one_is_refused_naming_the_field(bad):
    config = TrainConfig(model="deepcsv", data="data", train_fraction=bad).with_recipe()
    with pytest.raises(ArgumentError, match="train_fraction") as err:
        config.check()
    assert err.value.key == "train_fraction"
    from deepjet_nb.bdt import train_bdt

    with pytest.raises(ArgumentError, match="train_bdt: train_fraction"):
        train_bdt("no-such-dataset", "no-such-run", train_fraction=bad)


def test_trainer_on_half_the_jets_validates_on_the_full_runs_jets(deepcsv_dataset, tmp_path):
    from deepjet_nb.train import Trainer

    full = Trainer("deepcsv", deepcsv_dataset, tmp_path / "full", seed=3, dashboard="off").split_record()
    half = Trainer("deepcsv", deepcsv_dataset, tmp_path / "half", seed=3, epochs=1, batch_size=256,
                   train_fraction=0.5, dashboard="off")
    half.fit()
    written = json.loads((tmp_path / "half" / "split.json").read_text())
    assert written["train_fraction"] == 0.5 and full["train_fraction"] == 1.0
    assert written["validation"] == full["validation"]
    for name, n in full["train"]["sources"].items():
        assert abs(written["train"]["sources"][name] - n / 2) <= 0.5
    with pytest.raises(RunError, match="train_fraction"):  # a resume cannot change the share
        Trainer("deepcsv", deepcsv_dataset, tmp_path / "half", resume=True, train_fraction=1.0, dashboard="off")


def test_bdt_on_half_the_jets_takes_the_networks_share(deepcsv_dataset, tmp_path):
    from deepjet_nb.bdt import train_bdt
    from deepjet_nb.run import open_run
    from deepjet_nb.train import Trainer

    train_bdt(deepcsv_dataset, tmp_path / "bdt", seed=3, train_fraction=0.5, max_iter=5)
    network = Trainer("deepcsv", deepcsv_dataset, tmp_path / "net", seed=3, train_fraction=0.5, dashboard="off")
    assert open_run(tmp_path / "bdt").split() == network.split_record()
    assert open_run(tmp_path / "bdt").train_config()["train_fraction"] == 0.5


# -- crossing point ---------------------------------------------------------------------------------------------


def test_crossing_point_interpolates_where_the_difference_changes_sign_in_log_jets():
    n = [1000, 2000, 4000, 8000]
    # -0.01 at 2000 and +0.03 at 4000: a quarter of the way in log(n)
    assert crossing_point(n, [-0.05, -0.01, 0.03, 0.04]) == pytest.approx(2000 * 2 ** 0.25)
    assert crossing_point(n, [0.05, 0.01, -0.03, -0.04]) == pytest.approx(2000 * 2 ** 0.25)  # falls behind
    assert crossing_point(n, [0.01, 0.02, 0.03, 0.04]) is None
    assert crossing_point(n, [-0.02, None, 0.02, None]) == pytest.approx(2000)  # undefined points are skipped
    assert crossing_point(n[::-1], [0.04, 0.03, -0.01, -0.05]) == pytest.approx(2000 * 2 ** 0.25)  # any order
    assert crossing_point([1000], [0.1]) is None


def test_unknown_taggers_are_refused_with_the_known_ones():
    with pytest.raises(ArgumentError, match="did you mean 'deepjet'") as err:
        datasets_in("data", ["deepjte"])
    assert "deepcsv" in err.value.choices
    assert datasets_in("data", ["bdt_deepcsv", "pcnn"]) == {"bdt_deepcsv": "data/deepcsv", "pcnn": "data/fatjet"}
    with pytest.raises(ArgumentError, match="seeds"):
        learning_curve({"deepcsv": "data"}, ["t.root"], "out", seeds=[1, 1])
    with pytest.raises(ArgumentError, match="train_fraction"):
        learning_curve({"deepcsv": "data"}, ["t.root"], "out", fractions=[0.5, 2])
    with pytest.raises(ArgumentError, match="'max_epochs'"):  # per-tagger caps and caps for all, mixed
        learning_curve({"deepcsv": "data"}, ["t.root"], "out", scale={"deepjet": {"max_epochs": 2}, "max_epochs": 3})
    with pytest.raises(ArgumentError, match="test_files"):
        learning_curve({"deepcsv": "data"}, {"boosted": ["t.root"]}, "out")


# -- the plot ----------------------------------------------------------------------------------------------------


def _synthetic_result():
    def point(tagger, n, eff, diff, reference="bdt_deepcsv"):
        return {"tagger": tagger, "task": "b_vs_udsg", "reference": reference, "n_train": n, "eff": eff,
                "eff_err": 0.01, "eff_seed_std": 0.005, "diff": diff, "diff_err": None if diff is None else 0.008,
                "diff_seed_std": None if diff is None else 0.004}

    points = [point("deepcsv", n, e, d) for n, e, d in ((1000, 0.30, -0.05), (2000, 0.36, -0.01), (4000, 0.42, 0.03))]
    points += [point("bdt_deepcsv", n, e, None, None) for n, e in ((1000, 0.35), (2000, 0.37), (4000, 0.39))]
    return {"mistag": 0.01, "points": points,
            "crossings": {"deepcsv": {"reference": "bdt_deepcsv", "n_train": 2378.4, "ahead_at_largest": True}}}


def test_learning_curve_plot_draws_every_tagger_and_the_differences_to_the_reference(tmp_path):
    plot = LearningCurvePlot(_synthetic_result())
    figure = plot.draw()
    n, eff, err, spread = plot.series["deepcsv"]
    np.testing.assert_array_equal(n, [1000, 2000, 4000])
    np.testing.assert_allclose(eff, [0.30, 0.36, 0.42])
    assert set(plot.series) == {"deepcsv", "bdt_deepcsv"} and set(plot.differences) == {"deepcsv"}
    np.testing.assert_allclose(plot.differences["deepcsv"][1], [-0.05, -0.01, 0.03])
    bottom = figure.axes[1]
    assert bottom.get_xscale() == "log"
    assert any(np.allclose(line.get_xdata(), 2378.4) for line in bottom.get_lines())  # the crossing
    written = plot.savefig(tmp_path / "curve")
    assert all(p.stat().st_size > 0 for p in written)
    with pytest.raises(ArgumentError, match="no points"):
        LearningCurvePlot(_synthetic_result(), taggers=["deepjet"])


# -- the whole curve at tiny scale ---------------------------------------------------------------------------------

TINY = {"grid": {"learning_rates": (1e-3,), "batch_factors": (1,)},
        "scale": {"deepcsv": {"max_epochs": 1}, "deepjet": {"max_epochs": 1}},  # per tagger
        "bdt_grid": {"learning_rate": (0.1,), "max_iter": (10,)}, "n_boot": 20, "log": lambda line: None}


@pytest.fixture(scope="module")
def tiny_curve(deepcsv_dataset, deepjet_dataset, ttbar_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("learning_curve")
    datasets = {"deepcsv": deepcsv_dataset, "deepjet": deepjet_dataset, "bdt_deepcsv": deepcsv_dataset}
    # DeepJet with a given learning rate (not searched), the others chosen on the validation split
    result = learning_curve(datasets, [ttbar_sample], out, fractions=(1.0, 0.5), seeds=(1,), lr={"deepjet": 1e-3},
                            **TINY)
    return out, datasets, ttbar_sample, result


def test_learning_curve_scores_every_tagger_at_every_share(tiny_curve):
    out, _, _, result = tiny_curve
    points = {(p["tagger"], p["fraction"]): p for p in result["points"]}
    assert set(points) == {(t, f) for t in ("deepcsv", "deepjet", "bdt_deepcsv") for f in (0.5, 1.0)}
    for tagger in ("deepcsv", "deepjet", "bdt_deepcsv"):
        assert points[(tagger, 0.5)]["n_train"] < points[(tagger, 1.0)]["n_train"]
        assert abs(points[(tagger, 0.5)]["n_train"] - points[(tagger, 1.0)]["n_train"] / 2) <= 3  # rounding/shard
    for point in result["points"]:
        assert 0 <= point["eff"] <= 1 and point["eff_err"] > 0
        if point["tagger"] == "bdt_deepcsv":
            assert point["reference"] is None and point["diff"] is None
        else:
            assert point["reference"] == "bdt_deepcsv" and point["diff_err"] > 0
            assert point["diff"] == pytest.approx(point["eff"] - points[("bdt_deepcsv", point["fraction"])]["eff"])
    assert points[("deepjet", 0.5)]["recipe"]["lr"] == 1e-3
    assert points[("deepjet", 0.5)]["recipe"]["epochs"] == points[("deepcsv", 1.0)]["recipe"]["epochs"] == 1
    assert json.loads((out / RESULT_FILE).read_text())["points"][0]["eff"] == result["points"][0]["eff"]
    # the chosen candidate is the first seed's run; the split it trained on is the share's
    run = points[("deepcsv", 0.5)]["runs"][0]
    assert "choose" in run and json.loads(open(f"{run}/split.json").read())["train_fraction"] == 0.5
    assert set(result["crossings"]) == {"deepcsv", "deepjet"}


def test_learning_curve_rerun_reuses_finished_runs_and_predictions(tiny_curve):
    out, datasets, test_file, result = tiny_curve
    # every file but the result and the lock files a reused run's Trainer takes
    files = [p for p in out.rglob("*") if p.is_file() and p.name != RESULT_FILE and p.name != ".lock"]
    before = {p: p.stat().st_mtime_ns for p in files}
    again = learning_curve(datasets, [test_file], out, fractions=(0.5, 1.0), seeds=(1,), lr={"deepjet": 1e-3},
                           **TINY)
    assert {p: p.stat().st_mtime_ns for p in files} == before  # nothing trained or predicted again
    assert again["points"] == result["points"]


def test_learning_curve_continues_a_run_given_more_epochs_and_predicts_it_again(tiny_curve):
    from deepjet_nb.run import read_history

    out, datasets, test_file, _ = tiny_curve  # (changes the curve's runs: after the tests that reuse them)
    predictions = {p: p.stat().st_mtime_ns for p in (out / "predictions").rglob("*.root")}
    longer = {**TINY, "scale": {**TINY["scale"], "deepjet": {"max_epochs": 2}}}
    again = learning_curve(datasets, [test_file], out, fractions=(0.5, 1.0), seeds=(1,), lr={"deepjet": 1e-3}, **longer)
    assert {p.parent.name for p, t in predictions.items() if p.stat().st_mtime_ns != t} == {"deepjet"}
    assert [len(read_history(p["runs"][0])) for p in again["points"] if p["tagger"] == "deepjet"] == [2, 2]


def test_learning_curve_of_two_seeds_records_their_spread_and_plots(deepcsv_dataset, ttbar_sample, tmp_path):
    result = learning_curve({"bdt_deepcsv": deepcsv_dataset}, [ttbar_sample], tmp_path, fractions=(1.0,),
                            seeds=(1, 2), **TINY)
    (point,) = result["points"]
    assert len(point["eff_seeds"]) == 2 and len(set(point["runs"])) == 2
    assert point["eff_seed_std"] == pytest.approx(np.std(point["eff_seeds"], ddof=1))
    assert result["crossings"] == {}
    figure = plot_learning_curve(result)
    assert len(figure.axes) == 2 and not math.isnan(point["eff"])
    with pytest.raises(RunError, match="holds a BDT run"):  # a finished run of another recipe is not reused
        learning_curve({"bdt_deepcsv": deepcsv_dataset}, [ttbar_sample], tmp_path, fractions=(1.0,), seeds=(2,),
                       choose_lr=False, lr={"bdt_deepcsv": 0.3}, **TINY)
