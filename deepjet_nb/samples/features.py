"""Per-jet DeepNTuples variables from reconstructed candidates (definitions in docs/reference.md §1, CMS conventions).

Lengths are converted from mm (simulation) to cm (ntuple, as in CMS). Undefined CSV quantities take the CMS
default value ``DEFAULT`` (-999), as in real DeepNTuples files; conversion replaces them.

CMS b-tag track selection for the CSV ("selected") tracks: >= 8 hits, >= 2 pixel hits, normalised chi2 < 5,
|IP2D| < 0.2 cm, |dz| < 17 cm, decay length < 5 cm, distance to the jet axis < 0.07 cm, Delta R < 0.3.

:func:`compute_jet_features` loops over jets and calls one ``@njit`` helper per object list (tracks, secondary
vertices, charged candidates, CSV tracks, neutral candidates) and per group of jet variables. Output columns
are addressed by named indices (``J_*``, ``CP_*``, ``CT_*``, ``NE_*``, ``SV_*``) derived from the branch names
in :mod:`deepjet_nb.schema`, so the column layouts have one source.
"""

from __future__ import annotations

import numba
import numpy as np

from .. import schema
from .detector import (
    C_CHI2, C_E, C_KIND, C_NHITS, C_NPIX, C_PX, C_PY, C_PZ, C_Q, C_QUAL, C_SD0, C_SZ0, C_TX, C_TY,
    C_TZ, C_X0, C_Y0, C_Z0, PHOTON, PION_MASS, PV_SIGMA_MM, TRACK,
)
from .vertexing import delta_r, eta_phi, find_vertices, flight, track_weight

DEFAULT = -999.0
MM_TO_CM = 0.1
CHARM_MASS_THRESHOLD = 1.5  # GeV, the CSV "above charm" threshold
CHS_DZ_MM = 3.0  # charged-hadron subtraction: tracks further than this in z from the PV are pileup
SV_DR_DEFAULT = 0.4  # drminsv of a candidate in a jet without secondary vertex (CMS)
PSEUDO_SIP2D_SIG = 2.0  # pseudo vertex: >= 2 selected tracks above this 2D IP significance
PUPPI_CONE = 0.3  # cone of charged tracks around a neutral candidate for its PUPPI-like weight

_OBJECTS = {objects.record: objects for objects in schema.OBJECT_LISTS}

# Column layouts of the kernel's outputs, from the schema: the jet table holds the kinematics and the CSV
# scalars that are not object counters (those come from the list lengths); each list holds its record's fields.
JET_COLUMNS = schema.KINEMATICS[:4] + tuple(c for c in schema.CSV_SCALARS if c not in schema.COUNTERS.values())
CPF_FIELDS = _OBJECTS["Cpfcan"].fields
CSVTRK_FIELDS = _OBJECTS["TagVarCSVTrk"].fields
NPF_FIELDS = _OBJECTS["Npfcan"].fields
SV_FIELDS = _OBJECTS["sv"].fields
N_JET, N_CPF, N_CSVTRK = len(JET_COLUMNS), len(CPF_FIELDS), len(CSVTRK_FIELDS)
N_NPF, N_SV = len(NPF_FIELDS), len(SV_FIELDS)

