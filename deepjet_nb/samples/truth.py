"""Hadron-based jet flavour from the Pythia event record (docs/reference.md §2).

A jet's heavy flavour comes from the *last* B and C hadrons of their decay chains (a B* -> B gamma counts
once, as the B) whose direction lies within Delta R < 0.4 of the jet axis; each hadron goes to its nearest
jet only, as with ghost association. Sub-labels:

- two or more B (C) hadrons: ``isGBB`` (``isGCC``) when their heavy quarks come from a gluon splitting in the
  parton shower (the quark's ancestry ends at a gluon), otherwise ``isBB`` (``isCC``);
- one B hadron: ``isLeptonicB`` when an electron or muon is a direct decay product of the B hadron,
  ``isLeptonicB_C`` when it comes from the decay of a C hadron that descends from the B, else ``isB``;
- no heavy hadron: the matched parton (hardest quark or gluon of the hard process or shower within
  Delta R < 0.4) decides ``isUD``, ``isS`` or ``isG``; otherwise ``isUndefined``.

The producer also flags as ``isUndefined`` every jet without a generator-level jet within Delta R < 0.4 (a
pile-up jet), as the DeepNTuples ntupler does; ``jet_hadronFlavour`` and ``jet_partonFlavour`` keep their values.
"""

from __future__ import annotations

import numba
import numpy as np

from ..schema import FLAVOUR_FLAGS
from .vertexing import delta_r, eta_phi

FLAG_INDEX = {name: i for i, name in enumerate(FLAVOUR_FLAGS)}
_B, _BB, _GBB, _LEPB, _LEPB_C, _C, _CC, _GCC, _UD, _S, _G, _UNDEF = range(12)

MATCH_DR = 0.4


