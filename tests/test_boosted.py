"""Boosted-jet evaluation on synthetic fat-jet prediction files: tasks, τ-cut baselines, sculpting, plots, CLI.

The files are written with uproot alone (docs/formats.md §4): tops (bcq, bqq and some partially merged bq that
enter no task), Ws and QCD with Gaussian-ish masses and τ ratios; tagger ``flat`` scores from the τ ratios only
(mass-independent), ``massy`` adds the jet mass, ``topqcd`` has only the classes Top and QCD.
"""

import json

import numpy as np
import pytest
import uproot

from deepjet_nb import boosted as bo
from deepjet_nb import cli
from deepjet_nb.errors import InputFileError
from deepjet_nb.kernels import roc as kroc
from deepjet_nb.schema import FJ_LABELS

COUNTS = {"label_Top_bcq": 600, "label_Top_bqq": 500, "label_Top_bq": 150, "label_W_qq": 500, "label_W_cq": 250,
          "label_QCD_others": 1200, "label_QCD_b": 300, "label_QCD_c": 250, "label_QCD_bb": 150, "label_QCD_cc": 100}
N_BOOT = 20


def make_jets(seed=3, qcd_mass_scale=60.0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[name] * n for name, n in COUNTS.items()])
    rng.shuffle(labels)
    n = len(labels)
    top = np.isin(labels, ["label_Top_bcq", "label_Top_bqq"])
    w = np.isin(labels, ["label_W_qq", "label_W_cq"])
    bq = labels == "label_Top_bq"
    qcd = np.char.startswith(labels.astype(str), "label_QCD")
    mass = np.select([top, w, bq], [rng.normal(172, 18, n), rng.normal(82, 9, n), rng.normal(120, 30, n)],
                     20.0 + rng.exponential(qcd_mass_scale, n))
    tau32 = np.where(top, rng.normal(0.55, 0.1, n), rng.normal(0.75, 0.1, n))
    tau21 = np.select([w, top], [rng.normal(0.40, 0.1, n), rng.normal(0.55, 0.12, n)], rng.normal(0.65, 0.12, n))
    jets = {name: (labels == name).astype(np.int32) for name in FJ_LABELS}
    jets.update(fj_pt=rng.uniform(400, 800, n), fj_eta=rng.uniform(-2, 2, n), fj_sdmass=np.clip(mass, 0, None),
                fj_mass=np.clip(mass, 0, None) + 10, fj_tau32=np.clip(tau32, 0.05, 1), fj_tau21=np.clip(tau21, 0.05, 1))
    jets = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in jets.items()}
    return jets, {"top": top, "w": w, "qcd": qcd}


def make_predictions(jets, truth, *, mass_weight, classes=("Top", "W", "QCD"), seed=5):
    rng = np.random.default_rng(seed)
    n = len(jets["fj_pt"])
    m = jets["fj_sdmass"].astype(float)
    logits = {
        "Top": 2.5 * (0.75 - jets["fj_tau32"]) / 0.1 + mass_weight * np.exp(-((m - 172) / 20) ** 2 / 2)
               + rng.normal(0, 1, n),
        "W": 2.5 * (0.65 - jets["fj_tau21"]) / 0.12 + mass_weight * np.exp(-((m - 82) / 10) ** 2 / 2)
             + rng.normal(0, 1, n),
        "QCD": np.zeros(n),
    }
    z = np.stack([logits[c] for c in classes], axis=1)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    truths = {"Top": truth["top"], "W": truth["w"], "QCD": truth["qcd"]}
    out = {f"prob_is{c}": p[:, i].astype(np.float32) for i, c in enumerate(classes)}
    out.update({f"truth_is{c}": truths[c].astype(np.int32) for c in classes})
    return out


def write(path, branches):
    with uproot.recreate(path) as f:
        f["tree"] = branches
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("boosted")
    jets, truth = make_jets()
    return {
        "flat": write(d / "flat.root", {**make_predictions(jets, truth, mass_weight=0.0), **jets}),
        "massy": write(d / "massy.root", {**make_predictions(jets, truth, mass_weight=6.0, seed=6), **jets}),
        "topqcd": write(d / "topqcd.root", {**make_predictions(jets, truth, mass_weight=0.0, classes=("Top", "QCD"),
                                                               seed=7), **jets}),
    }


