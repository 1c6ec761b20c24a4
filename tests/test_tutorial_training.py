"""Tutorials 03 → 04 → 05 with their default parameters, in order, as a user runs them: the lesson they teach.

DeepJet learns (its validation AUC in 04 at least DeepCSV's in 03, on the same validation jets, each headline
efficiency on at least 500 validation light jets), both networks are above track counting on 05's fresh test
sample (DeepJet beyond twice the paired error), DeepJet above DeepCSV beyond twice their paired error, and
every verdict 05 prints follows from the numbers it recorded.
"""

import re

import pytest

pytestmark = pytest.mark.slow

VERDICT = re.compile(r"^(\w+) − (\w+): ([+-][\d.]+) ± ([\d.]+) percentage points \(paired error\): (.*)\.$")


def _printed(nb) -> list[str]:
    return [line for o in nb.outputs() if o.get("name") == "stdout" for line in "".join(o["text"]).splitlines()]


def test_with_their_defaults_deepjet_learns_and_both_networks_beat_track_counting(run_notebook):
    deepcsv = run_notebook("tutorials/03_train_deepcsv.ipynb", out_dir="runs/tutorials/03_train_deepcsv").summary
    deepjet = run_notebook("tutorials/04_train_deepjet.ipynb", out_dir="runs/tutorials/04_train_deepjet").summary
    assert deepcsv["val_light_jets"] >= 500 and deepjet["val_light_jets"] >= 500
    assert deepjet["same_validation_jets"] and deepjet["deepcsv_val_auc"] == pytest.approx(deepcsv["val_auc"])
    assert deepjet["val_auc"] >= deepcsv["val_auc"]
    assert deepjet["val_beff_at_mistag_0.01"] > 0.3  # a network that learned, not a constant output

    evaluation = run_notebook("tutorials/05_evaluate.ipynb", out_dir="runs/tutorials/05_evaluate")
    numbers = evaluation.summary
    differences = numbers["differences_at_1pct"]
    for network in ("deepjet", "deepcsv"):  # both above track counting, DeepJet far beyond its error
        assert differences[f"{network} - track_counting"]["value"] > 0
        assert numbers["beff_at_1pct_err"][network] > 0
    assert differences["deepjet - track_counting"]["value"] > 2 * differences["deepjet - track_counting"]["error"]
    assert differences["deepjet - deepcsv"]["value"] > 2 * differences["deepjet - deepcsv"]["error"]

    verdicts = [VERDICT.match(line) for line in _printed(evaluation)]
    verdicts = {(m[1], m[2]): m[5] for m in verdicts if m}
    assert set(verdicts) == {tuple(pair.split(" - ")) for pair in differences}
    for (a, b), verdict in verdicts.items():
        diff = differences[f"{a} - {b}"]
        if abs(diff["value"]) > 2 * diff["error"]:
            better, worse = (a, b) if diff["value"] > 0 else (b, a)
            assert verdict == f"{better} is better than {worse}"
        else:
            assert verdict == f"{a} and {b} do not differ significantly here"