@numba.njit(cache=True)
def _heavy_flavour(pid):
    """5 for a B hadron, 4 for a C hadron (no b quark), 0 otherwise; quarkonia and diquarks are not hadrons."""
    a = abs(pid)
    if a < 100 or a > 9999:
        return 0
    q1 = (a // 1000) % 10
    q2 = (a // 100) % 10
    q3 = (a // 10) % 10
    if q1 == 0:  # meson q2 q3
        if q2 == q3:  # quarkonium: no open flavour
            return 0
        heaviest = max(q2, q3)
    else:
        if q3 == 0:  # diquark, a parton
            return 0
        heaviest = max(q1, max(q2, q3))
    if heaviest == 5:
        return 5
    if heaviest == 4:
        return 4
    return 0


@numba.njit(cache=True)
def _has_daughter_of_flavour(base, i, flavour, pid, d1, d2):
    lo = d1[base + i]
    hi = d2[base + i]
    if lo <= 0:
        return False
    if hi < lo:  # Pythia: two separate daughters d1 and d2
        return _heavy_flavour(pid[base + lo]) == flavour or (hi > 0 and _heavy_flavour(pid[base + hi]) == flavour)
    for k in range(lo, hi + 1):
        if _heavy_flavour(pid[base + k]) == flavour:
            return True
    return False


@numba.njit(cache=True)
def _from_gluon_splitting(base, n, i, quark, pid, m1, m2, px, py, pz):
    """Does the heavy quark that formed hadron ``i`` come from a gluon splitting?

    Walk up through hadron decays to the primary hadron, pick the heavy quark of flavour ``quark`` among the
    string partons that formed it (the one closest in angle), then follow that quark's copies up the shower.
    """
    cur = i
    for _ in range(200):  # up to the primary hadron
        mo = m1[base + cur]
        if mo <= 0 or abs(pid[base + mo]) < 100 or abs(pid[base + mo]) > 9999:
            break
        cur = mo
    lo = m1[base + cur]
    hi = m2[base + cur]
    if lo <= 0:
        return False
    if hi < lo:
        hi = lo
    eta_h, phi_h = eta_phi(px[base + cur], py[base + cur], pz[base + cur])
    best = -1
    best_dr = 1e9
    for k in range(lo, hi + 1):
        if abs(pid[base + k]) == quark:
            eta_k, phi_k = eta_phi(px[base + k], py[base + k], pz[base + k])
            dr = delta_r(eta_h, phi_h, eta_k, phi_k)
            if dr < best_dr:
                best_dr = dr
                best = k
    if best < 0:
        return False
    q = best
    for _ in range(500):  # up the copies of the same quark
        mo = m1[base + q]
        if mo <= 0 or mo >= n:
            return False
        if pid[base + mo] == pid[base + q]:
            q = mo
            continue
        return pid[base + mo] == 21
    return False


@numba.njit(cache=True)
def _lepton_origin(base, n, b_index, pid, m1):
    """1 if an e/mu is a direct daughter of B hadron ``b_index``; 2 if it comes from a C hadron that
    descends from the B; 0 otherwise. Decay products always follow their mother in Pythia's record."""
    # mark descendants of the B hadron
    desc = np.zeros(n, np.bool_)
    desc[b_index] = True
    result = 0
    for k in range(b_index + 1, n):
        mo = m1[base + k]
        if mo > 0 and desc[mo]:
            desc[k] = True
            a = abs(pid[base + k])
            if a == 11 or a == 13:
                if mo == b_index:
                    return 1
                if _heavy_flavour(pid[base + mo]) == 4:
                    result = 2
    return result


@numba.njit(cache=True)
def label_jets(offsets, pid, status, m1, m2, d1, d2, px, py, pz, jet_offsets, jet_eta, jet_phi):
    """Flavour truth of every jet of a batch.

    Returns ``flags`` (n_jets, 12) int32 in the order of ``schema.FLAVOUR_FLAGS`` with exactly one 1 per row,
    ``hadron_flavour`` (n_jets,) in {5, 4, 0}, ``parton_flavour`` (n_jets,) signed PDG id or 0, and
    ``n_b``, ``n_c`` (n_jets,) the numbers of matched last B and C hadrons.
    """
    n_jets = jet_eta.shape[0]
    flags = np.zeros((n_jets, 12), np.int32)
    hflav = np.zeros(n_jets, np.int32)
    pflav = np.zeros(n_jets, np.int32)
    n_b = np.zeros(n_jets, np.int32)
    n_c = np.zeros(n_jets, np.int32)
    b_first = np.full(n_jets, -1, np.int64)
    gsplit_b = np.zeros(n_jets, np.int32)
    gsplit_c = np.zeros(n_jets, np.int32)
    best_parton_pt = np.zeros(n_jets)

    for ev in range(offsets.shape[0] - 1):
        base = offsets[ev]
        n = offsets[ev + 1] - base
        j0 = jet_offsets[ev]
        j1 = jet_offsets[ev + 1]
        if j1 == j0:
            continue
        for i in range(1, n):
            p = pid[base + i]
            a = abs(p)
            fl = _heavy_flavour(p)
            is_parton = (a <= 5 or a == 21) and a > 0
            st = abs(status[base + i])
            if fl == 0 and not is_parton:
                continue
            if is_parton and not (st in (22, 23, 24, 33, 43, 44) or (51 <= st <= 59)):
                continue
            if fl != 0 and _has_daughter_of_flavour(base, i, fl, pid, d1, d2):
                continue  # not the last hadron of its flavour in the chain
            eta, phi = eta_phi(px[base + i], py[base + i], pz[base + i])
            best = -1
            best_dr = MATCH_DR
            for j in range(j0, j1):
                dr = delta_r(eta, phi, jet_eta[j], jet_phi[j])
                if dr < best_dr:
                    best_dr = dr
                    best = j
            if best < 0:
                continue
            if fl == 5:
                n_b[best] += 1
                if b_first[best] < 0:
                    b_first[best] = i
                if _from_gluon_splitting(base, n, i, 5, pid, m1, m2, px, py, pz):
                    gsplit_b[best] += 1
            elif fl == 4:
                n_c[best] += 1
                if _from_gluon_splitting(base, n, i, 4, pid, m1, m2, px, py, pz):
                    gsplit_c[best] += 1
            else:
                pt = np.sqrt(px[base + i] ** 2 + py[base + i] ** 2)
                if pt > best_parton_pt[best]:
                    best_parton_pt[best] = pt
                    pflav[best] = p
        for j in range(j0, j1):
            a = abs(pflav[j])
            if n_b[j] >= 2:
                hflav[j] = 5
                flags[j, _GBB if gsplit_b[j] >= 2 else _BB] = 1
            elif n_b[j] == 1:
                hflav[j] = 5
                origin = _lepton_origin(base, n, b_first[j], pid, m1)
                flags[j, _LEPB if origin == 1 else (_LEPB_C if origin == 2 else _B)] = 1
            elif n_c[j] >= 2:
                hflav[j] = 4
                flags[j, _GCC if gsplit_c[j] >= 2 else _CC] = 1
            elif n_c[j] == 1:
                hflav[j] = 4
                flags[j, _C] = 1
            elif a == 1 or a == 2:
                flags[j, _UD] = 1
            elif a == 3:
                flags[j, _S] = 1
            elif a == 21:
                flags[j, _G] = 1
            else:
                flags[j, _UNDEF] = 1
    return flags, hflav, pflav, n_b, n_c