# Named column indices (module-level integers are compile-time constants in numba).
_jet = JET_COLUMNS.index
J_PT, J_ETA, J_PHI, J_MASS = _jet("jet_pt"), _jet("jet_eta"), _jet("jet_phi"), _jet("jet_mass")
J_SUM_ET_RATIO = _jet("TagVarCSV_trackSumJetEtRatio")
J_SUM_DR = _jet("TagVarCSV_trackSumJetDeltaR")
J_VTX_CATEGORY = _jet("TagVarCSV_vertexCategory")
J_SIP2D_VAL_AC = _jet("TagVarCSV_trackSip2dValAboveCharm")
J_SIP2D_SIG_AC = _jet("TagVarCSV_trackSip2dSigAboveCharm")
J_SIP3D_VAL_AC = _jet("TagVarCSV_trackSip3dValAboveCharm")
J_SIP3D_SIG_AC = _jet("TagVarCSV_trackSip3dSigAboveCharm")
J_NSV = _jet("TagVarCSV_jetNSecondaryVertices")
J_VTX_MASS = _jet("TagVarCSV_vertexMass")
J_VTX_NTRACKS = _jet("TagVarCSV_vertexNTracks")
J_VTX_ENERGY_RATIO = _jet("TagVarCSV_vertexEnergyRatio")
J_VTX_DR = _jet("TagVarCSV_vertexJetDeltaR")
J_FD2D_VAL = _jet("TagVarCSV_flightDistance2dVal")
J_FD2D_SIG = _jet("TagVarCSV_flightDistance2dSig")
J_FD3D_VAL = _jet("TagVarCSV_flightDistance3dVal")
J_FD3D_SIG = _jet("TagVarCSV_flightDistance3dSig")

_cpf = CPF_FIELDS.index
CP_ETAREL, CP_PTREL, CP_PPAR = _cpf("BtagPf_trackEtaRel"), _cpf("BtagPf_trackPtRel"), _cpf("BtagPf_trackPPar")
CP_DR, CP_PPAR_RATIO = _cpf("BtagPf_trackDeltaR"), _cpf("BtagPf_trackPParRatio")
CP_SIP2D_VAL, CP_SIP2D_SIG = _cpf("BtagPf_trackSip2dVal"), _cpf("BtagPf_trackSip2dSig")
CP_SIP3D_VAL, CP_SIP3D_SIG = _cpf("BtagPf_trackSip3dVal"), _cpf("BtagPf_trackSip3dSig")
CP_JETDIST, CP_PT_FRACTION, CP_DRMINSV = _cpf("BtagPf_trackJetDistVal"), _cpf("ptrel"), _cpf("drminsv")
CP_VTX_ASS, CP_PUPPIW, CP_CHI2, CP_QUALITY = _cpf("VTX_ass"), _cpf("puppiw"), _cpf("chi2"), _cpf("quality")

_csv = CSVTRK_FIELDS.index
CT_JETDIST, CT_PTREL, CT_DR = _csv("trackJetDistVal"), _csv("trackPtRel"), _csv("trackDeltaR")
CT_PTRATIO, CT_SIP3D_SIG, CT_SIP2D_SIG = _csv("trackPtRatio"), _csv("trackSip3dSig"), _csv("trackSip2dSig")
CT_DECAYLEN = _csv("trackDecayLenVal")

_npf = NPF_FIELDS.index
NE_PT_FRACTION, NE_DR, NE_IS_GAMMA = _npf("ptrel"), _npf("deltaR"), _npf("isGamma")
NE_HAD_FRAC, NE_DRMINSV, NE_PUPPIW = _npf("HadFrac"), _npf("drminsv"), _npf("puppiw")

_sv = SV_FIELDS.index
SV_PT, SV_DR, SV_MASS, SV_NTRACKS = _sv("pt"), _sv("deltaR"), _sv("mass"), _sv("ntracks")
SV_CHI2, SV_NORMCHI2, SV_DXY, SV_DXYSIG = _sv("chi2"), _sv("normchi2"), _sv("dxy"), _sv("dxysig")
SV_D3D, SV_D3DSIG, SV_COSTHETA, SV_ENRATIO = _sv("d3d"), _sv("d3dsig"), _sv("costhetasvpv"), _sv("enratio")
del _jet, _cpf, _csv, _npf, _sv


