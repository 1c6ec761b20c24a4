"""Per-jet DeepNTuples variables from reconstructed candidates (definitions in docs/reference.md §1, CMS conventions).

Lengths are converted from mm (simulation) to cm (ntuple, as in CMS). Undefined CSV quantities take the CMS
default value ``DEFAULT`` (-999), as in real DeepNTuples files; conversion replaces them.

CMS b-tag track selection for the CSV ("selected") tracks: >= 8 hits, >= 2 pixel hits, normalised chi2 < 5,
|IP2D| < 0.2 cm, |dz| < 17 cm, decay length < 5 cm, distance to the jet axis < 0.07 cm, Delta R < 0.3.
"""

from __future__ import annotations

import numba
import numpy as np

from .detector import (
    C_CHI2, C_E, C_KIND, C_NHITS, C_NPIX, C_PU, C_PX, C_PY, C_PZ, C_Q, C_QUAL, C_SD0, C_SZ0, C_TX, C_TY,
    C_TZ, C_X0, C_Y0, C_Z0, PHOTON, PION_MASS, PV_SIGMA_MM, TRACK,
)
from .vertexing import delta_r, eta_phi, find_vertices, flight, track_weight

DEFAULT = -999.0
MM_TO_CM = 0.1
CHARM_MASS_THRESHOLD = 1.5  # GeV, the CSV "above charm" threshold
CHS_DZ_MM = 3.0  # charged-hadron subtraction: tracks further than this in z from the PV are pileup

# Column layouts of the kernel's outputs (names match the schema after prefixing)
JET_COLUMNS = (
    "jet_pt", "jet_eta", "jet_phi", "jet_mass",
    "TagVarCSV_trackSumJetEtRatio", "TagVarCSV_trackSumJetDeltaR", "TagVarCSV_vertexCategory",
    "TagVarCSV_trackSip2dValAboveCharm", "TagVarCSV_trackSip2dSigAboveCharm",
    "TagVarCSV_trackSip3dValAboveCharm", "TagVarCSV_trackSip3dSigAboveCharm",
    "TagVarCSV_jetNSecondaryVertices", "TagVarCSV_vertexMass", "TagVarCSV_vertexNTracks",
    "TagVarCSV_vertexEnergyRatio", "TagVarCSV_vertexJetDeltaR", "TagVarCSV_flightDistance2dVal",
    "TagVarCSV_flightDistance2dSig", "TagVarCSV_flightDistance3dVal", "TagVarCSV_flightDistance3dSig",
)
CPF_FIELDS = (
    "BtagPf_trackEtaRel", "BtagPf_trackPtRel", "BtagPf_trackPPar", "BtagPf_trackDeltaR",
    "BtagPf_trackPParRatio", "BtagPf_trackSip2dVal", "BtagPf_trackSip2dSig", "BtagPf_trackSip3dVal",
    "BtagPf_trackSip3dSig", "BtagPf_trackJetDistVal", "ptrel", "drminsv", "VTX_ass", "puppiw", "chi2", "quality",
)
CSVTRK_FIELDS = (
    "trackJetDistVal", "trackPtRel", "trackDeltaR", "trackPtRatio", "trackSip3dSig", "trackSip2dSig",
    "trackDecayLenVal",
)
NPF_FIELDS = ("ptrel", "deltaR", "isGamma", "HadFrac", "drminsv", "puppiw")
SV_FIELDS = (
    "pt", "deltaR", "mass", "ntracks", "chi2", "normchi2", "dxy", "dxysig", "d3d", "d3dsig", "costhetasvpv",
    "enratio",
)
N_JET, N_CPF, N_CSVTRK = len(JET_COLUMNS), len(CPF_FIELDS), len(CSVTRK_FIELDS)
N_NPF, N_SV = len(NPF_FIELDS), len(SV_FIELDS)


