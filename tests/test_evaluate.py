"""Evaluation on synthetic prediction files: discriminants, metrics, working points, efficiencies, plots, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot
from fixtures.predictions import DEEPCSV, DEEPJET, RAW_FLAGS
from sklearn.metrics import roc_auc_score

from deepjet_nb import cli
from deepjet_nb import evaluate as ev
from deepjet_nb.errors import ArgumentError, InputFileError

B_FLAGS = ("isB", "isBB", "isGBB", "isLeptonicB", "isLeptonicB_C")
C_FLAGS = ("isC", "isCC", "isGCC")
L_FLAGS = ("isUD", "isS", "isG")


def read(path):
    with uproot.open(path) as f:
        return f["tree"].arrays(library="np")


def flavour_masks(arrays):
    return {name: sum(arrays[f] for f in flags) > 0
            for name, flags in (("b", B_FLAGS), ("c", C_FLAGS), ("udsg", L_FLAGS))}


def direct_b_disc(arrays, classes):
    return sum(arrays[f"prob_is{c}"].astype(np.float64) for c in classes if c in ("B", "BB", "LeptB"))


@pytest.fixture(scope="module")
def taggers(prediction_files):
    return ev.load_taggers([prediction_files["deepjet"], prediction_files["deepcsv"]])


# --- reading and metrics --------------------------------------------------------------------------------


def test_flavour_of_an_unknown_class_is_inferred_from_its_truth_branch(tmp_path, synthetic_jets):
    from fixtures.predictions import write_prediction_file

    classes = {"Bottom": DEEPCSV["B"] + DEEPCSV["BB"], "C": DEEPCSV["C"], "Light": DEEPCSV["UDSG"]}
    path = write_prediction_file(tmp_path / "custom.root", synthetic_jets, classes, 2.0, seed=4)
    tagger = ev.read_predictions(path)
    arrays = read(path)
    np.testing.assert_allclose(tagger.discriminants["b"], arrays["prob_isBottom"])
    c, light = arrays["prob_isC"].astype(float), arrays["prob_isLight"].astype(float)
    np.testing.assert_allclose(tagger.discriminants["CvsL"], c / (c + light), rtol=1e-12)



def test_read_predictions_builds_discriminants_and_truth_from_the_file(prediction_files):
    tagger = ev.read_predictions(prediction_files["deepjet"])
    arrays = read(prediction_files["deepjet"])
    masks = flavour_masks(arrays)
    assert tagger.name == "deepjet"
    assert tagger.counts() == {k: int(v.sum()) for k, v in masks.items()}
    np.testing.assert_allclose(tagger.discriminants["b"], direct_b_disc(arrays, DEEPJET), rtol=1e-12)
    np.testing.assert_array_equal(tagger.jet_pt, arrays["jet_pt"])


def test_metrics_auc_matches_sklearn_on_the_same_jets(taggers, prediction_files):
    metrics = ev.compute_metrics(taggers)
    assert list(metrics) == ["deepjet", "deepcsv", "track_counting"]
    for name, classes in (("deepjet", DEEPJET), ("deepcsv", DEEPCSV)):
        arrays = read(prediction_files[name])
        masks = flavour_masks(arrays)
        b = direct_b_disc(arrays, classes)
        use = masks["b"] | masks["udsg"]
        assert metrics[name]["b_vs_udsg"]["auc"] == pytest.approx(roc_auc_score(masks["b"][use], b[use]), abs=1e-10)
        use = masks["b"] | masks["c"]
        assert metrics[name]["b_vs_c"]["auc"] == pytest.approx(roc_auc_score(masks["b"][use], b[use]), abs=1e-10)
        c = arrays["prob_isC"].astype(np.float64)
        light = sum(arrays[f"prob_is{k}"].astype(np.float64) for k in classes if k in ("UDS", "G", "UDSG"))
        use = masks["c"] | masks["udsg"]
        assert metrics[name]["c_vs_udsg"]["auc"] == pytest.approx(
            roc_auc_score(masks["c"][use], (c / (c + light))[use]), abs=1e-10)
        assert metrics[name]["b_vs_udsg"]["n_signal"] == masks["b"].sum()
    # The baseline scores the second-highest IP significance on the jets of the first file.
    arrays = read(prediction_files["deepjet"])
    masks = flavour_masks(arrays)
    use = masks["b"] | masks["udsg"]
    assert metrics["track_counting"]["b_vs_udsg"]["auc"] == pytest.approx(
        roc_auc_score(masks["b"][use], arrays["trackCounting_sip3dSig2"][use]), abs=1e-10)


def test_metrics_have_the_documented_shape_and_rank_the_taggers(taggers):
    metrics = ev.compute_metrics(taggers)
    for tasks in metrics.values():
        assert set(tasks) == {"b_vs_udsg", "b_vs_c", "c_vs_udsg", "c_vs_b"}
        for entry in tasks.values():
            assert set(entry["eff_at_mistag"]) == {"0.1", "0.01", "0.001"}
            effs = [entry["eff_at_mistag"][k] for k in ("0.001", "0.01", "0.1")]
            assert effs == sorted(effs) and 0 <= effs[0] and effs[-1] <= 1
    # The synthetic DeepJet separates its classes better than the synthetic DeepCSV (separation 3 vs 2).
    assert metrics["deepjet"]["b_vs_udsg"]["auc"] > metrics["deepcsv"]["b_vs_udsg"]["auc"] + 0.02
    eff = {name: metrics[name]["b_vs_udsg"]["eff_at_mistag"]["0.01"] for name in ("deepjet", "deepcsv")}
    assert eff["deepjet"] > eff["deepcsv"]


def test_metrics_carry_bootstrap_errors_of_the_size_binomial_statistics_give(taggers):
    metrics = ev.compute_metrics(taggers)
    for tasks in metrics.values():
        for entry in tasks.values():
            assert set(entry["eff_at_mistag_err"]) == set(entry["eff_at_mistag"])
    entry = metrics["deepjet"]["b_vs_udsg"]
    # At a 10 % mistag the efficiency error is at least the binomial error of the b jets at that cut (the
    # threshold's own uncertainty, from the light jets, adds to it) and at most a few times it.
    eff = entry["eff_at_mistag"]["0.1"]
    binomial = np.sqrt(eff * (1 - eff) / entry["n_signal"])
    assert binomial * 0.8 < entry["eff_at_mistag_err"]["0.1"] < binomial * 4
    assert 0 < entry["auc_err"] < 0.02
    # Seeded: the same taggers give the same errors.
    assert ev.compute_metrics(taggers)["deepjet"]["b_vs_udsg"]["auc_err"] == entry["auc_err"]


def test_eff_at_mistag_agrees_with_a_direct_cut_on_the_light_jets(taggers):
    tagger = taggers[0]
    b = tagger.discriminants["b"]
    light = b[tagger.flavour == 0]
    sig = b[tagger.flavour == 5]
    curve = ev.roc(tagger, "b_vs_udsg")
    for m in (0.1, 0.01):
        cut = np.quantile(light, 1 - m)  # cut that keeps a fraction m of light jets
        assert curve.eff_at(m) == pytest.approx(np.mean(sig > cut), abs=0.01)


def test_working_points_realise_at_most_their_light_mistag(taggers):
    tagger = taggers[0]
    b = tagger.discriminants["b"]
    wps = ev.working_points(tagger)
    assert list(wps) == ["loose", "medium", "tight"]
    for wp in wps.values():
        assert wp.mistag <= wp.target_mistag
        assert wp.mistag == pytest.approx(np.mean(b[tagger.flavour == 0] >= wp.cut), abs=1e-12)
        assert wp.efficiency == pytest.approx(np.mean(b[tagger.flavour == 5] >= wp.cut), abs=1e-12)
    assert wps["loose"].cut < wps["medium"].cut < wps["tight"].cut


def test_roc_in_a_pt_window_uses_only_those_jets(taggers):
    tagger = taggers[0]
    sel = (tagger.jet_pt >= 50) & (tagger.jet_pt < 100)
    use = sel & ((tagger.flavour == 5) | (tagger.flavour == 0))
    curve = ev.roc(tagger, "b_vs_udsg", pt_range=(50, 100))
    assert curve.auc == pytest.approx(roc_auc_score(tagger.flavour[use] == 5, tagger.discriminants["b"][use]))
    assert curve.n_signal + curve.n_background == use.sum()
    with pytest.raises(ArgumentError, match="need both"):
        ev.roc(tagger, "b_vs_udsg", pt_range=(5000, 6000))
    with pytest.raises(ArgumentError, match="unknown task"):
        ev.roc(tagger, "b_vs_tau")


def test_efficiency_vs_pt_counts_and_binomial_errors(taggers):
    tagger = taggers[0]
    cut = ev.working_points(tagger)["medium"].cut
    edges = [20, 50, 100, 200, 1000]
    effs = ev.efficiency_vs(tagger, "jet_pt", edges, cut=cut)
    for flavour, code in ev.FLAVOUR_CODES.items():
        eff = effs[flavour]
        jets = tagger.flavour == code
        for i in range(len(edges) - 1):
            in_bin = jets & (tagger.jet_pt >= edges[i]) & (tagger.jet_pt < edges[i + 1])
            assert eff.n_total[i] == in_bin.sum()
            assert eff.values[i] == pytest.approx(np.mean(tagger.discriminants["b"][in_bin] >= cut))
        ok = eff.n_total > 0
        assert np.all(eff.err_low[ok] >= 0) and np.all(eff.err_high[ok] > 0)
        assert np.all(eff.values[ok] - eff.err_low[ok] >= -1e-12)
        assert np.all(eff.values[ok] + eff.err_high[ok] <= 1 + 1e-12)
    # The medium working point tags most b jets and about 1 % of light jets.
    total = effs["udsg"].n_pass.sum() / effs["udsg"].n_total.sum()
    assert total == pytest.approx(0.01, abs=0.005)
    assert np.nanmin(effs["b"].values) > 0.5
    with pytest.raises(ArgumentError, match="variable"):
        ev.efficiency_vs(tagger, "jet_phi", cut=cut)


def test_clopper_pearson_error_matches_the_binomial_width_for_large_counts():
    rng = np.random.default_rng(3)
    n = 40_000
    flav = np.zeros(n, dtype=np.int8)
    tagger = ev.Tagger("t", {"b": rng.random(n)}, flav, np.full(n, 30.0), np.zeros(n))
    eff = ev.efficiency_vs(tagger, "jet_pt", [20, 40], cut=0.7)["udsg"]
    p = eff.values[0]
    sigma = np.sqrt(p * (1 - p) / n)
    assert eff.err_low[0] == pytest.approx(sigma, rel=0.05)
    assert eff.err_high[0] == pytest.approx(sigma, rel=0.05)


# --- plots ----------------------------------------------------------------------------------------------


def test_roc_plot_ratio_panel_holds_the_mistag_ratio_to_the_reference(taggers):
    from deepjet_nb.plots import RocPlot

    plot = RocPlot("b", reference="deepcsv")
    for t in taggers[:2]:
        plot.add(ev.roc(t, "b_vs_udsg")).add(ev.roc(t, "b_vs_c"))
    fig = plot.draw()
    try:
        x, ratio = plot.ratios[("deepcsv", "udsg")]
        np.testing.assert_allclose(ratio[np.isfinite(ratio)], 1.0)
        x, ratio = plot.ratios[("deepjet", "c")]
        i = np.argmin(np.abs(x - 0.7))
        want = ev.roc(taggers[0], "b_vs_c").mistag_at(x[i]) / ev.roc(taggers[1], "b_vs_c").mistag_at(x[i])
        assert ratio[i] == pytest.approx(want)
        assert np.nanmedian(plot.ratios[("deepjet", "udsg")][1]) < 1  # better tagger, lower mistag
        main = fig.axes[0]
        assert main.get_yscale() == "log"
        assert len(fig.axes) == 3  # ROC + one ratio panel per background
        assert all(ax.get_yscale() == "log" for ax in fig.axes[1:])  # ratios of mistags span decades
        assert fig.axes[-1].get_xlabel() == "b-jet efficiency"
        styles = {line.get_linestyle() for line in main.get_lines()}
        assert {"-", "--"} <= styles
        texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
        assert "deepjet-nb" in texts and "Simulation" in texts and "13 TeV" in texts
    finally:
        plot.close()


def test_discriminant_plot_histograms_are_normalised_per_flavour(taggers):
    from deepjet_nb.plots import HistogramPlot

    plot = HistogramPlot.from_tagger(taggers[0], "b", bins=20)
    assert set(plot.histograms) == {"b jets", "c jets", "udsg jets"}
    for edges, density in plot.histograms.values():
        assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
    # b jets pile up at high b discriminant, light jets at low.
    edges, dens_b = plot.histograms["b jets"]
    assert dens_b[-1] > plot.histograms["udsg jets"][1][-1]


def test_evaluate_writes_metrics_working_points_and_plots(prediction_files, tmp_path):
    out = tmp_path / "eval"
    metrics = ev.evaluate([prediction_files["deepjet"], prediction_files["deepcsv"]], out)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    wps = json.loads((out / "working_points.json").read_text())
    assert set(wps) == {"deepjet", "deepcsv", "track_counting"}
    assert wps["deepjet"]["medium"]["mistag"] <= 0.01
    names = {p.name for p in (out / "plots").iterdir()}
    for stem in ("roc_b", "roc_c", "discriminant_deepjet", "efficiency_pt_deepcsv", "efficiency_eta_track_counting"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert (out / "plots" / "roc_b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [n for n in names if n.startswith(".tmp-")]


# --- errors and the command line ------------------------------------------------------------------------


def test_bad_prediction_files_name_the_file_tree_and_branch(tmp_path):
    with pytest.raises(InputFileError, match="missing.root"):
        ev.read_predictions(tmp_path / "missing.root")
    (tmp_path / "junk.root").write_text("not root")
    with pytest.raises(InputFileError, match="junk.root"):
        ev.read_predictions(tmp_path / "junk.root")
    with uproot.recreate(tmp_path / "other.root") as f:
        f["events"] = {"x": np.zeros(3)}
    with pytest.raises(InputFileError, match="no tree 'tree'"):
        ev.read_predictions(tmp_path / "other.root")
    with uproot.recreate(tmp_path / "noflag.root") as f:
        f["tree"] = {"prob_isB": np.full(3, 0.5, np.float32), "prob_isUDSG": np.full(3, 0.5, np.float32),
                     "jet_pt": np.full(3, 30.0), "jet_eta": np.zeros(3),
                     **{flag: np.zeros(3, np.int32) for flag in RAW_FLAGS if flag != "isGBB"}}
    with pytest.raises(InputFileError, match="isGBB"):
        ev.read_predictions(tmp_path / "noflag.root")


def test_cli_evaluate_writes_metrics_and_reports_errors_in_one_line(prediction_files, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli.main(["evaluate", "--out", str(out), "--no-plots", f"DJ={prediction_files['deepjet']}",
                   str(prediction_files["deepcsv"])])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["DJ", "deepcsv", "track_counting"]
    assert "b_vs_udsg" in capsys.readouterr().out
    rc = cli.main(["evaluate", "--out", str(tmp_path / "bad"), str(tmp_path / "nope.root")])
    err = capsys.readouterr().err
    assert rc == 1 and "nope.root" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad" / "metrics.json").exists()


def test_import_is_cheap_and_plotting_keeps_a_chosen_backend(prediction_files, tmp_path):
    code = f"""