@pytest.fixture(scope="module")
def evaluation(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "eval"
    with pytest.warns(bo.SkippedTaskWarning, match="topqcd: skipped w_vs_qcd"):
        metrics = bo.evaluate_boosted([files["flat"], files["massy"], files["topqcd"]], out, bootstrap=N_BOOT,
                                      formats=("png",), pt_range=None)
    return metrics, out


def read(path):
    with uproot.open(path) as f:
        return f["tree"].arrays(library="np")


# --- metrics --------------------------------------------------------------------------------------------


def test_metrics_cover_taggers_tasks_and_baselines_with_sane_values(evaluation):
    metrics, out = evaluation
    assert list(metrics) == ["flat", "massy", "topqcd", "tau32_cut", "tau21_cut"]
    assert set(metrics["flat"]) == set(metrics["massy"]) == {"top_vs_qcd", "w_vs_qcd"}
    assert set(metrics["topqcd"]) == {"top_vs_qcd"}
    assert set(metrics["tau32_cut"]) == {"top_vs_qcd"} and set(metrics["tau21_cut"]) == {"w_vs_qcd"}
    n_qcd = sum(n for name, n in COUNTS.items() if name.startswith("label_QCD"))
    for name, tasks in metrics.items():
        for task, m in tasks.items():
            # truth from the raw labels: only bcq + bqq tops (not the bq ones), W qq + cq, all QCD labels
            assert m["n_signal"] == (1100 if task == "top_vs_qcd" else 750)
            assert m["n_background"] == n_qcd
            assert 0.5 < m["auc"] <= 1 and 0 < m["auc_err"] < 0.05
            assert set(m["eff_at_mistag"]) == set(m["eff_at_mistag_err"]) == {"0.05", "0.01"}
            for key in ("0.05", "0.01"):
                assert 0 < m["eff_at_mistag"][key] <= 1 and 0 < m["eff_at_mistag_err"][key] < 0.2
                s = m["sculpting"][key]
                assert set(s) >= {"js", "js_err", "n_selected", "mean_sdmass", "median_sdmass", "cut", "mistag"}
                assert 0 <= s["js"] <= 1 and s["js_err"] > 0
                assert s["n_selected"] <= float(key) * n_qcd
            assert m["eff_at_mistag"]["0.05"] >= m["eff_at_mistag"]["0.01"]
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))


def test_tagger_score_is_the_signal_over_signal_plus_qcd_probability(files):
    tagger = bo.read_fat_jets(files["flat"])
    arrays = read(files["flat"])
    for task, cls in (("top_vs_qcd", "Top"), ("w_vs_qcd", "W")):
        sig, qcd = arrays[f"prob_is{cls}"].astype(float), arrays["prob_isQCD"].astype(float)
        np.testing.assert_allclose(tagger.scores[task], sig / (sig + qcd), rtol=1e-12)


def test_errors_are_the_evaluation_bootstrap_of_the_task_jets(evaluation, files):
    metrics, _ = evaluation
    tagger = bo.read_fat_jets(files["massy"])
    signal, background = tagger.jets("top_vs_qcd")
    use = signal | background
    auc_err, eff_err = kroc.bootstrap_errors(tagger.scores["top_vs_qcd"][use], signal[use], None,
                                             np.array([0.05, 0.01]), n_boot=N_BOOT, seed=0)
    m = metrics["massy"]["top_vs_qcd"]
    assert m["auc_err"] == pytest.approx(auc_err, rel=1e-12)
    assert [m["eff_at_mistag_err"][k] for k in ("0.05", "0.01")] == pytest.approx(list(eff_err), rel=1e-12)


@pytest.mark.parametrize("baseline, variable, window, signal, mistag",
                         [("tau32_cut", "fj_tau32", (105, 210), "top", 0.05),
                          ("tau32_cut", "fj_tau32", (105, 210), "top", 0.01),
                          ("tau21_cut", "fj_tau21", (65, 105), "w", 0.05)])