@numba.njit(cache=True)
def compute_jet_features(cand, cand_offsets, const_offsets, const_index, jet_event, jet_p4, pv_reco,
                         has_pileup):
    """All per-jet variables for a batch of jets.

    ``cand`` is the candidate table of :func:`detector.simulate_candidates`; jet ``j`` has constituents
    ``const_index[const_offsets[j]:const_offsets[j+1]]`` (indices into its event's candidates), belongs to
    event ``jet_event[j]`` and has four-momentum ``jet_p4[j]`` (px, py, pz, E).
    Returns ``(jets, cpf, cpf_n, csvtrk, csvtrk_n, etarel, etarel_n, npf, npf_n, sv, sv_n)``: ``jets`` is
    (n_jets, N_JET) with columns ``JET_COLUMNS``; every list is (n_objects, n_fields) content with per-jet
    counts ``*_n``, columns in the schema's field order.
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
        pv = pv_reco[ev]
        row = jets[jj]
        jvec, jp, jpt, jeta, jphi, je = _jet_kinematics(jet_p4[jj], row)
        trk, neu = _split_constituents(cand, cand_offsets[ev], const_index, const_offsets[jj],
                                       const_offsets[jj + 1])
        (points, dirs, weights, p4s, charges, ip2, ip2s, ip3, ip3s, jdist, dlen, dz) = _track_table(
            cand, trk, pv, jvec, pv_var)

        assign, vpos, vcov, vchi2 = find_vertices(points, dirs, weights, p4s, charges, np.abs(ip3), np.abs(ip3s),
                                                  pv, pv_var, jeta, jphi)
        n_vtx = vpos.shape[0]
        v_rows, v_eta, v_phi, v_sig = _vertex_rows(vpos, vcov, vchi2, assign, p4s, pv, pv_var, jeta, jphi, je)
        sv_order = np.argsort(-v_sig)  # CMS ordering: decreasing 2D flight-distance significance
        for v in sv_order:
            sv[k_sv] = v_rows[v]
            k_sv += 1
        sv_n[jj] = n_vtx

        track_rows = _charged_rows(cand, trk, p4s, ip2, ip2s, ip3, ip3s, jdist, dz, jvec, jp, jpt, jeta, jphi,
                                   v_eta, v_phi, pv_var)
        cpf_order = np.argsort(-ip2s)  # CMS DeepJet ordering: decreasing 2D IP significance
        for a in cpf_order:
            cpf[k_cpf] = track_rows[a]
            k_cpf += 1
        cpf_n[jj] = trk.shape[0]

        selected = _csv_selected(cand, trk, ip2, dz, dlen, jdist, track_rows)
        n_sel, sel_energy = _csv_tracks(selected, cpf_order, p4s, ip2s, ip3s, dlen, track_rows, jpt, jeta, jphi,
                                        row, csvtrk[k_csv:])
        k_csv += n_sel
        csvtrk_n[jj] = n_sel
        _above_charm(selected, cpf_order, p4s, ip2, ip2s, ip3, ip3s, row)
        n_eta = _vertex_variables(n_vtx, sv_order, v_rows, assign, selected, ip2s, track_rows, p4s, sel_energy,
                                  jeta, jphi, row, etarel[k_eta:])
        k_eta += n_eta
        etarel_n[jj] = n_eta

        neu_rows, neu_pt = _neutral_rows(cand, neu, cand_offsets[ev], cand_offsets[ev + 1], pv, jpt, jeta, jphi,
                                         v_eta, v_phi, has_pileup)
        for b in _neutral_order(neu_rows[:, NE_DRMINSV], neu_pt):
            npf[k_npf] = neu_rows[b]
            k_npf += 1
        npf_n[jj] = neu.shape[0]
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


# ---------------------------------------------------------------------------------------------- jet helpers


@numba.njit(cache=True)
def _jet_kinematics(p4, row):
    """Fill the kinematic columns of one jet's ``row``; return its unit axis, |p|, pT, eta, phi and E."""
    jpx, jpy, jpz, je = p4[0], p4[1], p4[2], p4[3]
    jpt = np.sqrt(jpx * jpx + jpy * jpy)
    jp = np.sqrt(jpt * jpt + jpz * jpz)
    jvec = np.array([jpx, jpy, jpz]) / jp
    jeta, jphi = eta_phi(jpx, jpy, jpz)
    row[J_PT] = jpt
    row[J_ETA] = jeta
    row[J_PHI] = jphi
    row[J_MASS] = np.sqrt(max(je * je - jp * jp, 0.0))
    return jvec, jp, jpt, jeta, jphi, je


