"""Substructure: the N-subjettiness kernel and soft drop (FastJet) against plain numpy/Python references."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from deepjet_nb.kernels.substructure import jensen_shannon, nsubjettiness
from deepjet_nb.samples.substructure import nsubjettiness_taus, softdrop


def random_jets(seed, n_jets=40, prongs=None):
    """Constituent four-momenta of jets near eta = phi = 0 (a few hard prongs plus soft spray)."""
    rng = np.random.default_rng(seed)
    p4, counts = [], []
    for j in range(n_jets):
        k = prongs if prongs is not None else rng.integers(1, 4)
        centres = rng.normal(0, 0.3, (k, 2))
        n = rng.integers(k + 1, 30) if prongs is None else 6 * k
        which = rng.integers(0, k, n)
        spread = 0.02 if prongs is not None else 0.1
        eta = centres[which, 0] + rng.normal(0, spread, n)
        phi = centres[which, 1] + rng.normal(0, spread, n)
        pt = rng.exponential(15, n) + 0.5
        p4.append(np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)]))
        counts.append(n)
    return np.concatenate(p4, axis=1), np.array(counts)


def ref_tau(pt, rap, phi, axes, r0):
    if len(axes) == 0:
        return 0.0
    dphi = (phi[:, None] - axes[None, :, 1] + np.pi) % (2 * np.pi) - np.pi
    dr = np.hypot(rap[:, None] - axes[None, :, 0], dphi).min(axis=1)
    return float(np.sum(pt * dr) / (r0 * np.sum(pt)))


def test_nsubjettiness_kernel_matches_numpy_reference():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 20, 50)
    n_axes = rng.integers(0, 4, 50)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    axis_offsets = np.concatenate([[0], np.cumsum(n_axes)]).astype(np.int64)
    pt, rap, phi = rng.exponential(10, offsets[-1]), rng.normal(0, 0.4, offsets[-1]), rng.uniform(-np.pi, np.pi, offsets[-1])
    arap, aphi = rng.normal(0, 0.4, axis_offsets[-1]), rng.uniform(-np.pi, np.pi, axis_offsets[-1])
    got = nsubjettiness(offsets, pt, rap, phi, axis_offsets, arap, aphi, 0.8)
    for j in range(50):
        sl, sa = slice(offsets[j], offsets[j + 1]), slice(axis_offsets[j], axis_offsets[j + 1])
        want = ref_tau(pt[sl], rap[sl], phi[sl], np.stack([arap[sa], aphi[sa]], axis=1), 0.8) if counts[j] else 0.0
        assert got[j] == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("prongs", [1, 2, 3])
def test_tau_ratios_see_the_number_of_prongs(prongs):
    p4, counts = random_jets(7, n_jets=30, prongs=prongs)
    taus = nsubjettiness_taus(*p4, counts)
    assert np.all(taus[:, 0] >= taus[:, 1]) and np.all(taus[:, 1] >= taus[:, 2])
    # N narrow prongs (width 0.02, ~0.3 apart): tau_N is small, tau_(N-1) is not
    assert np.median(taus[:, prongs - 1]) < 0.05
    if prongs > 1:
        assert np.median(taus[:, prongs - 1] / taus[:, prongs - 2]) < 0.3


def test_tau_is_zero_with_no_more_constituents_than_axes():
    p4, counts = random_jets(1, n_jets=3, prongs=1)
    p4, counts = p4[:, :5], np.array([2, 3, 0])
    taus = nsubjettiness_taus(*p4, counts)
    assert taus[0, 1] == taus[0, 2] == 0 and taus[1, 2] == 0 and np.all(taus[2] == 0)
    assert taus[0, 0] > 0 and taus[1, 1] > 0


# --- soft drop: a plain-Python Cambridge/Aachen clustering and declustering ------------------------------

def _kin(p):
    pt = np.hypot(p[0], p[1])
    return pt, 0.5 * np.log((p[3] + p[2]) / (p[3] - p[2])), np.arctan2(p[1], p[0])


def _dr(a, b):
    _, ya, pa = _kin(a)
    _, yb, pb = _kin(b)
    return np.hypot(ya - yb, (pa - pb + np.pi) % (2 * np.pi) - np.pi)


def ref_softdrop_mass(p4, zcut=0.1, beta=0.0, r0=0.8):
    nodes = [(p4[:, i].copy(), None) for i in range(p4.shape[1])]  # (momentum, children)
    while len(nodes) > 1:
        best = min(((_dr(nodes[i][0], nodes[j][0]), i, j) for i in range(len(nodes))
                    for j in range(i + 1, len(nodes))))
        _, i, j = best
        merged = (nodes[i][0] + nodes[j][0], (nodes[i], nodes[j]))
        nodes = [n for k, n in enumerate(nodes) if k not in (i, j)] + [merged]
    node = nodes[0]
    while node[1] is not None:
        a, b = node[1]
        pta, ptb = _kin(a[0])[0], _kin(b[0])[0]
        if min(pta, ptb) / (pta + ptb) > zcut * (_dr(a[0], b[0]) / r0) ** beta:
            break
        node = a if pta > ptb else b
    p = node[0]
    return np.sqrt(max(p[3] ** 2 - p[0] ** 2 - p[1] ** 2 - p[2] ** 2, 0.0))


def test_softdrop_mass_matches_python_reference():
    p4, counts = random_jets(11, n_jets=25)
    got = softdrop(*p4, counts)["mass"]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for j in range(len(counts)):
        assert got[j] == pytest.approx(ref_softdrop_mass(p4[:, offsets[j]:offsets[j + 1]]), rel=1e-6, abs=1e-6)


def test_softdrop_grooms_a_soft_wide_angle_emission_away():
    # a two-prong W-like jet plus one soft particle at Delta R 0.7: the plain mass grows, the groomed one not
    hard = np.array([[40.0, 0.0, 0.0], [40.0, 0.15, 0.0]])  # pt, eta, phi
    soft = np.array([[1.0, -0.5, 0.5]])
    parts = np.concatenate([hard, soft])
    p4 = np.stack([parts[:, 0] * np.cos(parts[:, 2]), parts[:, 0] * np.sin(parts[:, 2]),
                   parts[:, 0] * np.sinh(parts[:, 1]), parts[:, 0] * np.cosh(parts[:, 1])])
    sd = softdrop(*p4, [3])
    full = np.sqrt(p4[3].sum() ** 2 - p4[0].sum() ** 2 - p4[1].sum() ** 2 - p4[2].sum() ** 2)
    two = np.sqrt(p4[3, :2].sum() ** 2 - p4[0, :2].sum() ** 2 - p4[1, :2].sum() ** 2 - p4[2, :2].sum() ** 2)
    assert sd["mass"][0] == pytest.approx(two, rel=1e-9) and full > 1.5 * two
    assert sd["subjet_dr"][0] == pytest.approx(0.15, abs=1e-3) and sd["subjet_z"][0] == pytest.approx(0.5, abs=1e-3)


def test_softdrop_subjets_are_the_two_prongs_after_grooming():
    # the same two-prong jet plus a soft wide-angle particle: the subjets are the two hard prongs (the soft one
    # is groomed away), by decreasing pT; a single-particle jet has it as first subjet and zeros as second
    parts = np.array([[60.0, 0.0, 0.0], [30.0, 0.2, 0.1], [1.0, -0.5, 0.5], [50.0, 1.0, 2.0]])  # pt, eta, phi
    p4 = np.stack([parts[:, 0] * np.cos(parts[:, 2]), parts[:, 0] * np.sin(parts[:, 2]),
                   parts[:, 0] * np.sinh(parts[:, 1]), parts[:, 0] * np.cosh(parts[:, 1])])
    sd = softdrop(*p4, [3, 1, 0], subjets=True)
    np.testing.assert_allclose(sd["subjet1"][0], p4[:, 0], rtol=1e-9)
    np.testing.assert_allclose(sd["subjet2"][0], p4[:, 1], rtol=1e-9)
    np.testing.assert_allclose(sd["subjet1"][1], p4[:, 3], rtol=1e-9)
    assert np.all(sd["subjet2"][1] == 0) and np.all(sd["subjet1"][2] == 0) and np.all(sd["subjet2"][2] == 0)
    assert sd["subjet_z"][0] == pytest.approx(30.0 / 90.0, abs=1e-3)


def test_softdrop_subjets_add_up_to_the_groomed_jet():
    p4, counts = random_jets(5, n_jets=20)
    sd = softdrop(*p4, counts, subjets=True)
    total = sd["subjet1"] + sd["subjet2"]
    mass = np.sqrt(np.maximum(total[:, 3] ** 2 - (total[:, :3] ** 2).sum(axis=1), 0.0))
    np.testing.assert_allclose(mass, sd["mass"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.hypot(total[:, 0], total[:, 1]), sd["pt"], rtol=1e-6, atol=1e-6)
    assert np.all(np.hypot(sd["subjet1"][:, 0], sd["subjet1"][:, 1]) >= np.hypot(sd["subjet2"][:, 0],
                                                                                  sd["subjet2"][:, 1]))


def test_jensen_shannon_matches_scipy_and_its_bounds():
    rng = np.random.default_rng(5)
    p, q = rng.integers(0, 50, 30), rng.integers(0, 50, 30)
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)
    assert jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        jensen_shannon([0, 0], [1, 1])


@pytest.mark.parametrize("rotation", [0.0, 3.0])  # 3.0: the jets straddle phi = ±pi
def test_softdrop_kernel_gives_fastjet_contribs_grooming(rotation):
    """The numba C/A clustering and declustering against FastJet contrib's SoftDrop (through the fastjet
    package) on random fat jets: the same groomed jet, subjets, ΔR and momentum share."""
    import awkward as ak

    from deepjet_nb.samples.substructure import _jets, _sequence

    p4, counts = random_jets(5, n_jets=40)
    c, s = np.cos(rotation), np.sin(rotation)
    p4 = np.stack([c * p4[0] - s * p4[1], s * p4[0] + c * p4[1], p4[2], p4[3]])
    ours = softdrop(*p4, counts, subjets=True)
    groomed = _sequence(_jets(*p4, counts), "cambridge_algorithm").exclusive_jets_softdrop_grooming(
        njets=1, beta=0.0, symmetry_cut=0.1, R0=0.8)
    for key, field in (("mass", "msoftdrop"), ("pt", "ptsoftdrop"), ("subjet_dr", "deltaRsoftdrop"),
                       ("subjet_z", "symmetrysoftdrop")):
        reference = ak.to_numpy(groomed[field]).astype(float).reshape(-1)
        assert ours[key] == pytest.approx(reference, rel=1e-9, abs=1e-9), key
    # FastJet's groomed constituents summed give the groomed jet; its two C/A prongs are our subjets
    constituents = groomed["constituents"]
    summed = np.stack([ak.to_numpy(ak.sum(constituents[c], axis=1)) for c in ("px", "py", "pz", "E")], axis=1)
    assert ours["subjet1"] + ours["subjet2"] == pytest.approx(summed, rel=1e-9, abs=1e-9)