def test_tau_cut_efficiency_equals_a_direct_count_of_window_and_cut(evaluation, files, baseline, variable, window,
                                                                     signal, mistag):
    metrics, _ = evaluation
    arrays = read(files["flat"])
    _, truth = make_jets()
    m = arrays["fj_sdmass"]
    inside = (m > window[0]) & (m < window[1])
    tau = arrays[variable]
    qcd_tau = np.sort(tau[truth["qcd"] & inside])
    n_qcd, n_sig = int(truth["qcd"].sum()), int(truth[signal].sum())
    k = int(np.floor(mistag * n_qcd))  # the cut tau <= qcd_tau[k - 1] passes k QCD jets, <= mistag
    eff_k = np.count_nonzero(truth[signal] & inside & (tau <= qcd_tau[k - 1])) / n_sig
    eff_k1 = np.count_nonzero(truth[signal] & inside & (tau <= qcd_tau[k])) / n_sig
    task = bo.BASELINES[baseline].task
    value = metrics[baseline][task]["eff_at_mistag"][f"{mistag:g}"]
    # the ROC interpolates between the cuts with k and k + 1 QCD jets
    assert eff_k - 1e-12 <= value <= eff_k1 + 1e-12
    assert eff_k1 - eff_k < 0.02
    entry = metrics[baseline][task]["baseline"]
    assert entry["sdmass_window"] == list(window) and entry["variable"] == variable
    assert entry["max_mistag"] == pytest.approx(np.count_nonzero(truth["qcd"] & inside) / n_qcd)


def test_mass_correlated_tagger_sculpts_the_qcd_mass_more(evaluation):
    metrics, _ = evaluation
    for task, (lo, hi) in (("top_vs_qcd", bo.TOP_SDMASS_WINDOW), ("w_vs_qcd", bo.W_SDMASS_WINDOW)):
        for key in ("0.05", "0.01"):
            flat, massy = metrics["flat"][task]["sculpting"][key], metrics["massy"][task]["sculpting"][key]
            assert massy["js"] > flat["js"] + 2 * np.hypot(massy["js_err"], flat["js_err"]), (task, key)
            assert lo < massy["median_sdmass"] < hi
        inclusive = metrics["massy"][task]["sdmass_inclusive"]
        assert inclusive["n"] == metrics["massy"][task]["n_background"]
        assert inclusive["median_sdmass"] < 80


def test_sculpting_js_equals_a_direct_histogram_of_the_selected_qcd_jets(evaluation, files):
    from scipy.spatial.distance import jensenshannon

    metrics, _ = evaluation
    for name in ("flat", "massy"):
        tagger = bo.read_fat_jets(files[name])
        _, qcd = tagger.jets("top_vs_qcd")
        mass, score = np.clip(tagger.sdmass[qcd], 0, 300), tagger.scores["top_vs_qcd"][qcd]
        inclusive, _ = np.histogram(mass, bins=bo.SDMASS_EDGES)
        for key in ("0.05", "0.01"):
            s = metrics[name]["top_vs_qcd"]["sculpting"][key]
            selected = score >= s["cut"]
            assert np.count_nonzero(selected) == s["n_selected"] <= float(key) * len(score)
            assert s["n_selected"] > float(key) * len(score) - 3
            hist, _ = np.histogram(mass[selected], bins=bo.SDMASS_EDGES)
            assert s["js"] == pytest.approx(jensenshannon(inclusive, hist, base=2) ** 2, rel=1e-9)
            assert s["median_sdmass"] == pytest.approx(np.median(tagger.sdmass[qcd][selected]))
    assert metrics["massy"]["top_vs_qcd"]["sculpting"]["0.05"]["js"] > 0.2
    assert metrics["flat"]["top_vs_qcd"]["sculpting"]["0.05"]["js"] < 0.15


def test_paired_differences_to_the_first_tagger(evaluation):
    metrics, _ = evaluation
    d = metrics["massy"]["top_vs_qcd"]["minus"]["flat"]
    assert d["auc"] == pytest.approx(metrics["massy"]["top_vs_qcd"]["auc"] - metrics["flat"]["top_vs_qcd"]["auc"])
    assert 0 < d["auc_err"] < 0.05 and d["eff_at_mistag_err"]["0.05"] > 0
    assert "minus" not in metrics["flat"]["top_vs_qcd"]
    assert "flat" in metrics["tau32_cut"]["top_vs_qcd"]["minus"]


