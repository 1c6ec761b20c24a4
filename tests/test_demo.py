"""The demo pipeline (make demo) end to end at its tiny scale: every documented output (README, docs/formats.md) is written, and a rerun
resumes instead of redoing the work."""

import json

import pytest
import uproot

from deepjet_nb import demo


@pytest.mark.slow
def test_tiny_demo_writes_predictions_metrics_plots_and_notebooks(tmp_path, capsys):
    metrics = demo.run(tmp_path, scale="tiny", seed=3)
    for tagger in demo.TAGGERS:
        tree = uproot.open(tmp_path / "predictions" / f"{tagger}.root")["tree"]
        assert tree.num_entries > 100
        assert any(k.startswith("prob_is") for k in tree.keys())
        assert (tmp_path / "notebooks" / f"train_{tagger}.ipynb").exists()
        assert (tmp_path / "notebooks" / f"convert_{tagger}.ipynb").exists()
    assert (tmp_path / "notebooks" / "evaluate.ipynb").exists()
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert set(metrics) == {"deepcsv", "deepjet", "track_counting"}
    for tasks in metrics.values():
        for task in ("b_vs_udsg", "b_vs_c", "c_vs_udsg"):
            assert 0.0 <= tasks[task]["auc"] <= 1.0
            assert set(tasks[task]["eff_at_mistag"]) == {"0.1", "0.01", "0.001"}
    assert (tmp_path / "plots" / "roc_b.png").stat().st_size > 10_000
    assert "eff@1%" in capsys.readouterr().out
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