@numba.njit(cache=True)
def _track_ip(x0, t, pv, j):
    """Signed 2D/3D impact parameters, jet distance (negative, CMS convention) and decay length (mm)."""
    d = x0 - pv
    # 2D: closest transverse approach of the line to the PV
    txy2 = t[0] * t[0] + t[1] * t[1]
    s2 = -(d[0] * t[0] + d[1] * t[1]) / txy2
    c2x = d[0] + s2 * t[0]
    c2y = d[1] + s2 * t[1]
    ip2d = np.sqrt(c2x * c2x + c2y * c2y)
    if c2x * j[0] + c2y * j[1] < 0:
        ip2d = -ip2d
    # 3D
    s3 = -(d @ t)
    c3 = d + s3 * t
    ip3d = np.sqrt(c3 @ c3)
    if c3 @ j < 0:
        ip3d = -ip3d
    # closest approach between the track and the jet axis through the PV
    b = t @ j
    denom = max(1.0 - b * b, 1e-12)
    dd = t @ d
    e = j @ d
    s_star = (b * e - dd) / denom
    u_star = (e - b * dd) / denom
    sep = d + s_star * t - u_star * j
    jet_dist = -np.sqrt(sep @ sep)
    point = d + s_star * t
    decay_len = np.sqrt(point @ point)
    return ip2d, ip3d, jet_dist, decay_len, c3


@numba.njit(cache=True)
def _ip_sigmas(c3, t, sd0, sz0, pv_var):
    """Uncertainties of the 2D and 3D impact parameters (track resolution (+) PV resolution)."""
    s2d = np.sqrt(sd0 * sd0 + pv_var[0])
    n3 = np.sqrt(c3 @ c3)
    if n3 < 1e-12:
        return s2d, np.sqrt(sd0 * sd0 + sz0 * sz0)
    fz = c3[2] / n3
    fxy2 = 1.0 - fz * fz
    s3d = np.sqrt(fxy2 * (sd0 * sd0 + pv_var[0]) + fz * fz * (sz0 * sz0 + pv_var[2]))
    return s2d, s3d