import sys
import deepjet_nb.evaluate, deepjet_nb.plots, deepjet_nb.widgets, deepjet_nb.predict
import deepjet_nb.cli; deepjet_nb.cli.build_parser()
assert "matplotlib" not in sys.modules and "tensorflow" not in sys.modules and "keras" not in sys.modules
import matplotlib
matplotlib.use("svg")
from deepjet_nb import evaluate as ev
from deepjet_nb.plots import RocPlot
t = ev.read_predictions({str(prediction_files['deepcsv'])!r})
RocPlot("b").add(ev.roc(t)).savefig({str(tmp_path / 'r')!r}, formats=("png",))
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=_batch_env())
    assert (tmp_path / "r.png").is_file()


def test_batch_plotting_selects_agg_when_no_backend_was_chosen(prediction_files, tmp_path):
    code = f"""
import matplotlib
from deepjet_nb import evaluate as ev
from deepjet_nb.plots import RocPlot
assert matplotlib.get_backend(auto_select=False) is None
RocPlot("b").add(ev.roc(ev.read_predictions({str(prediction_files['deepcsv'])!r}))).draw()
assert matplotlib.get_backend().lower() == "agg", matplotlib.get_backend()
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=_batch_env())


def _batch_env():
    """The environment of a batch job: no backend chosen, the package importable."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


