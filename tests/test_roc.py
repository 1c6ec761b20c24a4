"""The numba ROC kernels against scikit-learn and a plain-numpy reference."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from deepjet_nb.errors import ArgumentError
from deepjet_nb.kernels.roc import (auc, bootstrap_errors, eff_at_mistag, paired_bootstrap_errors, roc_auc, roc_curve,
                                    threshold_at_mistag)


def numpy_roc(scores, is_signal, weights=None):
    """Plain-numpy reference: efficiencies of score >= t for every distinct t (decreasing), (0, 0) first."""
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=float)
    thresholds = np.unique(scores)[::-1]
    sig = np.array([weights[is_signal & (scores >= t)].sum() for t in thresholds])
    bkg = np.array([weights[~is_signal & (scores >= t)].sum() for t in thresholds])
    sig_eff = np.concatenate([[0.0], sig / weights[is_signal].sum()])
    bkg_eff = np.concatenate([[0.0], bkg / weights[~is_signal].sum()])
    return sig_eff, bkg_eff, np.concatenate([[np.inf], thresholds])


def sample(seed, n=3000, decimals=None, weighted=True):
    rng = np.random.default_rng(seed)
    is_signal = rng.random(n) < 0.35
    scores = rng.normal(np.where(is_signal, 1.0, 0.0), 1.0)
    if decimals is not None:  # rounding creates many ties, across signal and background
        scores = np.round(scores, decimals)
    weights = rng.uniform(0.2, 3.0, n) if weighted else None
    return scores, is_signal, weights


@pytest.mark.parametrize("seed,decimals,weighted", [(0, None, False), (1, None, True), (2, 1, True), (3, 0, False)])
def test_roc_curve_matches_sklearn_with_weights_and_ties(seed, decimals, weighted):
    scores, is_signal, weights = sample(seed, decimals=decimals, weighted=weighted)
    sig_eff, bkg_eff, thresholds = roc_curve(scores, is_signal, weights)
    fpr, tpr, thr = sk_roc_curve(is_signal, scores, sample_weight=weights, drop_intermediate=False)
    np.testing.assert_allclose(sig_eff, tpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bkg_eff, fpr, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(thresholds, thr)
    assert auc(sig_eff, bkg_eff) == pytest.approx(roc_auc_score(is_signal, scores, sample_weight=weights), abs=1e-12)


def test_roc_curve_matches_numpy_reference():
    scores, is_signal, weights = sample(5, n=400, decimals=1)
    for got, want in zip(roc_curve(scores, is_signal, weights), numpy_roc(scores, is_signal, weights)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_roc_curve_does_not_depend_on_jet_order():
    scores, is_signal, weights = sample(6, decimals=1)
    perm = np.random.default_rng(0).permutation(len(scores))
    for a, b in zip(roc_curve(scores, is_signal, weights), roc_curve(scores[perm], is_signal[perm], weights[perm])):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_all_scores_tied_gives_the_diagonal_endpoints():
    sig_eff, bkg_eff, thresholds = roc_curve(np.full(10, 0.5), np.arange(10) % 2 == 0)
    np.testing.assert_array_equal(sig_eff, [0, 1])
    np.testing.assert_array_equal(bkg_eff, [0, 1])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.5])
    assert auc(sig_eff, bkg_eff) == 0.5


@pytest.mark.parametrize("sign,expected", [(1, 1.0), (-1, 0.0)])
def test_perfect_and_inverted_separation(sign, expected):
    is_signal = np.array([1, 1, 1, 0, 0], dtype=np.int8)  # 0/1 integers are accepted as well as bools
    scores = sign * np.array([3.0, 2.0, 1.5, 1.0, 0.0])
    assert roc_auc(scores, is_signal) == expected


def test_single_signal_and_background_jet():
    sig_eff, bkg_eff, _ = roc_curve([0.2, 0.7], [False, True])
    np.testing.assert_array_equal(sig_eff, [0, 1, 1])
    np.testing.assert_array_equal(bkg_eff, [0, 0, 1])


def test_zero_weight_jets_do_not_count():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    is_signal = np.array([True, False, True, False])
    weights = np.array([1.0, 0.0, 1.0, 1.0])  # drop the background jet that sits between the signal jets
    assert roc_auc(scores, is_signal, weights) == 1.0


@pytest.mark.parametrize("scores,is_signal,weights,match", [
    ([0.1, 0.2], [True, True], None, "background has no jets"),
    ([0.1, 0.2], [False, False], None, "signal has no jets"),
    ([0.1, 0.2], [True, False], [0.0, 1.0], "signal has no jets"),
    ([0.1, np.nan], [True, False], None, "scores contain NaN"),
    ([0.1, 0.2], [True, False], [1.0, np.inf], "weights contain NaN"),
    ([0.1, 0.2, 0.3], [True, False], None, "equal length"),
    ([0.1, 0.2], [True, False], [1.0], "weights have shape"),
])
def test_invalid_inputs_raise_argument_error(scores, is_signal, weights, match):
    with pytest.raises(ArgumentError, match=match):
        roc_curve(scores, is_signal, weights)


def numpy_eff_at_mistag(sig_eff, bkg_eff, mistag):
    """Reference: interpolate between the last point with bkg_eff <= mistag and the next one."""
    lo = np.nonzero(bkg_eff <= mistag)[0][-1]
    if lo == len(bkg_eff) - 1:
        return sig_eff[lo]
    hi = lo + 1
    return sig_eff[lo] + (sig_eff[hi] - sig_eff[lo]) * (mistag - bkg_eff[lo]) / (bkg_eff[hi] - bkg_eff[lo])


def test_eff_at_mistag_matches_numpy_reference():
    scores, is_signal, weights = sample(7, decimals=2)
    sig_eff, bkg_eff, _ = roc_curve(scores, is_signal, weights)
    mistags = np.array([0.0, 1e-3, 0.01, 0.0537, 0.1, 0.5, 1.0])
    got = eff_at_mistag(sig_eff, bkg_eff, mistags)
    assert got.shape == mistags.shape
    np.testing.assert_allclose(got, [numpy_eff_at_mistag(sig_eff, bkg_eff, m) for m in mistags], atol=1e-12)
    assert isinstance(eff_at_mistag(sig_eff, bkg_eff, 0.1), float)


def test_eff_at_mistag_interpolates_linearly_and_takes_the_best_point_at_a_plateau():
    sig_eff = np.array([0.0, 0.4, 0.6, 0.8, 1.0])
    bkg_eff = np.array([0.0, 0.0, 0.2, 0.2, 1.0])
    assert eff_at_mistag(sig_eff, bkg_eff, 0.0) == 0.4  # best efficiency with no background at all
    assert eff_at_mistag(sig_eff, bkg_eff, 0.1) == pytest.approx(0.5)
    assert eff_at_mistag(sig_eff, bkg_eff, 0.2) == 0.8
    assert eff_at_mistag(sig_eff, bkg_eff, 0.6) == pytest.approx(0.9)
    assert eff_at_mistag(sig_eff, bkg_eff, 1.0) == 1.0


def test_threshold_at_mistag_is_the_loosest_cut_within_the_mistag():
    scores, is_signal, _ = sample(8, decimals=2)
    sig_eff, bkg_eff, thresholds = roc_curve(scores, is_signal)
    bkg = scores[~is_signal]
    looser = np.sort(np.unique(scores))
    for m in (0.1, 0.01, 0.001):
        cut = threshold_at_mistag(bkg_eff, thresholds, m)
        assert np.mean(bkg >= cut) <= m
        next_looser = looser[looser < cut].max()
        assert np.mean(bkg >= next_looser) > m


def test_threshold_at_mistag_is_infinite_when_no_cut_is_tight_enough():
    sig_eff, bkg_eff, thresholds = roc_curve([1.0, 1.0, 0.0], [True, False, False])
    assert threshold_at_mistag(bkg_eff, thresholds, 0.1) == np.inf


@pytest.mark.parametrize("mistag", [-0.1, 1.5, np.nan])
def test_mistag_outside_unit_interval_is_refused(mistag):
    with pytest.raises(ArgumentError, match="mistag"):
        eff_at_mistag([0, 1], [0, 1], mistag)
    with pytest.raises(ArgumentError, match="mistag"):
        threshold_at_mistag([0, 1], [np.inf, 0.0], mistag)


def numpy_bootstrap(scores, is_signal, weights, mistags, n_boot, seed):
    """Plain-numpy reference of the Poisson bootstrap: the same replica weights, curves from numpy_roc."""
    rng = np.random.default_rng(seed)
    weights = np.ones(len(scores)) if weights is None else weights
    aucs, effs = [], []
    for _ in range(n_boot):
        replica = weights * rng.poisson(1.0, len(scores))
        sig_eff, bkg_eff, _ = numpy_roc(scores, is_signal, replica)
        aucs.append(np.trapezoid(sig_eff, bkg_eff))
        effs.append([np.interp(m, bkg_eff, sig_eff) if m < bkg_eff[-1] else sig_eff[-1] for m in mistags])
    return np.std(aucs, ddof=1), np.std(effs, axis=0, ddof=1)


@pytest.mark.parametrize("weighted", [False, True])
def test_bootstrap_errors_match_a_numpy_reference(weighted):
    # continuous scores: no ties, so numpy's interpolation along the curve is the kernel's rule
    scores, is_signal, weights = sample(4, n=800, weighted=weighted)
    mistags = np.array([0.1, 0.05])
    auc_err, eff_err = bootstrap_errors(scores, is_signal, weights, mistags, n_boot=40, seed=3)
    ref_auc, ref_eff = numpy_bootstrap(scores, is_signal, weights, mistags, 40, 3)
    assert auc_err == pytest.approx(ref_auc, rel=1e-9)
    np.testing.assert_allclose(eff_err, ref_eff, rtol=1e-9)


def test_bootstrap_auc_error_agrees_with_hanley_mcneil_and_shrinks_with_the_sample():
    # Hanley & McNeil (Radiology 143 (1982) 29): the standard error of an AUC from n_s signal, n_b background.
    def hanley_mcneil(a, n_s, n_b):
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        return np.sqrt((a * (1 - a) + (n_s - 1) * (q1 - a * a) + (n_b - 1) * (q2 - a * a)) / (n_s * n_b))

    errs = []
    for n in (2000, 8000):
        scores, is_signal, _ = sample(5, n=n, weighted=False)
        a = roc_auc(scores, is_signal)
        auc_err, _ = bootstrap_errors(scores, is_signal, mistags=0.1, n_boot=200, seed=1)
        expected = hanley_mcneil(a, is_signal.sum(), (~is_signal).sum())
        assert auc_err == pytest.approx(expected, rel=0.25)
        errs.append(auc_err)
    assert errs[1] / errs[0] == pytest.approx(0.5, rel=0.25)  # 4x the jets: half the error


def test_bootstrap_errors_are_seeded_and_validate_their_arguments():
    scores, is_signal, _ = sample(6, n=500, weighted=False)
    first = bootstrap_errors(scores, is_signal, mistags=[0.1, 0.01], n_boot=20, seed=9)
    again = bootstrap_errors(scores, is_signal, mistags=[0.1, 0.01], n_boot=20, seed=9)
    assert first[0] == again[0] and np.array_equal(first[1], again[1])
    assert isinstance(bootstrap_errors(scores, is_signal, mistags=0.1, n_boot=5)[1], float)
    with pytest.raises(ArgumentError, match="n_boot"):
        bootstrap_errors(scores, is_signal, n_boot=1)
    with pytest.raises(ArgumentError, match="mistag"):
        bootstrap_errors(scores, is_signal, mistags=1.5)


def test_paired_bootstrap_error_of_a_difference_matches_a_numpy_reference():
    # two correlated taggers of the same jets: the second one is the first plus noise
    scores, is_signal, weights = sample(11, n=800, weighted=True)
    other = scores + np.random.default_rng(12).normal(0.0, 0.3, len(scores))
    mistags = np.array([0.1, 0.05])
    auc_err, eff_err = paired_bootstrap_errors(scores, other, is_signal, weights, mistags, n_boot=40, seed=3)
    rng = np.random.default_rng(3)  # the reference: the same Poisson counts for both taggers in each replica
    auc_diffs, eff_diffs = [], []
    for _ in range(40):
        replica = weights * rng.poisson(1.0, len(scores))
        curves = [numpy_roc(s, is_signal, replica) for s in (scores, other)]
        auc_diffs.append(np.trapezoid(*curves[1][:2]) - np.trapezoid(*curves[0][:2]))
        effs = [[np.interp(m, bkg_eff, sig_eff) for m in mistags] for sig_eff, bkg_eff, _ in curves]
        eff_diffs.append(np.subtract(effs[1], effs[0]))
    assert auc_err == pytest.approx(np.std(auc_diffs, ddof=1), rel=1e-9)
    np.testing.assert_allclose(eff_err, np.std(eff_diffs, axis=0, ddof=1), rtol=1e-9)


def test_paired_bootstrap_cancels_what_two_taggers_of_the_same_jets_share():
    scores, is_signal, _ = sample(13, n=4000, weighted=False)
    close = scores + np.random.default_rng(14).normal(0.0, 0.05, len(scores))
    auc_a, eff_a = bootstrap_errors(scores, is_signal, mistags=0.1, n_boot=100, seed=2)
    auc_b, eff_b = bootstrap_errors(close, is_signal, mistags=0.1, n_boot=100, seed=2)
    auc_d, eff_d = paired_bootstrap_errors(scores, close, is_signal, mistags=0.1, n_boot=100, seed=2)
    assert auc_d < 0.5 * np.hypot(auc_a, auc_b) and eff_d < 0.5 * np.hypot(eff_a, eff_b)
    assert paired_bootstrap_errors(scores, scores, is_signal, mistags=0.1, n_boot=10)[0] == 0.0
    with pytest.raises(ArgumentError, match="equal length|shape"):
        paired_bootstrap_errors(scores, scores[:-1], is_signal, n_boot=10)


def test_eight_taggers_get_eight_different_colours_and_the_first_six_keep_the_cms_ones():
    from deepjet_nb.plots import tagger_colours

    six, eight = tagger_colours([f"t{i}" for i in range(6)]), tagger_colours([f"t{i}" for i in range(8)])
    assert len(set(eight.values())) == 8
    assert all(eight[name] == colour for name, colour in six.items())


def test_a_log_parameter_axis_labels_the_scanned_values_only():
    from deepjet_nb.plots import ParameterPlot

    plot = ParameterPlot("lr", "val_auc").add([3e-4, 1e-3, 3e-3], [0.7, 0.75, 0.72])
    ax = plot.draw().axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0003", "0.001", "0.003"]
    assert not any(label.get_text() for label in ax.xaxis.get_minorticklabels())
    plot.close()


def test_a_plots_png_keeps_the_figures_size_even_with_a_tight_bbox_and_a_stray_label():
    import io

    import matplotlib
    from PIL import Image

    from deepjet_nb.plots import ParameterPlot

    plot = ParameterPlot("lr", "val_auc").add([3e-4, 1e-3], [0.7, 0.75])
    figure = plot.draw()
    figure.axes[0].text(50, -40, "far away", transform=figure.axes[0].transAxes)
    with matplotlib.rc_context({"savefig.bbox": "tight"}):
        size = Image.open(io.BytesIO(plot.png(dpi=50))).size
    assert size == tuple(round(50 * inches) for inches in figure.get_size_inches())
    plot.close()


def _legend_bottom_in_data(ax) -> float:
    figure = ax.figure
    figure.canvas.draw()
    box = ax.get_legend().get_window_extent(figure.canvas.get_renderer())
    return ax.transData.inverted().transform((box.x0, box.y0))[1]


def test_histogram_legends_sit_above_the_histograms():
    from deepjet_nb.plots import HistogramPlot

    rng = np.random.default_rng(1)
    plot = HistogramPlot("Soft-drop mass [GeV]", bins=30, range=(0, 300), title="pcnn, Top vs QCD", logy=False)
    plot.add(rng.normal(60, 40, 5000), "QCD, inclusive")
    for mistag in ("5%", "1%"):  # the sculpted shapes peak high, where the legend used to be drawn
        plot.add(rng.normal(170, 15, 300), f"QCD, {mistag} mistag (JS 0.412)")
    ax = plot.draw().axes[0]
    assert _legend_bottom_in_data(ax) > max(density.max() for _, density in plot.histograms.values())
    plot.close()


def test_an_efficiency_axis_ends_just_above_one_with_the_legend_below_the_points():
    from types import SimpleNamespace

    from deepjet_nb.plots import EfficiencyPlot

    edges = np.array([20.0, 50, 100, 300])
    series = {"b": [0.6, 0.7, 0.65], "c": [0.1, 0.12, 0.2], "udsg": [0.01, 0.008, 0.02]}
    plot = EfficiencyPlot("jet_pt", title="deepjet, medium WP")
    for flavour, values in series.items():
        values = np.array(values)
        plot.add(SimpleNamespace(flavour=flavour, edges=edges, centers=0.5 * (edges[1:] + edges[:-1]), values=values,
                                 err_low=0.1 * values, err_high=0.1 * values))
    ax = plot.draw().axes[0]
    assert 1 < ax.get_ylim()[1] <= 1.5
    figure = ax.figure
    figure.canvas.draw()
    box = ax.get_legend().get_window_extent(figure.canvas.get_renderer())
    assert ax.transData.inverted().transform((box.x1, box.y1))[1] < 0.008 * 0.9  # under the lowest error bar
    plot.close()
