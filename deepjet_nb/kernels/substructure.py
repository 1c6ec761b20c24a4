"""Jet substructure on flat arrays: soft drop, N-subjettiness and the Jensen–Shannon divergence of two histograms.

Soft drop [Larkoski, Marzani, Soyez, Thaler, JHEP 05 (2014) 146]: the jet's constituents are clustered with the
Cambridge/Aachen algorithm (pairwise ΔR in rapidity and φ, E-scheme recombination, every constituent ending in
one jet) and the tree is undone from the top, following the harder branch (in pT) until the two branches pass
min(pT1, pT2)/(pT1 + pT2) > z_cut (ΔR12/R0)^β. The C/A clustering keeps each pseudojet's nearest neighbour
(recomputed only for those whose neighbour was merged), so a jet of n constituents costs O(n²).

N-subjettiness [Thaler, Van Tilburg, JHEP 03 (2011) 015] with β = 1 measures how well N axes describe a jet:
τ_N = Σ_k pT_k min_a ΔR(k, a) / (R0 Σ_k pT_k), ΔR in (rapidity, φ). Small τ2/τ1 means two prongs (W, Z, H),
small τ3/τ2 three (top). The axes (exclusive-kT subjets, from FastJet) are an input: this kernel only measures.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def nsubjettiness(offsets, pt, rap, phi, axis_offsets, axis_rap, axis_phi, r0):
    """τ_N (β = 1) of every jet: constituents ``offsets[j]:offsets[j + 1]`` of (``pt``, ``rap``, ``phi``),
    axes ``axis_offsets[j]:axis_offsets[j + 1]`` of (``axis_rap``, ``axis_phi``), radius ``r0``.

    Returns float64 (n_jets,). A jet with no axis or no pT has τ = 0 (as FastJet contrib does for a jet with
    at most N constituents, where every constituent is its own axis).
    """
    n_jets = offsets.shape[0] - 1
    tau = np.zeros(n_jets)
    for j in range(n_jets):
        a0 = axis_offsets[j]
        a1 = axis_offsets[j + 1]
        if a1 == a0:
            continue
        num = 0.0
        den = 0.0
        for k in range(offsets[j], offsets[j + 1]):
            best = np.inf
            for a in range(a0, a1):
                dphi = phi[k] - axis_phi[a]
                dphi = (dphi + np.pi) % (2.0 * np.pi) - np.pi
                dy = rap[k] - axis_rap[a]
                d = np.sqrt(dy * dy + dphi * dphi)
                if d < best:
                    best = d
            num += pt[k] * best
            den += pt[k]
        if den > 0:
            tau[j] = num / (r0 * den)
    return tau


@numba.njit(cache=True)
def _rap_phi(px, py, pz, e):
    pt2 = px * px + py * py
    if pt2 == 0.0 and abs(pz) >= e:
        rap = 1e5 if pz >= 0 else -1e5  # along the beam (FastJet's convention: a huge rapidity)
    else:
        rap = 0.5 * np.log(max(e + pz, 1e-300) / max(e - pz, 1e-300))
    return rap, np.arctan2(py, px)


@numba.njit(cache=True)
def _dr2(rap_a, phi_a, rap_b, phi_b):
    dphi = abs(phi_a - phi_b)
    if dphi > np.pi:
        dphi = 2.0 * np.pi - dphi
    dy = rap_a - rap_b
    return dy * dy + dphi * dphi


@numba.njit(cache=True)
def _nearest(i, active, n_nodes, rap, phi):
    best, best_j = np.inf, -1
    for j in range(n_nodes):
        if j != i and active[j]:
            d = _dr2(rap[i], phi[i], rap[j], phi[j])
            if d < best:
                best, best_j = d, j
    return best, best_j


@numba.njit(cache=True)
def softdrop_jets(offsets, px, py, pz, e, zcut, beta, r0):
    """Soft drop of every jet: constituents ``offsets[j]:offsets[j + 1]`` of (``px``, ``py``, ``pz``, ``e``).

    Returns ``(groomed, subjets, dr, z)``: ``groomed`` (n_jets, 4) the groomed jet's (px, py, pz, E);
    ``subjets`` (n_jets, 2, 4) the two branches where grooming stopped, by decreasing pT; ``dr`` their ΔR and
    ``z`` their momentum share. A jet groomed down to one constituent has that constituent as first subjet,
    zeros as second, ``dr`` = ``z`` = 0; a jet without constituents is all zeros.
    """
    n_jets = offsets.shape[0] - 1
    groomed = np.zeros((n_jets, 4))
    subjets = np.zeros((n_jets, 2, 4))
    dr = np.zeros(n_jets)
    zval = np.zeros(n_jets)
    for jet in range(n_jets):
        lo, n = offsets[jet], offsets[jet + 1] - offsets[jet]
        if n == 0:
            continue
        size = 2 * n - 1
        p4 = np.zeros((size, 4))
        rap = np.zeros(size)
        phi = np.zeros(size)
        child_a = np.full(size, -1, np.int64)
        child_b = np.full(size, -1, np.int64)
        active = np.zeros(size, np.bool_)
        nn_d = np.full(size, np.inf)
        nn_j = np.full(size, -1, np.int64)
        for k in range(n):
            p4[k, 0], p4[k, 1], p4[k, 2], p4[k, 3] = px[lo + k], py[lo + k], pz[lo + k], e[lo + k]
            rap[k], phi[k] = _rap_phi(p4[k, 0], p4[k, 1], p4[k, 2], p4[k, 3])
            active[k] = True
        for k in range(n):
            nn_d[k], nn_j[k] = _nearest(k, active, n, rap, phi)
        n_nodes = n
        for _ in range(n - 1):  # Cambridge/Aachen: merge the closest pair until one pseudojet is left
            i = -1
            best = np.inf
            for k in range(n_nodes):
                if active[k] and nn_d[k] < best:
                    best, i = nn_d[k], k
            j = nn_j[i]
            new = n_nodes
            n_nodes += 1
            for c in range(4):
                p4[new, c] = p4[i, c] + p4[j, c]
            rap[new], phi[new] = _rap_phi(p4[new, 0], p4[new, 1], p4[new, 2], p4[new, 3])
            child_a[new], child_b[new] = i, j
            active[i] = False
            active[j] = False
            active[new] = True
            for k in range(n_nodes - 1):
                if not active[k]:
                    continue
                if nn_j[k] == i or nn_j[k] == j:
                    nn_d[k], nn_j[k] = _nearest(k, active, n_nodes, rap, phi)
                else:
                    d = _dr2(rap[k], phi[k], rap[new], phi[new])
                    if d < nn_d[k]:
                        nn_d[k], nn_j[k] = d, new
            nn_d[new], nn_j[new] = _nearest(new, active, n_nodes, rap, phi)
        node = n_nodes - 1  # the root; undo the clustering along the harder branch
        while child_a[node] >= 0:
            a, b = child_a[node], child_b[node]
            pt_a = np.hypot(p4[a, 0], p4[a, 1])
            pt_b = np.hypot(p4[b, 0], p4[b, 1])
            if pt_b > pt_a:
                a, b, pt_a, pt_b = b, a, pt_b, pt_a
            delta = np.sqrt(_dr2(rap[a], phi[a], rap[b], phi[b]))
            share = pt_b / (pt_a + pt_b) if pt_a + pt_b > 0 else 0.0
            if share > zcut * (delta / r0) ** beta:
                subjets[jet, 0] = p4[a]
                subjets[jet, 1] = p4[b]
                dr[jet] = delta
                zval[jet] = share
                break
            node = a
        if child_a[node] < 0:
            subjets[jet, 0] = p4[node]
        groomed[jet] = p4[node]
    return groomed, subjets, dr, zval


def jensen_shannon(p, q) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) between two histograms (normalised here; bins empty in
    both contribute nothing). 0 for identical shapes, 1 for disjoint ones."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if p.shape != q.shape or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("jensen_shannon needs two non-empty histograms of the same binning")
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)

    def kl(a):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return 0.5 * kl(p) + 0.5 * kl(q)