@numba.njit(cache=True)
def compute_jet_features(cand, cand_offsets, const_offsets, const_index, jet_event, jet_p4, pv_reco,
                         has_pileup):
    """All per-jet variables for a batch of jets.

    ``cand`` is the candidate table of :func:`detector.simulate_candidates`; jet ``j`` has constituents
    ``const_index[const_offsets[j]:const_offsets[j+1]]`` (indices into its event's candidates), belongs to
    event ``jet_event[j]`` and has four-momentum ``jet_p4[j]`` (px, py, pz, E).
    Returns ``(jets, cpf, cpf_n, csvtrk, csvtrk_n, etarel, etarel_n, npf, npf_n, sv, sv_n)``: ``jets`` is
    (n_jets, N_JET); every list is (n_objects, n_fields) content with per-jet counts ``*_n``.
    """
    n_jets = jet_p4.shape[0]
    n_const = const_index.shape[0]
    jets = np.full((n_jets, N_JET), DEFAULT)
    cpf = np.zeros((n_const, N_CPF))
    csvtrk = np.zeros((n_const, N_CSVTRK))
    etarel = np.zeros(n_const)
    npf = np.zeros((n_const, N_NPF))
    sv = np.zeros((n_const, N_SV))
    cpf_n = np.zeros(n_jets, np.int32)
    csvtrk_n = np.zeros(n_jets, np.int32)
    etarel_n = np.zeros(n_jets, np.int32)
    npf_n = np.zeros(n_jets, np.int32)
    sv_n = np.zeros(n_jets, np.int32)
    k_cpf = 0
    k_csv = 0
    k_eta = 0
    k_npf = 0
    k_sv = 0
    pv_var = PV_SIGMA_MM * PV_SIGMA_MM
    for jj in range(n_jets):
        ev = jet_event[jj]
        base = cand_offsets[ev]
        pv = pv_reco[ev]
        jpx, jpy, jpz, je = jet_p4[jj, 0], jet_p4[jj, 1], jet_p4[jj, 2], jet_p4[jj, 3]
        jpt = np.sqrt(jpx * jpx + jpy * jpy)
        jp = np.sqrt(jpt * jpt + jpz * jpz)
        jvec = np.array([jpx, jpy, jpz]) / jp
        jeta, jphi = eta_phi(jpx, jpy, jpz)
        jets[jj, 0] = jpt
        jets[jj, 1] = jeta
        jets[jj, 2] = jphi
        jets[jj, 3] = np.sqrt(max(je * je - jp * jp, 0.0))
        c0 = const_offsets[jj]
        c1 = const_offsets[jj + 1]
        # split constituents into tracks and neutrals
        n_trk = 0
        n_neu = 0
        for c in range(c0, c1):
            if cand[C_KIND, base + const_index[c]] == TRACK:
                n_trk += 1
            else:
                n_neu += 1
        trk = np.empty(n_trk, np.int64)
        neu = np.empty(n_neu, np.int64)
        a = 0
        b = 0
        for c in range(c0, c1):
            g = base + const_index[c]
            if cand[C_KIND, g] == TRACK:
                trk[a] = g
                a += 1
            else:
                neu[b] = g
                b += 1
        # per-track quantities
        points = np.empty((n_trk, 3))
        dirs = np.empty((n_trk, 3))
        weights = np.empty((n_trk, 3, 3))
        p4s = np.empty((n_trk, 4))
        charges = np.empty(n_trk)
        ip2 = np.empty(n_trk)
        ip2s = np.empty(n_trk)
        ip3 = np.empty(n_trk)
        ip3s = np.empty(n_trk)
        jdist = np.empty(n_trk)
        dlen = np.empty(n_trk)
        dz = np.empty(n_trk)
        for a in range(n_trk):
            g = trk[a]
            x0 = np.array([cand[C_X0, g], cand[C_Y0, g], cand[C_Z0, g]])
            t = np.array([cand[C_TX, g], cand[C_TY, g], cand[C_TZ, g]])
            points[a] = x0
            dirs[a] = t
            weights[a] = track_weight(t[0], t[1], t[2], cand[C_SD0, g], cand[C_SZ0, g])
            p4s[a, 0] = cand[C_PX, g]
            p4s[a, 1] = cand[C_PY, g]
            p4s[a, 2] = cand[C_PZ, g]
            p4s[a, 3] = cand[C_E, g]
            charges[a] = cand[C_Q, g]
            i2, i3, jd, dl, c3 = _track_ip(x0, t, pv, jvec)
            s2, s3 = _ip_sigmas(c3, t, cand[C_SD0, g], cand[C_SZ0, g], pv_var)
            ip2[a] = i2
            ip3[a] = i3
            ip2s[a] = i2 / s2
            ip3s[a] = i3 / s3
            jdist[a] = jd
            dlen[a] = dl
            dz[a] = x0[2] - pv[2]
        # secondary vertices
        assign, vpos, vcov, vchi2 = find_vertices(points, dirs, weights, p4s, charges, np.abs(ip3), np.abs(ip3s),
                                                  pv, pv_var, jeta, jphi)
        n_vtx = vpos.shape[0]
        v_eta = np.empty(n_vtx)
        v_phi = np.empty(n_vtx)
        v_sig = np.empty(n_vtx)
        v_rows = np.empty((n_vtx, N_SV))
        for v in range(n_vtx):
            f = vpos[v] - pv
            v_eta[v], v_phi[v] = eta_phi(f[0], f[1], f[2])
            dxy, sxy, d3d, s3d = flight(vpos[v], vcov[v], pv, pv_var)
            spx = 0.0
            spy = 0.0
            spz = 0.0
            se = 0.0
            ntrk = 0
            for a in range(n_trk):
                if assign[a] == v:
                    spx += p4s[a, 0]
                    spy += p4s[a, 1]
                    spz += p4s[a, 2]
                    se += p4s[a, 3]
                    ntrk += 1
            sp = np.sqrt(spx * spx + spy * spy + spz * spz)
            v_rows[v, 0] = np.sqrt(spx * spx + spy * spy)
            v_rows[v, 1] = delta_r(v_eta[v], v_phi[v], jeta, jphi)
            v_rows[v, 2] = np.sqrt(max(se * se - sp * sp, 0.0))
            v_rows[v, 3] = ntrk
            v_rows[v, 4] = vchi2[v]
            v_rows[v, 5] = vchi2[v] / max(2 * ntrk - 3, 1)
            v_rows[v, 6] = dxy * MM_TO_CM
            v_rows[v, 7] = dxy / sxy
            v_rows[v, 8] = d3d * MM_TO_CM
            v_rows[v, 9] = d3d / s3d
            v_rows[v, 10] = (f[0] * spx + f[1] * spy + f[2] * spz) / max(np.sqrt(f @ f) * sp, 1e-12)
            v_rows[v, 11] = se / je
            v_sig[v] = dxy / sxy
        sv_order = np.argsort(-v_sig)
        for v in sv_order:
            sv[k_sv] = v_rows[v]
            k_sv += 1
        sv_n[jj] = n_vtx

        # charged candidates
        track_rows = np.empty((n_trk, N_CPF))
        pv_assoc = np.zeros(n_trk, np.bool_)
        for a in range(n_trk):
            g = trk[a]
            px, py, pz = p4s[a, 0], p4s[a, 1], p4s[a, 2]
            p = np.sqrt(px * px + py * py + pz * pz)
            pt = np.sqrt(px * px + py * py)
            ppar = (px * jvec[0] + py * jvec[1] + pz * jvec[2])
            ptrel_v = np.sqrt(max(p * p - ppar * ppar, 0.0))
            teta, tphi = eta_phi(px, py, pz)
            dr_sv = 0.4
            for v in range(n_vtx):
                dr_sv = min(dr_sv, delta_r(teta, tphi, v_eta[v], v_phi[v]))
            sdz = np.sqrt(cand[C_SZ0, g] ** 2 + pv_var[2])
            dz_sig = abs(dz[a]) / sdz
            if dz_sig < 3.0 and abs(ip3s[a]) < 3.0:
                vtx_ass = 7.0
            elif dz_sig < 5.0 and abs(ip3s[a]) < 5.0:
                vtx_ass = 6.0
            elif abs(dz[a]) < 3.0:
                vtx_ass = 5.0
            elif cand[C_PU, g] > 0:
                vtx_ass = 0.0  # belongs to another (pileup) vertex
            else:
                vtx_ass = 1.0
            pv_assoc[a] = vtx_ass >= 5.0
            ratio = min(max((p + ppar) / max(p - ppar, 1e-9), 1e-9), 1e18)
            track_rows[a, 0] = 0.5 * np.log(ratio)
            track_rows[a, 1] = ptrel_v
            track_rows[a, 2] = ppar
            track_rows[a, 3] = delta_r(teta, tphi, jeta, jphi)
            track_rows[a, 4] = ppar / jp
            track_rows[a, 5] = ip2[a] * MM_TO_CM
            track_rows[a, 6] = ip2s[a]
            track_rows[a, 7] = ip3[a] * MM_TO_CM
            track_rows[a, 8] = ip3s[a]
            track_rows[a, 9] = jdist[a] * MM_TO_CM
            track_rows[a, 10] = pt / jpt
            track_rows[a, 11] = dr_sv
            track_rows[a, 12] = vtx_ass
            track_rows[a, 13] = 1.0 if pv_assoc[a] else 0.0
            track_rows[a, 14] = cand[C_CHI2, g]
            track_rows[a, 15] = cand[C_QUAL, g]
        cpf_order = np.argsort(-ip2s)  # CMS DeepJet ordering: decreasing 2D IP significance
        for a in cpf_order:
            cpf[k_cpf] = track_rows[a]
            k_cpf += 1
        cpf_n[jj] = n_trk

        # CSV selected tracks
        selected = np.zeros(n_trk, np.bool_)
        for a in range(n_trk):
            g = trk[a]
            selected[a] = (cand[C_NHITS, g] >= 8 and cand[C_NPIX, g] >= 2 and cand[C_CHI2, g] < 5.0
                           and abs(ip2[a]) < 2.0 and abs(dz[a]) < 170.0 and dlen[a] < 50.0
                           and abs(jdist[a]) < 0.7 and track_rows[a, 3] < 0.3)
        n_sel = 0
        sum_px = 0.0
        sum_py = 0.0
        sum_pz = 0.0
        sum_et = 0.0
        sel_energy = 0.0
        for a in cpf_order:
            if not selected[a]:
                continue
            p = np.sqrt(p4s[a, 0] ** 2 + p4s[a, 1] ** 2 + p4s[a, 2] ** 2)
            csvtrk[k_csv, 0] = track_rows[a, 9]
            csvtrk[k_csv, 1] = track_rows[a, 1]
            csvtrk[k_csv, 2] = track_rows[a, 3]
            csvtrk[k_csv, 3] = track_rows[a, 1] / p
            csvtrk[k_csv, 4] = ip3s[a]
            csvtrk[k_csv, 5] = ip2s[a]
            csvtrk[k_csv, 6] = dlen[a] * MM_TO_CM
            k_csv += 1
            n_sel += 1
            sum_px += p4s[a, 0]
            sum_py += p4s[a, 1]
            sum_pz += p4s[a, 2]
            sum_et += np.sqrt(p4s[a, 0] ** 2 + p4s[a, 1] ** 2)
            sel_energy += p4s[a, 3]
        csvtrk_n[jj] = n_sel
        jets[jj, 4] = sum_et / jpt
        if n_sel > 0:
            seta, sphi = eta_phi(sum_px, sum_py, sum_pz)
            jets[jj, 5] = delta_r(seta, sphi, jeta, jphi)
        else:
            jets[jj, 5] = 0.1
        # above charm: walk selected tracks in decreasing 2D IP significance
        ex = 0.0
        mx = 0.0
        my = 0.0
        mz = 0.0
        for a in cpf_order:
            if not selected[a]:
                continue
            mx += p4s[a, 0]
            my += p4s[a, 1]
            mz += p4s[a, 2]
            ex += np.sqrt(p4s[a, 0] ** 2 + p4s[a, 1] ** 2 + p4s[a, 2] ** 2 + PION_MASS ** 2)
            if np.sqrt(max(ex * ex - mx * mx - my * my - mz * mz, 0.0)) > CHARM_MASS_THRESHOLD:
                jets[jj, 7] = ip2[a] * MM_TO_CM
                jets[jj, 8] = ip2s[a]
                jets[jj, 9] = ip3[a] * MM_TO_CM
                jets[jj, 10] = ip3s[a]
                break
        # vertex category and vertex variables
        jets[jj, 11] = n_vtx
        vtx_tracks = np.zeros(n_trk, np.bool_)
        if n_vtx > 0:
            jets[jj, 6] = 0
            first = sv_order[0]
            for a in range(n_trk):
                vtx_tracks[a] = assign[a] >= 0
            jets[jj, 16] = v_rows[first, 6]
            jets[jj, 17] = v_rows[first, 7]
            jets[jj, 18] = v_rows[first, 8]
            jets[jj, 19] = v_rows[first, 9]
        else:
            n_pseudo = 0
            for a in range(n_trk):
                if selected[a] and ip2s[a] > 2.0:
                    vtx_tracks[a] = True
                    n_pseudo += 1
            if n_pseudo >= 2:
                jets[jj, 6] = 1
            else:
                jets[jj, 6] = 2
                vtx_tracks[:] = False
        if jets[jj, 6] < 2:
            vx = 0.0
            vy = 0.0
            vz = 0.0
            ve = 0.0
            nvt = 0
            for a in range(n_trk):
                if vtx_tracks[a]:
                    vx += p4s[a, 0]
                    vy += p4s[a, 1]
                    vz += p4s[a, 2]
                    ve += p4s[a, 3]
                    nvt += 1
                    etarel[k_eta] = track_rows[a, 0]
                    k_eta += 1
            etarel_n[jj] = nvt
            etarel[k_eta - nvt:k_eta] = np.sort(etarel[k_eta - nvt:k_eta])
            jets[jj, 12] = np.sqrt(max(ve * ve - vx * vx - vy * vy - vz * vz, 0.0))
            jets[jj, 13] = nvt
            jets[jj, 14] = ve / sel_energy if sel_energy > 0 else 0.0
            veta, vphi = eta_phi(vx, vy, vz)
            jets[jj, 15] = delta_r(veta, vphi, jeta, jphi)

        # neutral candidates, by decreasing pT fraction
        neu_rows = np.empty((n_neu, N_NPF))
        neu_pt = np.empty(n_neu)
        for b in range(n_neu):
            g = neu[b]
            px, py, pz = cand[C_PX, g], cand[C_PY, g], cand[C_PZ, g]
            pt = np.sqrt(px * px + py * py)
            neta, nphi = eta_phi(px, py, pz)
            dr_sv = 0.4
            for v in range(n_vtx):
                dr_sv = min(dr_sv, delta_r(neta, nphi, v_eta[v], v_phi[v]))
            is_gamma = cand[C_KIND, g] == PHOTON
            w = 1.0
            if has_pileup:
                # PUPPI-like: share of nearby charged pT that comes from the primary vertex
                # (all tracks of the event, including those removed from the jets by CHS)
                a_pv = 0.0
                a_pu = 0.0
                for t in range(cand_offsets[ev], cand_offsets[ev + 1]):
                    if cand[C_KIND, t] != TRACK:
                        continue
                    tp_eta, tp_phi = eta_phi(cand[C_PX, t], cand[C_PY, t], cand[C_PZ, t])
                    if delta_r(neta, nphi, tp_eta, tp_phi) < 0.3:
                        tpt = np.sqrt(cand[C_PX, t] ** 2 + cand[C_PY, t] ** 2)
                        if abs(cand[C_Z0, t] - pv[2]) < CHS_DZ_MM:
                            a_pv += tpt
                        else:
                            a_pu += tpt
                w = a_pv / (a_pv + a_pu) if a_pv + a_pu > 0 else 0.5
            neu_rows[b, 0] = pt / jpt
            neu_rows[b, 1] = delta_r(neta, nphi, jeta, jphi)
            neu_rows[b, 2] = 1.0 if is_gamma else 0.0
            neu_rows[b, 3] = 0.0 if is_gamma else 1.0
            neu_rows[b, 4] = dr_sv
            neu_rows[b, 5] = w
            neu_pt[b] = pt
        for b in np.argsort(-neu_pt):
            npf[k_npf] = neu_rows[b]
            k_npf += 1
        npf_n[jj] = n_neu
    return (jets, cpf[:k_cpf], cpf_n, csvtrk[:k_csv], csvtrk_n, etarel[:k_eta], etarel_n, npf[:k_npf], npf_n,
            sv[:k_sv], sv_n)


@numba.njit(cache=True)
def chs_keep(cand, cand_offsets, pv_reco):
    """Charged-hadron subtraction: mask of candidates to cluster, without tracks far in z from the PV."""
    keep = np.ones(cand.shape[1], np.bool_)
    for ev in range(cand_offsets.shape[0] - 1):
        for g in range(cand_offsets[ev], cand_offsets[ev + 1]):
            if cand[C_KIND, g] == TRACK and abs(cand[C_Z0, g] - pv_reco[ev, 2]) > CHS_DZ_MM:
                keep[g] = False
    return keep