def test_efficiency_beyond_the_window_acceptance_is_null_with_a_note(files, tmp_path):
    low = tmp_path / "lowmass.root"
    jets, truth = make_jets(qcd_mass_scale=12.0)  # QCD far below the top window: acceptance ~ 1e-3
    write(low, {**make_predictions(jets, truth, mass_weight=0.0), **jets})
    metrics = bo.evaluate_boosted([low], tmp_path / "eval", tasks=["top_vs_qcd"], bootstrap=5, plots=False,
                                  pt_range=None)
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())["tau32_cut"]["top_vs_qcd"]
    assert m["baseline"]["max_mistag"] < 0.01
    for key in ("0.05", "0.01"):
        assert m["eff_at_mistag"][key] is None and m["eff_at_mistag_err"][key] is None
        assert "no efficiency at" in m["notes"][key]
        assert m["sculpting"][key]["js"] is None and "no cut" in m["sculpting"][key]["note"]
    assert metrics["lowmass"]["top_vs_qcd"]["eff_at_mistag"]["0.05"] > 0  # the trained tagger is defined
    # and on the ordinary sample, a mistag above the acceptance
    base = bo.baseline(files["flat"], "tau32_cut")
    m = bo.compute_boosted_metrics([base], tasks=["top_vs_qcd"], mistags=(0.5, 0.05), n_boot=0)["tau32_cut"]
    m = m["top_vs_qcd"]
    assert m["eff_at_mistag"]["0.5"] is None and "0.5" in m["notes"] and m["eff_at_mistag"]["0.05"] > 0
    assert "0.05" not in m["notes"]
    assert "| tau32_cut | top_vs_qcd |" in bo.summary_table({"tau32_cut": {"top_vs_qcd": m}})


def test_z_task_from_z_labels_and_a_z_class(tmp_path):
    jets, truth = make_jets()
    z = np.flatnonzero(jets["label_W_qq"])[:300]  # relabel some W jets as Z -> qq
    jets["label_W_qq"][z], jets["label_Z_qq"][z] = 0, 1
    preds = make_predictions(jets, truth, mass_weight=0.0)
    preds["prob_isZ"] = preds.pop("prob_isW")
    path = write(tmp_path / "ztag.root", {**preds, **jets})
    tagger = bo.read_fat_jets(path)
    assert set(tagger.scores) == {"top_vs_qcd", "z_vs_qcd"}
    m = bo.compute_boosted_metrics([tagger], n_boot=0)["ztag"]
    assert set(m) == {"top_vs_qcd", "z_vs_qcd"} and m["z_vs_qcd"]["n_signal"] == 300
    assert m["z_vs_qcd"]["auc"] > 0.8 and m["z_vs_qcd"]["auc_err"] is None


# --- errors ---------------------------------------------------------------------------------------------


def test_missing_spectator_names_the_file_and_branch(tmp_path):
    jets, truth = make_jets()
    preds = make_predictions(jets, truth, mass_weight=0.0)
    del jets["fj_sdmass"]
    path = write(tmp_path / "nosd.root", {**preds, **jets})
    with pytest.raises(InputFileError, match=r"nosd\.root.*'fj_sdmass'"):
        bo.read_fat_jets(path)


def test_missing_qcd_probability_names_the_file_and_branches(tmp_path, files):
    jets, truth = make_jets()
    preds = make_predictions(jets, truth, mass_weight=0.0)
    del preds["prob_isQCD"]
    path = write(tmp_path / "noqcd.root", {**preds, **jets})
    with pytest.raises(InputFileError, match=r"noqcd\.root.*'prob_isQCD'.*prob_isTop, prob_isW"):
        bo.read_fat_jets(path)
    with pytest.raises(InputFileError, match=r"topqcd\.root.*w_vs_qcd.*missing 'prob_isW'"):
        bo.evaluate_boosted([files["topqcd"]], tmp_path / "eval", tasks=["w_vs_qcd"], plots=False)
    assert not (tmp_path / "eval" / "metrics.json").exists()


# --- plots and command line -----------------------------------------------------------------------------