@numba.njit(cache=True)
def _split_constituents(cand, base, const_index, c0, c1):
    """Candidate-table indices of a jet's tracks and of its neutral candidates, in constituent order."""
    n_trk = 0
    for c in range(c0, c1):
        if cand[C_KIND, base + const_index[c]] == TRACK:
            n_trk += 1
    trk = np.empty(n_trk, np.int64)
    neu = np.empty(c1 - c0 - n_trk, np.int64)
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
    return trk, neu


# -------------------------------------------------------------------------------------------- track helpers


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
def _track_table(cand, trk, pv, jvec, pv_var):
    """Per-track inputs of the vertex finder and impact parameters relative to the reconstructed PV (mm).

    Returns ``(points, dirs, weights, p4s, charges, ip2, ip2s, ip3, ip3s, jdist, dlen, dz)``.
    """
    n_trk = trk.shape[0]
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
    return points, dirs, weights, p4s, charges, ip2, ip2s, ip3, ip3s, jdist, dlen, dz


@numba.njit(cache=True)
def _min_dr_to_vertices(eta, phi, v_eta, v_phi):
    """Smallest Delta R between a direction and the flight directions of the jet's vertices (0.4 if none)."""
    dr_sv = SV_DR_DEFAULT
    for v in range(v_eta.shape[0]):
        dr_sv = min(dr_sv, delta_r(eta, phi, v_eta[v], v_phi[v]))
    return dr_sv


@numba.njit(cache=True)
def _vertex_association(dz, sdz, ip3s):
    """CMS-like PV association quality from reconstructed quantities only (7 = compatible with the PV fit,
    6 = loosely compatible, 5 = close in z, 1 = not associated); never from the generator's vertex index."""
    dz_sig = abs(dz) / sdz
    if dz_sig < 3.0 and abs(ip3s) < 3.0:
        return 7.0
    if dz_sig < 5.0 and abs(ip3s) < 5.0:
        return 6.0
    if abs(dz) < CHS_DZ_MM:
        return 5.0
    return 1.0


@numba.njit(cache=True)
def _charged_rows(cand, trk, p4s, ip2, ip2s, ip3, ip3s, jdist, dz, jvec, jp, jpt, jeta, jphi, v_eta, v_phi,
                  pv_var):
    """One row of ``CPF_FIELDS`` per track, in track order."""
    n_trk = trk.shape[0]
    rows = np.empty((n_trk, N_CPF))
    for a in range(n_trk):
        g = trk[a]
        px, py, pz = p4s[a, 0], p4s[a, 1], p4s[a, 2]
        p = np.sqrt(px * px + py * py + pz * pz)
        pt = np.sqrt(px * px + py * py)
        ppar = (px * jvec[0] + py * jvec[1] + pz * jvec[2])
        teta, tphi = eta_phi(px, py, pz)
        sdz = np.sqrt(cand[C_SZ0, g] ** 2 + pv_var[2])
        vtx_ass = _vertex_association(dz[a], sdz, ip3s[a])
        ratio = min(max((p + ppar) / max(p - ppar, 1e-9), 1e-9), 1e18)
        rows[a, CP_ETAREL] = 0.5 * np.log(ratio)
        rows[a, CP_PTREL] = np.sqrt(max(p * p - ppar * ppar, 0.0))
        rows[a, CP_PPAR] = ppar
        rows[a, CP_DR] = delta_r(teta, tphi, jeta, jphi)
        rows[a, CP_PPAR_RATIO] = ppar / jp
        rows[a, CP_SIP2D_VAL] = ip2[a] * MM_TO_CM
        rows[a, CP_SIP2D_SIG] = ip2s[a]
        rows[a, CP_SIP3D_VAL] = ip3[a] * MM_TO_CM
        rows[a, CP_SIP3D_SIG] = ip3s[a]
        rows[a, CP_JETDIST] = jdist[a] * MM_TO_CM
        rows[a, CP_PT_FRACTION] = pt / jpt
        rows[a, CP_DRMINSV] = _min_dr_to_vertices(teta, tphi, v_eta, v_phi)
        rows[a, CP_VTX_ASS] = vtx_ass
        rows[a, CP_PUPPIW] = 1.0 if vtx_ass >= 5.0 else 0.0
        rows[a, CP_CHI2] = cand[C_CHI2, g]
        rows[a, CP_QUALITY] = cand[C_QUAL, g]
    return rows