# --- notebooks (papermill) ------------------------------------------------------------------------------


def _auc(path, tagger, task):
    return json.loads(path.read_text())[tagger][task]["auc"]


@pytest.mark.slow
def test_pipeline_notebook_writes_the_metrics_of_the_library(run_notebook, prediction_files, taggers):
    nb = run_notebook("notebooks/evaluate.ipynb", working_point="tight",
                      predictions=[str(prediction_files["deepjet"]), str(prediction_files["deepcsv"])])
    metrics = json.loads((nb.out_dir / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(ev.compute_metrics(taggers)))
    assert (nb.out_dir / "plots" / "efficiency_pt_deepjet.png").is_file()
    assert nb.summary["deepjet"]["b_vs_udsg"]["auc"] == metrics["deepjet"]["b_vs_udsg"]["auc"]


@pytest.mark.slow
def test_tutorial_notebook_evaluates_the_given_predictions(run_notebook, prediction_files, taggers):
    nb = run_notebook("tutorials/05_evaluate.ipynb",
                      predictions=[str(prediction_files["deepjet"]), str(prediction_files["deepcsv"])])
    metrics = json.loads((nb.out_dir / "metrics.json").read_text())
    assert set(metrics) == {"deepjet", "deepcsv", "track_counting"}
    assert metrics["deepjet"]["b_vs_udsg"]["auc"] == pytest.approx(ev.roc(taggers[0], "b_vs_udsg").auc)
    assert metrics["deepjet"]["b_vs_udsg"]["auc"] > metrics["deepcsv"]["b_vs_udsg"]["auc"]
    assert metrics["deepcsv"]["c_vs_udsg"]["eff_at_mistag"]["0.01"] == pytest.approx(
        ev.roc(taggers[1], "c_vs_udsg").eff_at(0.01))
    assert (nb.out_dir / "plots" / "roc_c.pdf").is_file()
    assert nb.summary["beff_at_1pct"]["deepjet"] == metrics["deepjet"]["b_vs_udsg"]["eff_at_mistag"]["0.01"]
    # Every plot cell shows its figure inline (discriminant, two ROC plots, efficiency) and the widget renders.
    outputs = nb.outputs()
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)



