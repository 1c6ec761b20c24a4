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

Fat jets (:func:`label_fatjets`) get the DeepAK8 / ParticleNet labels from the resonances (t, W, Z, h) whose
decay partons lie within Delta R < 0.6 of the jet axis, and QCD labels from the same last B and C hadrons.
"""

from __future__ import annotations

import numba
import numpy as np

from ..schema import FJ_LABELS, FLAVOUR_FLAGS
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


# ---------------------------------------------------------------------------------------------------------
# Fat-jet (AK8) labels, DeepAK8 / ParticleNet style (docs/formats.md §1b)

FATJET_LABEL_INDEX = {name: i for i, name in enumerate(FJ_LABELS)}
(_TOP_BCQ, _TOP_BQQ, _TOP_BC, _TOP_BQ, _TOP_OTHERS, _W_CQ, _W_QQ, _Z_BB, _Z_CC, _Z_QQ, _H_BB, _H_CC,
 _QCD_BB, _QCD_CC, _QCD_B, _QCD_C, _QCD_OTHERS, _FJ_UNDEF) = range(18)
assert len(FJ_LABELS) == 18 and FJ_LABELS[_FJ_UNDEF] == "label_Undefined" and FJ_LABELS[_QCD_B] == "label_QCD_b"
FATJET_MATCH_DR = 0.6


@numba.njit(cache=True)
def _last_copy(base, i, pid, d1, d2):
    """The last copy of particle ``i`` (Pythia's record copies a particle after each recoil or shower step:
    follow the daughter with the same PDG id)."""
    for _ in range(500):
        lo = d1[base + i]
        hi = d2[base + i]
        if lo <= 0:
            return i
        if hi < lo:
            hi = lo
        nxt = -1
        for k in range(lo, hi + 1):
            if pid[base + k] == pid[base + i]:
                nxt = k
                break
        if nxt < 0:
            return i
        i = nxt
    return i


@numba.njit(cache=True)
def _two_daughters(base, i, d1, d2):
    """The first two decay products of (the last copy) ``i``, or -1."""
    lo = d1[base + i]
    hi = d2[base + i]
    if lo <= 0:
        return -1, -1
    if hi <= 0:
        return lo, -1
    if hi < lo:  # two separate daughters
        return lo, hi
    return lo, (lo + 1 if hi > lo else -1)


@numba.njit(cache=True)
def _inside(base, k, px, py, pz, eta, phi):
    if k < 0:
        return False
    keta, kphi = eta_phi(px[base + k], py[base + k], pz[base + k])
    return delta_r(keta, kphi, eta, phi) < FATJET_MATCH_DR


@numba.njit(cache=True)
def _is_quark(p):
    return 1 <= abs(p) <= 5


@numba.njit(cache=True)
def label_fatjets(offsets, pid, status, m1, m2, d1, d2, px, py, pz, e, jet_offsets, jet_eta, jet_phi):
    """DeepAK8-style truth of every fat jet of a batch, from generator partons and hadrons within
    Delta R < 0.6 (``FATJET_MATCH_DR``) of the jet axis; resonances are last copies, their decay products
    (the partons before showering) are "inside" when within Delta R < 0.6.

    In order: the nearest top within 0.6 -> ``Top_bcq``/``Top_bqq`` (b and both W daughters inside; bcq when a
    W daughter is a c quark), ``Top_bc``/``Top_bq`` (b and one W daughter inside, by that daughter), ``W_cq``/
    ``W_qq`` (both W daughters inside, the b outside: the W of a top counts as a W), else ``Top_others``;
    then the nearest W with both (quark) daughters inside -> ``W_cq``/``W_qq``; a Z -> ``Z_bb``/``Z_cc``/
    ``Z_qq``; an h (25) -> ``H_bb``/``H_cc`` (other decays fall through); otherwise QCD by the last B and C
    hadrons associated with the jet (each to its nearest jet within 0.6): >= 2 B -> ``QCD_bb``, 1 B ->
    ``QCD_b``, >= 2 C -> ``QCD_cc``, 1 C -> ``QCD_c``, else ``QCD_others``. ``label_Undefined`` (pile-up
    jets) is set by the producer.

    Returns ``labels`` (n_jets, 18) int32 in the order of ``schema.FJ_LABELS`` (exactly one 1 per row),
    ``n_b``, ``n_c`` (n_jets,) int32 and the matched resonance's ``res_pt``, ``res_mass`` (0 for QCD).
    """
    n_jets = jet_eta.shape[0]
    labels = np.zeros((n_jets, 18), np.int32)
    n_b = np.zeros(n_jets, np.int32)
    n_c = np.zeros(n_jets, np.int32)
    res_pt = np.zeros(n_jets)
    res_mass = np.zeros(n_jets)
    for ev in range(offsets.shape[0] - 1):
        base = offsets[ev]
        n = offsets[ev + 1] - base
        j0 = jet_offsets[ev]
        j1 = jet_offsets[ev + 1]
        if j1 == j0:
            continue
        # last copies of the resonances (t, Z, W, h) and the heavy hadrons
        res = np.empty(n, np.int64)
        n_res = 0
        for i in range(1, n):
            a = abs(pid[base + i])
            if a == 6 or a == 23 or a == 24 or a == 25:
                if _last_copy(base, i, pid, d1, d2) == i:
                    res[n_res] = i
                    n_res += 1
                continue
            fl = _heavy_flavour(pid[base + i])
            if fl == 0 or _has_daughter_of_flavour(base, i, fl, pid, d1, d2):
                continue
            eta, phi = eta_phi(px[base + i], py[base + i], pz[base + i])
            best = -1
            best_dr = FATJET_MATCH_DR
            for j in range(j0, j1):
                dr = delta_r(eta, phi, jet_eta[j], jet_phi[j])
                if dr < best_dr:
                    best_dr = dr
                    best = j
            if best >= 0:
                if fl == 5:
                    n_b[best] += 1
                else:
                    n_c[best] += 1
        for j in range(j0, j1):
            label = -1
            matched = -1
            for kind in (6, 24, 23, 25):
                # nearest resonance of this kind within 0.6
                r = -1
                best_dr = FATJET_MATCH_DR
                for q in range(n_res):
                    i = res[q]
                    if abs(pid[base + i]) != kind:
                        continue
                    eta, phi = eta_phi(px[base + i], py[base + i], pz[base + i])
                    dr = delta_r(eta, phi, jet_eta[j], jet_phi[j])
                    if dr < best_dr:
                        best_dr = dr
                        r = i
                if r < 0:
                    continue
                if kind == 6:
                    k1, k2 = _two_daughters(base, r, d1, d2)
                    w = -1
                    b = -1
                    for k in (k1, k2):
                        if k >= 0 and abs(pid[base + k]) == 24:
                            w = _last_copy(base, k, pid, d1, d2)
                        elif k >= 0 and _is_quark(pid[base + k]):
                            b = k
                    label = _TOP_OTHERS
                    matched = r
                    if w >= 0 and b >= 0:
                        q1, q2 = _two_daughters(base, w, d1, d2)
                        if q1 >= 0 and q2 >= 0 and _is_quark(pid[base + q1]) and _is_quark(pid[base + q2]):
                            in1 = _inside(base, q1, px, py, pz, jet_eta[j], jet_phi[j])
                            in2 = _inside(base, q2, px, py, pz, jet_eta[j], jet_phi[j])
                            b_in = _inside(base, b, px, py, pz, jet_eta[j], jet_phi[j])
                            has_c = abs(pid[base + q1]) == 4 or abs(pid[base + q2]) == 4
                            if b_in and in1 and in2:
                                label = _TOP_BCQ if has_c else _TOP_BQQ
                            elif b_in and (in1 or in2):
                                inside_q = q1 if in1 else q2
                                label = _TOP_BC if abs(pid[base + inside_q]) == 4 else _TOP_BQ
                            elif in1 and in2:
                                label = _W_CQ if has_c else _W_QQ
                                matched = w
                    break
                q1, q2 = _two_daughters(base, r, d1, d2)
                if q1 < 0 or q2 < 0 or not (_is_quark(pid[base + q1]) and _is_quark(pid[base + q2])):
                    continue
                if not (_inside(base, q1, px, py, pz, jet_eta[j], jet_phi[j])
                        and _inside(base, q2, px, py, pz, jet_eta[j], jet_phi[j])):
                    continue
                a1 = abs(pid[base + q1])
                a2 = abs(pid[base + q2])
                if kind == 24:
                    label = _W_CQ if (a1 == 4 or a2 == 4) else _W_QQ
                elif kind == 23:
                    label = _Z_BB if a1 == 5 else (_Z_CC if a1 == 4 else _Z_QQ)
                elif a1 == 5:
                    label = _H_BB
                elif a1 == 4:
                    label = _H_CC
                else:
                    continue
                matched = r
                break
            if label < 0:
                if n_b[j] >= 2:
                    label = _QCD_BB
                elif n_b[j] == 1:
                    label = _QCD_B
                elif n_c[j] >= 2:
                    label = _QCD_CC
                elif n_c[j] == 1:
                    label = _QCD_C
                else:
                    label = _QCD_OTHERS
            labels[j, label] = 1
            if matched >= 0:
                g = base + matched
                res_pt[j] = np.sqrt(px[g] ** 2 + py[g] ** 2)
                res_mass[j] = np.sqrt(max(e[g] ** 2 - px[g] ** 2 - py[g] ** 2 - pz[g] ** 2, 0.0))
    return labels, n_b, n_c, res_pt, res_mass
