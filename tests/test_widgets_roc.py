"""The ROC explorer driven headless: set the controls, check the numbers it shows."""

import numpy as np
import pytest

from deepjet_nb import evaluate as ev
from deepjet_nb.errors import ArgumentError
from deepjet_nb.widgets import RocExplorer


@pytest.fixture(scope="module")
def taggers(prediction_files):
    return ev.load_taggers([prediction_files["deepjet"], prediction_files["deepcsv"]])


def direct_working_point(tagger, disc, signal, background, mistag, pt):
    """Plain-numpy reference: loosest cut among the scores with background fraction <= mistag."""
    sel = (tagger.jet_pt >= pt[0]) & (tagger.jet_pt < pt[1])
    score = tagger.discriminants[disc]
    sig = score[sel & (tagger.flavour == ev.FLAVOUR_CODES[signal])]
    bkg = score[sel & (tagger.flavour == ev.FLAVOUR_CODES[background])]
    candidates = np.unique(np.concatenate([sig, bkg]))[::-1]
    fractions = np.array([np.mean(bkg >= c) for c in candidates])
    cut = candidates[fractions <= mistag][-1]
    return cut, np.mean(sig >= cut), np.mean(bkg >= cut)


def test_explorer_shows_the_working_point_of_the_controls(taggers):
    explorer = RocExplorer(taggers, plot=False)
    assert explorer.task == "b_vs_udsg"
    assert set(explorer.numbers) == {"deepjet", "deepcsv", "track_counting"}

    explorer.taggers.value = ("deepjet", "track_counting")
    explorer.pt_range.value = (30.0, 120.0)
    explorer.mistag.value = 0.1
    assert set(explorer.numbers) == {"deepjet", "track_counting"}
    shown = explorer.numbers["deepjet"]
    cut, eff, mistag = direct_working_point(taggers[0], "b", "b", "udsg", 0.1, (30.0, 120.0))
    assert shown["cut"] == pytest.approx(cut)
    assert shown["efficiency"] == pytest.approx(eff)
    assert shown["mistag"] == pytest.approx(mistag)
    assert shown["mistag"] <= 0.1
    # The table displays the same numbers.
    assert f"{eff:.4f}" in explorer.table.value and f"{mistag:.2e}" in explorer.table.value
    assert "[30, 120)" in explorer.table.value


def test_background_and_signal_switches_change_the_discriminant(taggers):
    explorer = RocExplorer(taggers[:1], plot=False)
    explorer.background.value = "c"
    assert explorer.task == "b_vs_c"
    cut, eff, _ = direct_working_point(taggers[0], "b", "b", "c", 0.01, explorer.pt_range.value)
    assert explorer.numbers["deepjet"]["efficiency"] == pytest.approx(eff)

    explorer.signal.value = "c"
    assert explorer.background.options == ("udsg", "b")
    assert explorer.task == "c_vs_udsg"
    cut, eff, _ = direct_working_point(taggers[0], "CvsL", "c", "udsg", 0.01, explorer.pt_range.value)
    assert explorer.numbers["deepjet"]["cut"] == pytest.approx(cut)
    assert explorer.numbers["deepjet"]["auc"] == pytest.approx(ev.roc(taggers[0], "c_vs_udsg").auc)


def test_tighter_working_point_lowers_efficiency_and_an_empty_window_is_reported(taggers):
    explorer = RocExplorer(taggers, plot=False)
    loose = explorer.numbers["deepcsv"]["efficiency"]
    explorer.mistag.value = 1e-3
    assert explorer.numbers["deepcsv"]["efficiency"] < loose
    explorer.pt_range.value = (explorer.pt_range.max - 1, explorer.pt_range.max)
    assert explorer.numbers["deepcsv"] is None
    assert "no b or udsg jets" in explorer.table.value


def test_explorer_draws_its_plot_with_the_working_point(taggers):
    explorer = RocExplorer(taggers[:2], plot=True)
    first = explorer.plot.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    explorer.mistag.value = 0.1  # the working-point marker moves: a new image
    assert explorer.plot.value[:8] == b"\x89PNG\r\n\x1a\n" and explorer.plot.value != first
    explorer.taggers.value = ()
    assert explorer.plot.value == b"" and explorer.numbers == {}


def test_explorer_refuses_duplicate_names(taggers):
    with pytest.raises(ArgumentError, match="unique"):
        RocExplorer([taggers[0], taggers[0]])


def test_each_tagger_keeps_its_colour_when_others_are_deselected(taggers, monkeypatch):
    from deepjet_nb import plots

    drawn = []
    real_draw = plots.RocPlot.draw

    def spy(plot):
        figure = real_draw(plot)
        drawn.append({line.get_label(): line.get_color() for line in figure.axes[0].get_legend().get_lines()})
        return figure

    monkeypatch.setattr(plots.RocPlot, "draw", spy)
    explorer = RocExplorer(taggers)
    all_three = drawn[-1]
    assert len(set(all_three[t] for t in ("deepjet", "deepcsv", "track_counting"))) == 3
    explorer.taggers.value = ("deepcsv", "track_counting")
    assert drawn[-1]["track_counting"] == all_three["track_counting"] == explorer.colours["track_counting"]
    assert drawn[-1]["deepcsv"] == all_three["deepcsv"]


def test_a_window_with_few_background_jets_is_flagged(taggers):
    from deepjet_nb.widgets import MIN_BACKGROUND

    explorer = RocExplorer(taggers, plot=False)
    assert explorer.warning == "" and explorer.notice.value == ""
    pt = np.sort(taggers[0].jet_pt[taggers[0].flavour == ev.FLAVOUR_CODES["udsg"]])
    explorer.pt_range.value = (float(np.floor(pt[-40])), explorer.pt_range.max)  # the hardest ~40 light jets
    n = explorer.numbers["deepjet"]["n_background"]
    assert 0 < n < MIN_BACKGROUND
    assert f"only {n} udsg jets" in explorer.warning and "only" in explorer.notice.value


def test_the_shown_pt_slider_is_logarithmic_and_moves_with_the_gev_window(taggers):
    explorer = RocExplorer(taggers, plot=False)
    explorer.pt_log_range.value = (np.log10(30), 2.0)  # 30 to 100 GeV
    assert explorer.pt_range.value == (30.0, 100.0) and explorer.pt_readout.value == "30 – 100 GeV"
    direct = direct_working_point(taggers[0], "b", "b", "udsg", 0.01, (30.0, 100.0))
    assert explorer.numbers[taggers[0].name]["cut"] == pytest.approx(direct[0])
    explorer.pt_range.value = (50.0, 200.0)
    assert explorer.pt_log_range.value == pytest.approx((np.log10(50), np.log10(200)))