# --- paired differences, seed spread, the summary table ---------------------------------------------------


def test_paired_difference_is_the_difference_of_the_values_with_a_paired_bootstrap_error(taggers):
    metrics = ev.compute_metrics(taggers, differences=[("deepjet", "deepcsv")])
    jet, csv = metrics["deepjet"]["b_vs_udsg"], metrics["deepcsv"]["b_vs_udsg"]
    diff = jet["minus"]["deepcsv"]
    assert diff["auc"] == pytest.approx(jet["auc"] - csv["auc"], abs=1e-12)
    assert diff["eff_at_mistag"]["0.01"] == pytest.approx(jet["eff_at_mistag"]["0.01"] - csv["eff_at_mistag"]["0.01"])
    # the error: one bootstrap replica of the b and light jets for both taggers (the kernel's own test checks that
    # what two taggers share cancels)
    from deepjet_nb.flavours import FLAVOUR_CODES
    from deepjet_nb.kernels.roc import paired_bootstrap_errors

    deepjet, deepcsv = taggers[0], taggers[1]
    use = np.isin(deepjet.flavour, [FLAVOUR_CODES["b"], FLAVOUR_CODES["udsg"]])
    auc_err, eff_err = paired_bootstrap_errors(deepcsv.discriminants["b"][use], deepjet.discriminants["b"][use],
                                               deepjet.flavour[use] == FLAVOUR_CODES["b"], mistags=ev.MISTAGS)
    assert diff["auc_err"] == pytest.approx(auc_err) and auc_err > 0
    assert [diff["eff_at_mistag_err"][f"{m:g}"] for m in ev.MISTAGS] == pytest.approx(list(eff_err))
    assert "minus" not in csv  # only the pairs asked for
    assert set(metrics["deepjet"]["c_vs_b"]["minus"]) == {"deepcsv"}


