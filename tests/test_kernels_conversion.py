"""Conversion kernels against plain-numpy references on random jagged input (empty and over-long lists too)."""

import numpy as np
import pytest

from deepjet_nb.kernels.padding import nth_largest, pad_sorted
from deepjet_nb.kernels.stats import feature_moments, merge_moments, standardise
from deepjet_nb.kernels.weights import histogram_2d, lookup_2d, resample_indices


def random_jagged(seed, n_jets=300, n_features=3, max_count=12):
    """offsets, content (n_features, n_objects) with empty lists, long lists, ties and NaN keys."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, max_count, n_jets)
    counts[:5] = 0  # several empty jets, first ones included
    counts[5] = 3 * max_count  # much longer than any max_length used here
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    content = rng.normal(size=(n_features, offsets[-1])).astype(np.float32)
    content[0, ::7] = np.round(content[0, ::7])  # ties in the sort key
    content[0, ::13] = np.nan
    return offsets, content


# --- references -----------------------------------------------------------------------------------------

def ref_standardise(x, mean, std, excluded, replace_with, clip):
    x = x.astype(np.float64)
    y = (x - mean) / std
    if clip > 0:
        y = np.clip(y, -clip, clip)
    return np.where(~np.isfinite(x) | np.isin(x, excluded), replace_with, y)


def ref_pad_sorted(offsets, content, key, jets, max_length, descending, pad_value, mean, std, excluded,
                   replace_with, clip):
    out = np.full((len(jets), max_length, content.shape[0]), pad_value, np.float32)
    for row, i in enumerate(jets):
        objs = content[:, offsets[i]:offsets[i + 1]].T
        if len(key):
            k = key[offsets[i]:offsets[i + 1]].astype(np.float64)
            k = np.where(np.isnan(k), np.inf, -k if descending else k)
            objs = objs[np.argsort(k, kind="stable")]
        objs = ref_standardise(objs[:max_length], mean, std, excluded, replace_with, clip)
        out[row, :len(objs)] = objs
    return out


IDENTITY = (np.zeros(3), np.ones(3), np.empty(0), 0.0, 0.0)
NORMALISE = (np.array([0.5, -1.0, 0.0]), np.array([2.0, 0.5, 1.0]), np.array([2.0]), -0.5, 1.5)


def ref_nth_largest(offsets, content, n, default):
    out = []
    for i in range(len(offsets) - 1):
        values = content[offsets[i]:offsets[i + 1]]
        values = np.sort(values[~np.isnan(values)])[::-1]
        out.append(values[n - 1] if len(values) >= n else default)
    return np.array(out, np.float32)


def ref_bin(values, edges):
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


# --- padding --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", [IDENTITY, NORMALISE], ids=["raw", "standardised"])
@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("max_length", [1, 4, 25])
def test_pad_sorted_matches_reference(descending, max_length, norm):
    offsets, content = random_jagged(seed=max_length)
    jets = np.flatnonzero(np.random.default_rng(0).random(len(offsets) - 1) < 0.7)
    jets = np.concatenate([[0, 5], jets])  # an empty jet and the over-long one
    got = pad_sorted(offsets, content, content[0], jets, max_length, descending, np.float32(-3.0), *norm)
    want = ref_pad_sorted(offsets, content, content[0], jets, max_length, descending, -3.0, *norm)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_pad_sorted_without_key_keeps_input_order_and_truncates():
    offsets, content = random_jagged(seed=7)
    content = np.nan_to_num(content)
    jets = np.arange(len(offsets) - 1)
    got = pad_sorted(offsets, content, np.empty(0, np.float32), jets, 4, True, np.float32(0), *IDENTITY)
    np.testing.assert_array_equal(got, ref_pad_sorted(offsets, content, np.empty(0), jets, 4, True, 0.0,
                                                      *IDENTITY))
    np.testing.assert_array_equal(got[5], content[:, offsets[5]:offsets[5] + 4].T)


def test_pad_sorted_keeps_leading_objects_of_long_list():
    offsets = np.array([0, 6], np.int64)
    key = np.array([1, 5, 3, 6, 2, 4], np.float32)
    got = pad_sorted(offsets, key[None, :], key, np.array([0]), 3, True, np.float32(0), np.zeros(1),
                     np.ones(1), np.empty(0), 0.0, 0.0)
    np.testing.assert_array_equal(got[0, :, 0], [6, 5, 4])


def test_pad_sorted_handles_no_jets():
    got = pad_sorted(np.zeros(1, np.int64), np.zeros((2, 0), np.float32), np.zeros(0, np.float32),
                     np.zeros(0, np.int64), 3, True, np.float32(0), np.zeros(2), np.ones(2), np.empty(0), 0.0, 0.0)
    assert got.shape == (0, 3, 2)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_nth_largest_matches_reference(n):
    offsets, content = random_jagged(seed=n)
    np.testing.assert_array_equal(nth_largest(offsets, content[0], n, -10.0),
                                  ref_nth_largest(offsets, content[0], n, -10.0))


def test_nth_largest_default_for_short_lists():
    offsets = np.array([0, 0, 1, 3], np.int64)
    values = np.array([4.0, 1.0, 7.0], np.float32)
    np.testing.assert_array_equal(nth_largest(offsets, values, 2, -10.0), [-10.0, -10.0, 1.0])


# --- statistics -----------------------------------------------------------------------------------------

def test_feature_moments_skip_defaults_and_nonfinite():
    rng = np.random.default_rng(3)
    values = rng.normal(2.0, 3.0, size=(4, 1000)).astype(np.float32)
    values[1, ::10] = -999.0
    values[2, ::17] = np.inf
    values[3, :] = np.nan
    count, mean, m2 = feature_moments(values, np.array([-999.0]))
    for f in range(3):
        good = values[f][np.isfinite(values[f]) & (values[f] != -999.0)].astype(np.float64)
        assert count[f] == len(good)
        assert mean[f] == pytest.approx(good.mean(), rel=1e-12)
        assert m2[f] / count[f] == pytest.approx(good.var(), rel=1e-10)
    assert count[3] == 0


def test_merged_moments_equal_moments_of_concatenation():
    rng = np.random.default_rng(4)
    values = rng.normal(5.0, 2.0, size=(3, 999)).astype(np.float32)
    parts = [feature_moments(values[:, a:b], np.empty(0)) for a, b in ((0, 0), (0, 100), (100, 999))]
    merged = parts[0]
    for p in parts[1:]:
        merged = merge_moments(*merged, *p)
    whole = feature_moments(values, np.empty(0))
    np.testing.assert_array_equal(merged[0], whole[0])
    np.testing.assert_allclose(merged[1], whole[1], rtol=1e-12)
    np.testing.assert_allclose(merged[2], whole[2], rtol=1e-9)


def test_standardise_matches_reference():
    rng = np.random.default_rng(5)
    values = rng.normal(1.0, 4.0, size=(3, 500)).astype(np.float32)
    values[0, ::9] = -999.0
    values[1, ::11] = np.nan
    values[2, ::5] = -np.inf
    mean, std = np.array([1.0, 0.5, -2.0]), np.array([4.0, 2.0, 0.5])
    got = standardise(values, mean, std, np.array([-999.0]), 0.25, 3.0)
    x = values.astype(np.float64)
    want = np.clip((x - mean[:, None]) / std[:, None], -3, 3)
    want[~np.isfinite(x) | (x == -999.0)] = 0.25
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_standardise_without_clip_leaves_large_values():
    values = np.array([[100.0, -100.0]], np.float32)
    got = standardise(values, np.zeros(1), np.ones(1), np.empty(0), 0.0, 0.0)
    np.testing.assert_array_equal(got, values)


# --- weights --------------------------------------------------------------------------------------------

PT_EDGES = np.array([10, 25, 30, 35, 40, 45, 50, 60, 75, 100, 125, 150, 175, 200, 250, 300, 400, 500, 600, 2000.0])
ETA_EDGES = np.linspace(-2.5, 2.5, 11)


def random_jets(seed, n=2000, n_classes=4):
    rng = np.random.default_rng(seed)
    pt = rng.uniform(0, 2500, n)  # below and above the edges too
    eta = rng.uniform(-3, 3, n)
    label = rng.integers(0, n_classes, n).astype(np.int8)
    return pt, eta, label


def test_histogram_2d_matches_reference_with_clamping():
    pt, eta, label = random_jets(1)
    got = histogram_2d(pt, eta, label, PT_EDGES, ETA_EDGES, 4)
    want = np.zeros_like(got)
    np.add.at(want, (label, ref_bin(pt, PT_EDGES), ref_bin(eta, ETA_EDGES)), 1)
    np.testing.assert_array_equal(got, want)
    assert got.sum() == len(pt)


def test_lookup_2d_matches_reference():
    pt, eta, label = random_jets(2)
    table = np.random.default_rng(3).random((4, len(PT_EDGES) - 1, len(ETA_EDGES) - 1))
    got = lookup_2d(pt, eta, label, PT_EDGES, ETA_EDGES, table)
    want = table[label, ref_bin(pt, PT_EDGES), ref_bin(eta, ETA_EDGES)].astype(np.float32)
    np.testing.assert_array_equal(got, want)


def test_resample_indices_matches_reference_and_is_seeded():
    p = np.random.default_rng(4).random(5000)
    u1 = np.random.default_rng(9).random(5000)
    u2 = np.random.default_rng(9).random(5000)
    got = resample_indices(p, u1)
    np.testing.assert_array_equal(got, np.flatnonzero(u1 < p))
    np.testing.assert_array_equal(got, resample_indices(p, u2))
    assert resample_indices(np.ones(10), u1[:10]).tolist() == list(range(10))
    assert len(resample_indices(np.zeros(10), u1[:10])) == 0