# ---------------------------------------------------------------------------------------- CSV-track helpers


@numba.njit(cache=True)
def _csv_selected(cand, trk, ip2, dz, dlen, jdist, track_rows):
    """Mask of the tracks passing the CMS b-tag track selection (module docstring; lengths in mm here)."""
    n_trk = trk.shape[0]
    selected = np.zeros(n_trk, np.bool_)
    for a in range(n_trk):
        g = trk[a]
        selected[a] = (cand[C_NHITS, g] >= 8 and cand[C_NPIX, g] >= 2 and cand[C_CHI2, g] < 5.0
                       and abs(ip2[a]) < 2.0 and abs(dz[a]) < 170.0 and dlen[a] < 50.0
                       and abs(jdist[a]) < 0.7 and track_rows[a, CP_DR] < 0.3)
    return selected


@numba.njit(cache=True)
def _csv_tracks(selected, cpf_order, p4s, ip2s, ip3s, dlen, track_rows, jpt, jeta, jphi, row, out):
    """Write the selected tracks' ``CSVTRK_FIELDS`` rows into ``out`` (in charged-candidate order) and the
    track-sum jet variables into ``row``; return the number of selected tracks and their summed energy."""
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
        out[n_sel, CT_JETDIST] = track_rows[a, CP_JETDIST]
        out[n_sel, CT_PTREL] = track_rows[a, CP_PTREL]
        out[n_sel, CT_DR] = track_rows[a, CP_DR]
        out[n_sel, CT_PTRATIO] = track_rows[a, CP_PTREL] / p
        out[n_sel, CT_SIP3D_SIG] = ip3s[a]
        out[n_sel, CT_SIP2D_SIG] = ip2s[a]
        out[n_sel, CT_DECAYLEN] = dlen[a] * MM_TO_CM
        n_sel += 1
        sum_px += p4s[a, 0]
        sum_py += p4s[a, 1]
        sum_pz += p4s[a, 2]
        sum_et += np.sqrt(p4s[a, 0] ** 2 + p4s[a, 1] ** 2)
        sel_energy += p4s[a, 3]
    row[J_SUM_ET_RATIO] = sum_et / jpt
    if n_sel > 0:
        seta, sphi = eta_phi(sum_px, sum_py, sum_pz)
        row[J_SUM_DR] = delta_r(seta, sphi, jeta, jphi)
    else:
        row[J_SUM_DR] = 0.1
    return n_sel, sel_energy


@numba.njit(cache=True)
def _above_charm(selected, cpf_order, p4s, ip2, ip2s, ip3, ip3s, row):
    """CSV "above charm" IPs: walking selected tracks in decreasing 2D IP significance, those of the first
    track that lifts the summed mass (pion hypothesis) above the charm threshold; defaults when none does."""
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
            row[J_SIP2D_VAL_AC] = ip2[a] * MM_TO_CM
            row[J_SIP2D_SIG_AC] = ip2s[a]
            row[J_SIP3D_VAL_AC] = ip3[a] * MM_TO_CM
            row[J_SIP3D_SIG_AC] = ip3s[a]
            return