def test_a_difference_of_predictions_on_other_jets_is_refused(taggers):
    import dataclasses

    deepjet, deepcsv = taggers[0], taggers[1]
    order = np.random.default_rng(0).permutation(len(deepcsv))
    shuffled = dataclasses.replace(deepcsv, discriminants={k: v[order] for k, v in deepcsv.discriminants.items()},
                                   flavour=deepcsv.flavour[order], jet_pt=deepcsv.jet_pt[order],
                                   jet_eta=deepcsv.jet_eta[order])
    with pytest.raises(ArgumentError, match="not the same jets"):
        ev.difference(deepjet, shuffled)
    fewer = dataclasses.replace(deepcsv, flavour=deepcsv.flavour[:-1])
    with pytest.raises(ArgumentError, match="same jets"):
        ev.difference(deepjet, fewer)
    with pytest.raises(ArgumentError, match="no tagger 'nope'"):
        ev.compute_metrics(taggers, differences=[("deepjet", "nope")])


def test_seed_spread_is_the_standard_deviation_over_the_seeds(taggers):
    import dataclasses

    deepjet = taggers[0]
    rng = np.random.default_rng(5)
    other = dataclasses.replace(deepjet, discriminants={k: v + rng.normal(0, 0.05, len(v))
                                                        for k, v in deepjet.discriminants.items()})
    metrics = ev.compute_metrics(taggers, seeds={"deepjet": [other]})
    entry = metrics["deepjet"]["b_vs_udsg"]
    a, b = ev.roc(deepjet, "b_vs_udsg"), ev.roc(other, "b_vs_udsg")
    assert entry["n_seeds"] == 2
    assert entry["auc_seed_std"] == pytest.approx(abs(a.auc - b.auc) / np.sqrt(2))
    assert entry["eff_at_mistag_seed_std"]["0.01"] == pytest.approx(abs(a.eff_at(0.01) - b.eff_at(0.01)) / np.sqrt(2))
    assert entry["auc"] == a.auc  # the values stay those of the first seed
    assert "n_seeds" not in metrics["deepcsv"]["b_vs_udsg"]
    table = ev.summary_table(metrics)
    assert "seed spread" in table and "deepjet (2 seeds)" in table


