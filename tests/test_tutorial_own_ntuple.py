"""tutorials/10_your_own_ntuple.ipynb: a file in a layout of its own, inspected, configured, converted, trained,
evaluated and exported with no code, recording numbers that make sense."""

import pytest


@pytest.mark.slow
def test_own_ntuple_tutorial_goes_from_an_unknown_file_to_an_exported_model(run_notebook):
    nb = run_notebook("tutorials/10_your_own_ntuple.ipynb", jets=3000, epochs=3)
    record = nb.summary
    assert record["schema"] == "custom"
    assert record["object_lists"] == {"part": {"counter": "npart", "branches": 4, "max_length": 30}}
    assert 1500 < record["jets_converted"] <= 3000  # the jet_pt > 30 selection keeps ~90 %
    # the flavours differ by their particles' displacement: learnable in a few epochs
    assert record["auc_b_vs_udsg"] > 0.85 and 0.05 < record["beff_at_1pct"] <= 1
    assert record["equivalence_max_abs_diff"] < 1e-4
    assert record["discriminants"] == ["b", "CvsL", "CvsB"]
    text = "".join(str(o.get("text", "")) for o in nb.outputs())
    assert "has no branch 'jet_etaa' (did you mean 'jet_eta'?)" in text
    assert (nb.out_dir / "evaluation" / "metrics.json").is_file() and (nb.out_dir / "model" / "model.onnx").is_file()
