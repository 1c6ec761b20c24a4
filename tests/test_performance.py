"""The evaluation core (deepjet_nb.performance) on hand-made taggers: generic tasks, one same_jets for flavour and
fat-jet taggers, weights, curves of taggers that reject jets at every cut, metrics and notes of skipped tasks."""

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from deepjet_nb import boosted as bo
from deepjet_nb import evaluate as ev
from deepjet_nb import performance as perf
from deepjet_nb.errors import ArgumentError

TASK = perf.Task("sig_vs_bkg", "sig", "bkg", score="s")
N = 4000


def generic(name="t", seed=0, weights=None, **changes):
    rng = np.random.default_rng(seed)
    is_sig = np.arange(N) % 3 == 0
    fields = dict(name=name, scores={"s": rng.normal(is_sig * 1.0, 1.0)},
                  truth={"sig": is_sig, "bkg": ~is_sig}, weights=weights,
                  spectators={"pt": np.linspace(20.0, 200.0, N)}, tasks={TASK.name: TASK}, source=f"{name}.root")
    return perf.Tagger(**{**fields, **changes})


def flavour_tagger(name, flavour, seed=0, weights=None):
    rng = np.random.default_rng(seed)
    n = len(flavour)
    return ev.Tagger(name, {"b": rng.random(n), "CvsL": rng.random(n), "CvsB": rng.random(n)}, flavour,
                     np.full(n, 30.0), np.zeros(n), weights=weights, source=f"{name}.root")


def fat_jet_tagger(name, top, seed=0, sdmass=None):
    rng = np.random.default_rng(seed)
    n = len(top)
    truth = {cls: np.zeros(n, bool) for cls in bo.TRUTH_CLASSES}
    truth.update(Top=top, QCD=~top)
    spectators = {"fj_pt": np.full(n, 600.0), "fj_eta": np.zeros(n),
                  "fj_sdmass": np.full(n, 170.0) if sdmass is None else sdmass}
    return bo.FatJetTagger(name=name, scores={"top_vs_qcd": rng.random(n)}, truth=truth, spectators=spectators,
                           tasks=bo.TASKS, source=f"{name}.root")


# --- generic taggers and tasks ----------------------------------------------------------------------------


def test_a_generic_task_gives_the_auc_of_its_score_on_its_classes():
    tagger = generic()
    curve = perf.roc(tagger, TASK.name)
    assert curve.signal == "sig" and curve.background == "bkg" and curve.task == "sig_vs_bkg"
    assert curve.auc == pytest.approx(roc_auc_score(tagger.truth["sig"], tagger.scores["s"]), abs=1e-12)
    assert curve.n_signal + curve.n_background == N


def test_a_spectator_window_selects_the_jets_of_the_curve():
    tagger = generic()
    curve = perf.roc(tagger, TASK, windows={"pt": (50.0, 100.0)})
    use = (tagger.spectators["pt"] >= 50) & (tagger.spectators["pt"] < 100)
    assert curve.auc == pytest.approx(roc_auc_score(tagger.truth["sig"][use], tagger.scores["s"][use]), abs=1e-12)
    with pytest.raises(ArgumentError, match="no spectator 'eta'"):
        perf.roc(tagger, TASK, windows={"eta": (0.0, 1.0)})
    with pytest.raises(ArgumentError, match="need both"):
        perf.roc(tagger, TASK, windows={"pt": (500.0, 600.0)})


def test_jets_rejected_at_every_cut_end_the_curve_and_leave_later_efficiencies_undefined():
    tagger = generic()
    scores = tagger.scores["s"].copy()
    scores[tagger.truth["bkg"] & (np.arange(N) % 2 == 0)] = -np.inf  # half the background never passes
    rejecting = dataclasses.replace(tagger, scores={"s": scores})
    curve = perf.roc(rejecting, TASK)
    assert curve.max_mistag == pytest.approx(0.5, abs=0.01)
    assert np.isnan(curve.eff_at(0.8)) and np.isfinite(curve.eff_at(0.1))
    entry = perf.task_metrics(rejecting, TASK, (0.8, 0.1), n_boot=5)
    assert entry["eff_at_mistag"]["0.8"] is None and entry["eff_at_mistag_err"]["0.8"] is None
    assert entry["eff_at_mistag_err"]["0.1"] > 0


