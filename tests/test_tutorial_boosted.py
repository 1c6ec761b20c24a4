"""tutorials/08_boosted.ipynb runs top to bottom on small fat-jet samples and records physics numbers that make sense."""

import pytest


@pytest.mark.slow
def test_boosted_tutorial_finds_the_mass_peaks_and_compares_taggers(run_notebook):
    nb = run_notebook("tutorials/08_boosted.ipynb", events=240, epochs=1, batch_size=128)
    record = nb.summary
    peaks = record["mass_peaks"]
    # soft-drop mass medians of merged tops and Ws near m_t = 172.5 and m_W = 80.4 GeV (PDG); with ~150 jets per
    # class the median's statistical error is ~3 GeV, the windows allow the detector's scale and the tails
    assert 145 < peaks["Top"] < 195 and 68 < peaks["W"] < 92
    assert peaks["QCD"] < 60  # QCD: a falling spectrum, soft drop grooms most jets to low mass
    assert min(record["jets"].values()) > 100
    effs, errs = record["eff_at_mistag"], record["eff_at_mistag_err"]
    assert {"pcnn", "bdt_substructure", "tau32_cut"} <= set(effs["top_vs_qcd"])
    assert {"pcnn", "bdt_substructure", "tau21_cut"} <= set(effs["w_vs_qcd"])
    # the τ32 cut in the 105-210 GeV window keeps a real share of tops at 5 % QCD mistag; the tree on the
    # substructure variables does at least as well as its single best cut (same jets, same mistag)
    tau = effs["top_vs_qcd"]["tau32_cut"]["0.05"]
    assert 0.2 < tau < 0.95 and errs["top_vs_qcd"]["tau32_cut"]["0.05"] > 0
    assert effs["top_vs_qcd"]["bdt_substructure"]["0.05"] > tau - 3 * errs["top_vs_qcd"]["tau32_cut"]["0.05"]
    for task in record["sculpting"].values():
        for entry in task.values():
            js = entry["0.05"]["js"]
            assert js is None or 0.0 <= js <= 1.0
    # a window cut sculpts the QCD mass towards its window
    assert record["sculpting"]["top_vs_qcd"]["tau32_cut"]["0.05"]["js"] > 0.2
    for plot in ("fj_sdmass", "fj_tau32", "fj_tau21"):
        assert (nb.out_dir / f"{plot}.png").stat().st_size > 10_000
    plots = nb.out_dir / "evaluation" / "plots"
    for name in ("roc_top_vs_qcd", "roc_w_vs_qcd", "sculpting_top_vs_qcd_pcnn", "sdmass_by_class"):
        assert (plots / f"{name}.png").stat().st_size > 10_000