# ------------------------------------------------------------------------------------------- vertex helpers


@numba.njit(cache=True)
def _vertex_rows(vpos, vcov, vchi2, assign, p4s, pv, pv_var, jeta, jphi, je):
    """One row of ``SV_FIELDS`` per vertex found, with each flight direction (eta, phi) and 2D flight
    significance (the sort key)."""
    n_vtx = vpos.shape[0]
    v_eta = np.empty(n_vtx)
    v_phi = np.empty(n_vtx)
    v_sig = np.empty(n_vtx)
    rows = np.empty((n_vtx, N_SV))
    for v in range(n_vtx):
        f = vpos[v] - pv
        v_eta[v], v_phi[v] = eta_phi(f[0], f[1], f[2])
        dxy, sxy, d3d, s3d = flight(vpos[v], vcov[v], pv, pv_var)
        spx = 0.0
        spy = 0.0
        spz = 0.0
        se = 0.0
        ntrk = 0
        for a in range(assign.shape[0]):
            if assign[a] == v:
                spx += p4s[a, 0]
                spy += p4s[a, 1]
                spz += p4s[a, 2]
                se += p4s[a, 3]
                ntrk += 1
        sp = np.sqrt(spx * spx + spy * spy + spz * spz)
        rows[v, SV_PT] = np.sqrt(spx * spx + spy * spy)
        rows[v, SV_DR] = delta_r(v_eta[v], v_phi[v], jeta, jphi)
        rows[v, SV_MASS] = np.sqrt(max(se * se - sp * sp, 0.0))
        rows[v, SV_NTRACKS] = ntrk
        rows[v, SV_CHI2] = vchi2[v]
        rows[v, SV_NORMCHI2] = vchi2[v] / max(2 * ntrk - 3, 1)
        rows[v, SV_DXY] = dxy * MM_TO_CM
        rows[v, SV_DXYSIG] = dxy / sxy
        rows[v, SV_D3D] = d3d * MM_TO_CM
        rows[v, SV_D3DSIG] = d3d / s3d
        rows[v, SV_COSTHETA] = (f[0] * spx + f[1] * spy + f[2] * spz) / max(np.sqrt(f @ f) * sp, 1e-12)
        rows[v, SV_ENRATIO] = se / je
        v_sig[v] = dxy / sxy
    return rows, v_eta, v_phi, v_sig


@numba.njit(cache=True)
def _vertex_variables(n_vtx, sv_order, v_rows, assign, selected, ip2s, track_rows, p4s, sel_energy, jeta, jphi,
                      row, etarel_out):
    """CSV vertex category and vertex variables of one jet into ``row``; the vertex tracks' eta_rel, sorted,
    into ``etarel_out``. Category 0: reconstructed vertex (flight distances of the most significant one);
    1: pseudo vertex (>= 2 selected tracks with Sip2dSig > 2); 2: none. Returns the number of vertex tracks."""
    n_trk = assign.shape[0]
    row[J_NSV] = n_vtx
    vtx_tracks = np.zeros(n_trk, np.bool_)
    if n_vtx > 0:
        row[J_VTX_CATEGORY] = 0
        first = sv_order[0]
        for a in range(n_trk):
            vtx_tracks[a] = assign[a] >= 0
        row[J_FD2D_VAL] = v_rows[first, SV_DXY]
        row[J_FD2D_SIG] = v_rows[first, SV_DXYSIG]
        row[J_FD3D_VAL] = v_rows[first, SV_D3D]
        row[J_FD3D_SIG] = v_rows[first, SV_D3DSIG]
    else:
        n_pseudo = 0
        for a in range(n_trk):
            if selected[a] and ip2s[a] > PSEUDO_SIP2D_SIG:
                vtx_tracks[a] = True
                n_pseudo += 1
        if n_pseudo >= 2:
            row[J_VTX_CATEGORY] = 1
        else:
            row[J_VTX_CATEGORY] = 2
            return 0
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
            etarel_out[nvt] = track_rows[a, CP_ETAREL]
            nvt += 1
    etarel_out[:nvt] = np.sort(etarel_out[:nvt])
    row[J_VTX_MASS] = np.sqrt(max(ve * ve - vx * vx - vy * vy - vz * vz, 0.0))
    row[J_VTX_NTRACKS] = nvt
    row[J_VTX_ENERGY_RATIO] = ve / sel_energy if sel_energy > 0 else 0.0
    veta, vphi = eta_phi(vx, vy, vz)
    row[J_VTX_DR] = delta_r(veta, vphi, jeta, jphi)
    return nvt