def test_plots_are_written(evaluation):
    _, out = evaluation
    names = {p.name for p in (out / "plots").iterdir()}
    expected = {"roc_top_vs_qcd.png", "roc_w_vs_qcd.png", "sdmass_by_class.png", "sculpting_top_vs_qcd_tau32_cut.png",
                "sculpting_w_vs_qcd_tau21_cut.png", "sculpting_top_vs_qcd_topqcd.png"}
    expected |= {f"sculpting_{t}_{n}.png" for t in ("top_vs_qcd", "w_vs_qcd") for n in ("flat", "massy")}
    assert names == expected
    assert all((out / "plots" / n).stat().st_size > 10_000 for n in names)


def test_sculpting_plot_and_roc_plot_hold_the_numbers(files):
    tagger = bo.read_fat_jets(files["massy"])
    sculpt = bo.sculpting(tagger, "top_vs_qcd", n_boot=0)
    plot = bo.sculpting_plot(tagger, "top_vs_qcd", sculpt)
    assert len(plot.histograms) == 3
    edges, density = plot.histograms["QCD, inclusive"]
    np.testing.assert_allclose(edges, bo.SDMASS_EDGES)
    assert (density * np.diff(edges)).sum() == pytest.approx(1.0)
    counts = np.array(sculpt["0.05"]["histogram"])
    label = next(k for k in plot.histograms if k.startswith("QCD, 5%"))
    np.testing.assert_allclose(plot.histograms[label][1] * np.diff(edges), counts / counts.sum())
    base = bo.baseline(files["massy"], "tau32_cut")
    curve = bo.roc(base, "top_vs_qcd")
    assert curve.bkg_eff[-1] < 0.5 and curve.sig_eff[-1] < 1  # ends at the window, not at (1, 1)
    roc_plot = bo.BoostedRocPlot("top_vs_qcd").add(bo.roc(tagger, "top_vs_qcd")).add(curve, dashed=True)
    assert roc_plot.png()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_evaluate_boosted_names_taggers_and_prints_the_table(files, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli.main(["evaluate-boosted", "--out", str(out), "--no-plots", "--bootstrap", "0", "--all-pt",
                     f"alpha={files['flat']}", str(files["topqcd"])])
    assert code == 0
    captured = capsys.readouterr()
    assert "| tagger | task | AUC | eff@5% | eff@1% | JS@5% | JS@1% |" in captured.out
    assert "| alpha | top_vs_qcd |" in captured.out
    assert "note: topqcd: skipped w_vs_qcd" in captured.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["alpha", "topqcd", "tau32_cut", "tau21_cut"]
    assert metrics["alpha"]["top_vs_qcd"]["auc_err"] is None
    assert cli.main(["evaluate-boosted", "--out", str(tmp_path / "x"), str(tmp_path / "missing.root")]) == 1
    assert "missing.root" in capsys.readouterr().err


def test_taggers_are_compared_in_the_pt_window(files, tmp_path):
    """By default only jets with 500 <= fj_pt < 1000 GeV enter (the synthetic jets span 400-800 GeV)."""
    jets = read(files["flat"])
    in_window = (jets["fj_pt"] >= 500) & (jets["fj_pt"] < 1000)
    top = (jets["label_Top_bcq"] + jets["label_Top_bqq"]) > 0
    metrics = bo.evaluate_boosted([files["flat"]], tmp_path / "eval", bootstrap=0, plots=False)
    entry = metrics["flat"]["top_vs_qcd"]
    assert bo.PT_RANGE == (500.0, 1000.0) and entry["pt_range"] == [500.0, 1000.0]
    assert entry["n_signal"] == int(np.sum(top & in_window)) < int(np.sum(top))
    assert metrics["tau32_cut"]["top_vs_qcd"]["n_signal"] == entry["n_signal"]
    narrow = cli.main(["evaluate-boosted", "--out", str(tmp_path / "narrow"), "--no-plots", "--bootstrap", "0",
                       "--pt-range", "600", "700", str(files["flat"])])
    assert narrow == 0
    entry = json.loads((tmp_path / "narrow" / "metrics.json").read_text())["flat"]["top_vs_qcd"]
    assert entry["n_signal"] == int(np.sum(top & (jets["fj_pt"] >= 600) & (jets["fj_pt"] < 700)))
    with pytest.raises(InputFileError, match="no jet with 2000 <= fj_pt < 3000"):
        bo.load_fat_jet_taggers([files["flat"]], pt_range=(2000, 3000))