def test_a_difference_carries_the_seed_spread_of_the_taggers_trained_with_seeds(taggers):
    """Beside the paired test-sample error: the seed spreads of both taggers in quadrature, naming whose went in."""
    import dataclasses

    deepjet, deepcsv = taggers[0], taggers[1]
    rng = np.random.default_rng(6)

    def reseeded(tagger):
        return dataclasses.replace(tagger, discriminants={k: v + rng.normal(0, 0.05, len(v))
                                                          for k, v in tagger.discriminants.items()})

    both = ev.compute_metrics(taggers, differences=[("deepjet", "deepcsv")],
                              seeds={"deepjet": [reseeded(deepjet)], "deepcsv": [reseeded(deepcsv)]})
    diff = both["deepjet"]["b_vs_udsg"]["minus"]["deepcsv"]
    spreads = [both[t]["b_vs_udsg"]["eff_at_mistag_seed_std"]["0.01"] for t in ("deepjet", "deepcsv")]
    assert diff["seed_std_of"] == ["deepcsv", "deepjet"]
    assert diff["eff_at_mistag_seed_std"]["0.01"] == pytest.approx(np.hypot(*spreads))
    assert "  seeds: deepcsv+deepjet" in ev.summary_table(both)

    one = ev.compute_metrics(taggers, differences=[("deepjet", "deepcsv")], seeds={"deepcsv": [reseeded(deepcsv)]})
    diff = one["deepjet"]["b_vs_udsg"]["minus"]["deepcsv"]
    assert diff["seed_std_of"] == ["deepcsv"]  # DeepJet trained once: its spread is not in it, and that is said
    assert "seed_std_of" not in ev.compute_metrics(taggers, differences=[("deepjet", "deepcsv")])[
        "deepjet"]["b_vs_udsg"]["minus"]["deepcsv"]


