"""Jet substructure on flat arrays: N-subjettiness and the Jensen–Shannon divergence of two histograms.

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