# ------------------------------------------------------------------------------------------ neutral helpers


@numba.njit(cache=True)
def _puppi_weight(cand, ev_start, ev_stop, pv, eta, phi):
    """PUPPI-like weight of a neutral candidate: the share of the charged pT within Delta R < 0.3 that comes
    from the primary vertex (all tracks of the event, including those removed from the jets by CHS)."""
    a_pv = 0.0
    a_pu = 0.0
    for t in range(ev_start, ev_stop):
        if cand[C_KIND, t] != TRACK:
            continue
        tp_eta, tp_phi = eta_phi(cand[C_PX, t], cand[C_PY, t], cand[C_PZ, t])
        if delta_r(eta, phi, tp_eta, tp_phi) < PUPPI_CONE:
            tpt = np.sqrt(cand[C_PX, t] ** 2 + cand[C_PY, t] ** 2)
            if abs(cand[C_Z0, t] - pv[2]) < CHS_DZ_MM:
                a_pv += tpt
            else:
                a_pu += tpt
    return a_pv / (a_pv + a_pu) if a_pv + a_pu > 0 else 0.5


@numba.njit(cache=True)
def _neutral_order(drminsv, pt):
    """CMS DeepJet order of the neutral candidates: increasing Delta R to the nearest secondary vertex, ties
    (no vertex: all at 0.4) by decreasing pT (cmssw DeepFlavourTagInfoProducer, SortingClass::compareByABCInv on
    (-drminsv, pT / jet pT))."""
    by_pt = np.argsort(-pt, kind="mergesort")
    return by_pt[np.argsort(drminsv[by_pt], kind="mergesort")]


@numba.njit(cache=True)
def _neutral_rows(cand, neu, ev_start, ev_stop, pv, jpt, jeta, jphi, v_eta, v_phi, has_pileup):
    """One row of ``NPF_FIELDS`` per neutral candidate, in constituent order, and each candidate's pT."""
    n_neu = neu.shape[0]
    rows = np.empty((n_neu, N_NPF))
    neu_pt = np.empty(n_neu)
    for b in range(n_neu):
        g = neu[b]
        px, py, pz = cand[C_PX, g], cand[C_PY, g], cand[C_PZ, g]
        pt = np.sqrt(px * px + py * py)
        neta, nphi = eta_phi(px, py, pz)
        is_gamma = cand[C_KIND, g] == PHOTON
        rows[b, NE_PT_FRACTION] = pt / jpt
        rows[b, NE_DR] = delta_r(neta, nphi, jeta, jphi)
        rows[b, NE_IS_GAMMA] = 1.0 if is_gamma else 0.0
        rows[b, NE_HAD_FRAC] = 0.0 if is_gamma else 1.0
        rows[b, NE_DRMINSV] = _min_dr_to_vertices(neta, nphi, v_eta, v_phi)
        rows[b, NE_PUPPIW] = _puppi_weight(cand, ev_start, ev_stop, pv, neta, nphi) if has_pileup else 1.0
        neu_pt[b] = pt
    return rows, neu_pt