@pytest.mark.parametrize("value, err, scale, text", [
    (0.9397, 0.0012, 1.0, "0.940 ± 0.001"), (0.661, 0.007, 100, "66.1 ± 0.7"), (0.452, 0.013, 100, "45 ± 1"),
    (0.26, 0.046, 100, "26 ± 5"), (0.0734, 0.0096, 100, "7 ± 1"), (0.851, 0.0031, 100, "85.1 ± 0.3"),
])
def test_values_are_written_with_one_significant_digit_of_their_error(value, err, scale, text):
    assert ev.format_value(value, err, scale) == text


def test_summary_table_and_cli_show_the_paired_difference(prediction_files, tmp_path, capsys):
    rc = cli.main(["evaluate", "--out", str(tmp_path / "cli"), "--no-plots", "--difference", "deepjet,deepcsv",
                   str(prediction_files["deepjet"]), str(prediction_files["deepcsv"])])
    assert rc == 0
    out = capsys.readouterr().out
    assert "paired differences" in out and "deepjet − deepcsv" in out
    metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert metrics["deepjet"]["b_vs_udsg"]["minus"]["deepcsv"]["eff_at_mistag_err"]["0.01"] > 0
    line = next(line for line in out.splitlines() if line.startswith("deepjet − deepcsv") and "b_vs_udsg" in line)
    assert line.split()[4].startswith("+")  # differences carry their sign


def test_paired_verdict_says_better_only_beyond_twice_the_paired_error():
    def metrics(value, error):
        return {"a": {"b_vs_udsg": {"minus": {"b": {"eff_at_mistag": {"0.01": value},
                                                      "eff_at_mistag_err": {"0.01": error}}}}}}

    assert ev.paired_verdict(metrics(0.075, 0.012), "a", "b") == \
        "a − b: +7.5 ± 1.2 percentage points (paired error): a is better than b."
    assert ev.paired_verdict(metrics(-0.05, 0.01), "a", "b").endswith("b is better than a.")
    assert ev.paired_verdict(metrics(0.019, 0.01), "a", "b").endswith("a and b do not differ significantly here.")
    assert ev.paired_verdict(metrics(0.019, 0.01), "a", "b", sigmas=1).endswith("a is better than b.")
