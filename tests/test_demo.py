"""The demo pipeline (make demo) end to end at its tiny scale: every documented output (README, docs/formats.md) is written
(the boosted-tree reference, the paired differences and the seed spread included), and a rerun resumes instead of redoing
the work."""

import json

import pytest
import uproot

from deepjet_nb import demo


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory):
    """The tiny demo run once with seed 3: (its output directory, its metrics, what it printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo_first")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        metrics = demo.run(out, scale="tiny", seed=3)
    return out, metrics, printed.getvalue()


@pytest.mark.slow
def test_tiny_demo_writes_predictions_metrics_plots_and_notebooks(first_demo, capsys):
    tmp_path, metrics, printed = first_demo
    n_jets = uproot.open(tmp_path / "predictions" / "deepcsv.root")["tree"].num_entries
    for tagger in demo.ALL_TAGGERS:
        tree = uproot.open(tmp_path / "predictions" / f"{tagger}.root")["tree"]
        assert tree.num_entries == n_jets > 100  # every tagger on the same test jets
        assert any(k.startswith("prob_is") for k in tree.keys())
    for tagger in demo.TAGGERS:
        assert (tmp_path / "notebooks" / f"train_{tagger}.ipynb").exists()
        assert (tmp_path / "notebooks" / f"convert_{tagger}.ipynb").exists()
    assert (tmp_path / "notebooks" / "evaluate.ipynb").exists()
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    # every selected jet kept with its pT-eta weight, and each tagger uses the weights as its recipe says
    for config in demo.TAGGERS:
        assert json.loads((tmp_path / "data" / config / "manifest.json").read_text())["weighting"]["apply"] == "weight"
    for tagger in demo.ALL_TAGGERS:
        split = json.loads((tmp_path / "train" / tagger / "split.json").read_text())
        assert split["weights"] == demo.DEMO_RECIPES[tagger]["weights"]
    assert set(metrics) == {"deepcsv", "deepjet", "bdt_deepcsv", "track_counting"}
    for tasks in metrics.values():
        for task in ("b_vs_udsg", "b_vs_c", "c_vs_udsg"):
            assert 0.0 <= tasks[task]["auc"] <= 1.0
            assert set(tasks[task]["eff_at_mistag"]) == {"0.1", "0.01", "0.001"}
    # the paired differences, DeepJet − DeepCSV first
    for a, b in demo.DIFFERENCES:
        diff = metrics[a]["b_vs_udsg"]["minus"][b]
        assert diff["eff_at_mistag"]["0.01"] == pytest.approx(metrics[a]["b_vs_udsg"]["eff_at_mistag"]["0.01"]
                                                              - metrics[b]["b_vs_udsg"]["eff_at_mistag"]["0.01"])
        assert diff["auc_err"] > 0 and set(diff["eff_at_mistag_err"]) == {"0.1", "0.01", "0.001"}
    # the seed spread of the taggers the tiny scale trains twice
    for tagger, n_seeds in demo.SCALES["tiny"].seeds.items():
        entry = metrics[tagger]["b_vs_udsg"]
        if n_seeds > 1:
            assert entry["n_seeds"] == n_seeds and entry["auc_seed_std"] >= 0
            assert set(entry["eff_at_mistag_seed_std"]) == {"0.1", "0.01", "0.001"}
            assert (tmp_path / "predictions" / f"{tagger}_seed4.root").is_file()
        else:
            assert "n_seeds" not in entry
    assert (tmp_path / "plots" / "roc_b.png").stat().st_size > 10_000
    assert "eff@1%" in printed and "deepjet − deepcsv" in printed and "seed spread" in printed
    for tagger in demo.TAGGERS:  # both exported, checked against training on the test sample
        report = json.loads((tmp_path / "deploy" / tagger / "equivalence.json").read_text())
        assert report["passed"] and report["max_abs_diff"] < 1e-4
        assert report["jets"] == uproot.open(tmp_path / "predictions" / f"{tagger}.root")["tree"].num_entries
        assert (tmp_path / "deploy" / tagger / "equivalence.png").is_file()

    # a second run finds everything done: no generation, training or prediction again
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "predictions").iterdir()}
    demo.run(tmp_path, scale="tiny", seed=3)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "predictions").iterdir()} == stamps
    assert "generate" not in capsys.readouterr().out


@pytest.mark.slow
def test_two_demo_runs_with_one_seed_give_identical_metrics_and_predictions(first_demo, tmp_path):
    """Samples, trainings (every seed), the boosted trees, predictions and the bootstrap: all fixed by the seed."""
    import numpy as np

    first, metrics, _ = first_demo
    assert demo.run(tmp_path, scale="tiny", seed=3) == metrics
    assert (tmp_path / "metrics.json").read_bytes() == (first / "metrics.json").read_bytes()
    files = sorted(p.name for p in (first / "predictions").glob("*.root"))
    assert files == sorted(p.name for p in (tmp_path / "predictions").glob("*.root")) and len(files) >= 5
    for name in files:
        a = uproot.open(first / "predictions" / name)["tree"].arrays(library="np")
        b = uproot.open(tmp_path / "predictions" / name)["tree"].arrays(library="np")
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