def test_metrics_skip_what_a_tagger_cannot_score_and_say_why():
    other = perf.Task("other", "sig", "bkg", score="missing")
    tagger = generic(tasks={TASK.name: TASK, "other": other})
    metrics = perf.compute_metrics([tagger], n_boot=0)
    assert list(metrics["t"]) == ["sig_vs_bkg"] and metrics["t"]["sig_vs_bkg"]["auc_err"] is None
    assert perf.skipped_tasks([tagger]) == ["t: skipped other (no score 'missing')"]
    assert perf.evaluable_tasks(tagger) == [TASK]


# --- one same_jets for every kind of tagger ---------------------------------------------------------------


def test_same_jets_names_both_taggers_and_the_first_jet_that_differs():
    a, b = generic("a"), generic("b", seed=1)
    perf.same_jets(a, b)  # other scores, same jets
    moved = dataclasses.replace(b, spectators={"pt": b.spectators["pt"][::-1]})
    with pytest.raises(ArgumentError, match=r"a \(a\.root\) and b \(b\.root\): jet 0 differs in pt .*same order"):
        perf.same_jets(a, moved)
    fewer = dataclasses.replace(b, truth={k: v[:-1] for k, v in b.truth.items()})
    with pytest.raises(ArgumentError, match=f"hold {N} and {N - 1} jets"):
        perf.same_jets(a, fewer)


def test_same_jets_compares_weights_only_when_both_taggers_carry_them():
    ones, twos = np.ones(N), np.full(N, 2.0)
    perf.same_jets(generic("a", weights=ones), generic("b"))  # one unweighted: nothing to compare
    perf.same_jets(generic("a", weights=ones), generic("b", weights=ones.copy()))
    with pytest.raises(ArgumentError, match="differs in weight"):
        perf.same_jets(generic("a", weights=ones), generic("b", weights=twos))


def test_flavour_and_fat_jet_taggers_share_the_same_jets_check():
    flavour = np.array([5, 4, 0, -1] * 50, dtype=np.int8)
    ev.same_jets(flavour_tagger("deepjet", flavour), flavour_tagger("deepcsv", flavour, seed=1))
    swapped = flavour.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    with pytest.raises(ArgumentError, match="deepjet .* and deepcsv .*: jet 0 differs in truth class b"):
        ev.difference(flavour_tagger("deepjet", flavour), flavour_tagger("deepcsv", swapped))
    top = np.arange(200) % 2 == 0
    perf.same_jets(fat_jet_tagger("pn", top), fat_jet_tagger("deepak8", top, seed=1))
    heavier = fat_jet_tagger("deepak8", top, sdmass=np.full(200, 171.0))
    with pytest.raises(ArgumentError, match="jet 0 differs in fj_sdmass"):
        perf.difference(fat_jet_tagger("pn", top), heavier, "top_vs_qcd", n_boot=0)


def test_boosted_metrics_compare_only_taggers_of_the_first_taggers_jets():
    top = np.arange(400) % 2 == 0
    first, same, other = (fat_jet_tagger("pn", top), fat_jet_tagger("deepak8", top, seed=1),
                          fat_jet_tagger("elsewhere", top, seed=2, sdmass=np.full(400, 90.0)))
    metrics = bo.compute_boosted_metrics([first, same, other], tasks=["top_vs_qcd"], n_boot=0)
    minus = metrics["deepak8"]["top_vs_qcd"]["minus"]["pn"]
    assert minus["auc"] == pytest.approx(metrics["deepak8"]["top_vs_qcd"]["auc"] - metrics["pn"]["top_vs_qcd"]["auc"])
    assert minus["n_signal"] == 200 and minus["n_background"] == 200
    assert "minus" not in metrics["elsewhere"]["top_vs_qcd"]
