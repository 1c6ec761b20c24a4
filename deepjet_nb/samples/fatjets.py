"""Boosted samples: the DeepAK8 fat-jet ntuple (one entry per anti-kT R = 0.8 jet) and the event-level
ntuple (one entry per preselected event), from the same Pythia events, detector model, pile-up overlay and
charged-hadron subtraction as the AK4 producer (docs/formats.md §1b, §1c; docs/reference.md §7).

Fat jets (:func:`fatjet_block`): anti-kT R = 0.8 on the CHS candidates, pT > ``FATJET_PT_MIN`` (300 GeV by
default) and |eta| < 2.4 [DeepAK8: CMS-BTV-16-002 / JME-18-002 use pT > 300 GeV]. Per jet:

- substructure (:mod:`.substructure`): soft-drop mass (beta = 0, z_cut = 0.1, C/A), the two soft-drop subjets,
  their Delta R and momentum share, N-subjettiness tau_1..3 (beta = 1, exclusive-kT axes), tau21, tau32
  (0 when the denominator is 0);
- up to 100 candidates (``schema.FATJET_MAX_PFCANDS``), by decreasing pT, with the ParticleNet features: pT and
  energy (logs, and relative to the jet), Delta eta (signed by the jet's eta, as ParticleNet flips the
  forward and backward hemispheres) and Delta phi to the jet axis, charge, particle type (the lepton
  identification of :mod:`.leptons`; photons and neutral hadrons from the calorimeter kind), the track fit
  (normalised chi2, highPurity quality, dz, dxy and their significances relative to the reconstructed primary
  vertex) and the b-tagging track variables of :mod:`.features` relative to the fat-jet axis (0 for neutral
  candidates), Delta R to the nearest secondary vertex (0.8 if none) and the PUPPI-like weight;
- up to 7 secondary vertices (``schema.FATJET_MAX_SV``) of :func:`.vertexing.find_vertices` on the jet's
  tracks with flight direction within Delta R < 0.8 of the jet axis, by decreasing 2D flight significance;
  kinematic variables (pT, mass, eta, phi) are those of the vertex's summed track momenta, as in CMS;
- truth (:func:`.truth.label_fatjets`): one label per jet, the B and C hadron counts, the matched resonance's
  pT and mass; the pT and soft-drop mass of the nearest generator-level AK8 jet (visible final-state
  particles) within Delta R < 0.6; a jet without one is ``label_Undefined``.

Events (:func:`event_block`): AK8 jets with pT > 30 GeV and |eta| < 2.4; the preselection (identical for every
process) keeps events with H_T > 400 GeV, the scalar pT sum of those jets; the five leading jets' kinematics and
substructure (zeros for absent jets), the number of jets, the number of isolated identified leptons
(:func:`.leptons.count_isolated`) and the process label.
"""

from __future__ import annotations

import awkward as ak
import numba
import numpy as np

from .. import schema
from . import clustering, features, leptons, pileup as pileup_library, substructure, truth
from .detector import (
    C_CHI2, C_E, C_KIND, C_PX, C_PY, C_PZ, C_Q, C_QUAL, C_SZ0, C_TX, C_TY, C_X0, C_Y0, NEUTRAL_HADRON,
    PHOTON, PV_SIGMA_MM, TRACK,
)
from .vertexing import delta_r, eta_phi, find_vertices

FATJET_R = substructure.FATJET_R  # 0.8
FATJET_PT_MIN = 300.0
FATJET_ETA_MAX = 2.4
FATJET_SV_DR = 0.8  # secondary vertices: flight direction within the jet radius
FATJET_DRMINSV_DEFAULT = 0.8  # drminsv of a candidate in a jet without secondary vertex (the radius, as CMS)
GEN_JET_PT_MIN = 20.0
GEN_MATCH_DR = truth.FATJET_MATCH_DR  # 0.6
MAX_PFCANDS, MAX_SV = schema.FATJET_MAX_PFCANDS, schema.FATJET_MAX_SV

# event-level sample (docs/formats.md §1c)
EVENT_JET_PT_MIN = 30.0
# preselection: H_T, the scalar pT sum of the selected AK8 jets, above 400 GeV (keeps ~35 % of all-hadronic
# ttbar events and ~40 % of QCD events with pT-hat > 150 GeV)
EVENT_HT_MIN = 400.0

_LISTS = {o.record: o for o in schema.DEEPAK8.object_lists}
PF_FIELDS = _LISTS["pfcand"].fields
SV_FIELDS = _LISTS["sv"].fields
N_PF, N_SV = len(PF_FIELDS), len(SV_FIELDS)
_pf = PF_FIELDS.index
(PF_PTREL_LOG, PF_EREL_LOG, PF_PT_LOG, PF_E_LOG, PF_ETAREL, PF_PHIREL, PF_DR, PF_ABSETA, PF_CHARGE) = (
    _pf("ptrel_log"), _pf("erel_log"), _pf("pt_log"), _pf("e_log"), _pf("etarel"), _pf("phirel"),
    _pf("deltaR"), _pf("abseta"), _pf("charge"))
PF_IS_EL, PF_IS_MU, PF_IS_GAMMA, PF_IS_CH, PF_IS_NH = (
    _pf("isEl"), _pf("isMu"), _pf("isGamma"), _pf("isChargedHad"), _pf("isNeutralHad"))
PF_NORMCHI2, PF_QUALITY, PF_DZ, PF_DZSIG, PF_DXY, PF_DXYSIG = (
    _pf("normchi2"), _pf("quality"), _pf("dz"), _pf("dzsig"), _pf("dxy"), _pf("dxysig"))
PF_ETAREL_B, PF_PTRATIO_B, PF_PPARRATIO_B = _pf("btagEtaRel"), _pf("btagPtRatio"), _pf("btagPParRatio")
PF_SIP2D_VAL, PF_SIP2D_SIG, PF_SIP3D_VAL, PF_SIP3D_SIG = (
    _pf("btagSip2dVal"), _pf("btagSip2dSig"), _pf("btagSip3dVal"), _pf("btagSip3dSig"))
PF_JETDIST, PF_DRMINSV, PF_PUPPIW = _pf("btagJetDistVal"), _pf("drminsv"), _pf("puppiw")
_sv = SV_FIELDS.index
(SV_PTREL_LOG, SV_EREL_LOG, SV_PT, SV_MASS, SV_ETAREL, SV_PHIREL, SV_DR, SV_ABSETA, SV_NTRACKS, SV_NORMCHI2,
 SV_DXY, SV_DXYSIG, SV_D3D, SV_D3DSIG, SV_COSTHETA) = (
    _sv("ptrel_log"), _sv("erel_log"), _sv("pt"), _sv("mass"), _sv("etarel"), _sv("phirel"), _sv("deltaR"),
    _sv("abseta"), _sv("ntracks"), _sv("normchi2"), _sv("dxy"), _sv("dxysig"), _sv("d3d"), _sv("d3dsig"),
    _sv("costhetasvpv"))
del _pf, _sv
MM_TO_CM = features.MM_TO_CM


# ---------------------------------------------------------------------------------------------- kernels


@numba.njit(cache=True)
def _dphi(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


@numba.njit(cache=True)
def fatjet_lists(cand, cand_offsets, const_offsets, const_index, jet_event, jet_p4, pv_reco, lepton, has_pileup,
                 max_cands, max_sv):
    """Candidate and secondary-vertex lists of every fat jet (module docstring).

    Inputs as :func:`.features.compute_jet_features`, with ``lepton`` the :func:`.leptons.identify` code of
    every candidate. Returns ``(pf, pf_n, sv, sv_n)``: rows of ``PF_FIELDS`` / ``SV_FIELDS`` and per-jet counts.
    """
    n_jets = jet_p4.shape[0]
    pf = np.zeros((min(const_index.shape[0], n_jets * max_cands), N_PF))
    sv = np.zeros((n_jets * max_sv, N_SV))
    pf_n = np.zeros(n_jets, np.int32)
    sv_n = np.zeros(n_jets, np.int32)
    k_pf = 0
    k_sv = 0
    pv_var = PV_SIGMA_MM * PV_SIGMA_MM
    for jj in range(n_jets):
        ev = jet_event[jj]
        pv = pv_reco[ev]
        jpx, jpy, jpz, je = jet_p4[jj, 0], jet_p4[jj, 1], jet_p4[jj, 2], jet_p4[jj, 3]
        jpt = np.sqrt(jpx * jpx + jpy * jpy)
        jp = np.sqrt(jpt * jpt + jpz * jpz)
        jvec = np.array([jpx, jpy, jpz]) / jp
        jeta, jphi = eta_phi(jpx, jpy, jpz)
        eta_sign = 1.0 if jeta >= 0 else -1.0
        trk, neu = features._split_constituents(cand, cand_offsets[ev], const_index, const_offsets[jj],
                                                const_offsets[jj + 1])
        (points, dirs, weights, p4s, charges, ip2, ip2s, ip3, ip3s, jdist, dlen, dz) = features._track_table(
            cand, trk, pv, jvec, pv_var)
        assign, vpos, vcov, vchi2 = find_vertices(points, dirs, weights, p4s, charges, np.abs(ip3), np.abs(ip3s),
                                                  pv, pv_var, jeta, jphi, FATJET_SV_DR)
        v_rows, v_feta, v_fphi, v_sig = features._vertex_rows(vpos, vcov, vchi2, assign, p4s, pv, pv_var, jeta,
                                                              jphi, je)
        n_vtx = vpos.shape[0]
        # vertex momentum direction and energy (summed tracks)
        v_eta = np.zeros(n_vtx)
        v_phi = np.zeros(n_vtx)
        v_e = np.zeros(n_vtx)
        for v in range(n_vtx):
            sx = 0.0
            sy = 0.0
            sz = 0.0
            for a in range(assign.shape[0]):
                if assign[a] == v:
                    sx += p4s[a, 0]
                    sy += p4s[a, 1]
                    sz += p4s[a, 2]
                    v_e[v] += p4s[a, 3]
            v_eta[v], v_phi[v] = eta_phi(sx, sy, sz)
        order = np.argsort(-v_sig, kind="mergesort")
        n_keep = min(n_vtx, max_sv)
        for r in range(n_keep):
            v = order[r]
            row = sv[k_sv]
            row[SV_PT] = v_rows[v, features.SV_PT]
            row[SV_PTREL_LOG] = np.log(max(row[SV_PT], 1e-9) / jpt)
            row[SV_EREL_LOG] = np.log(max(v_e[v], 1e-9) / je)
            row[SV_MASS] = v_rows[v, features.SV_MASS]
            row[SV_ETAREL] = eta_sign * (v_eta[v] - jeta)
            row[SV_PHIREL] = _dphi(v_phi[v], jphi)
            row[SV_DR] = delta_r(v_eta[v], v_phi[v], jeta, jphi)
            row[SV_ABSETA] = abs(v_eta[v])
            row[SV_NTRACKS] = v_rows[v, features.SV_NTRACKS]
            row[SV_NORMCHI2] = v_rows[v, features.SV_NORMCHI2]
            row[SV_DXY] = v_rows[v, features.SV_DXY]
            row[SV_DXYSIG] = v_rows[v, features.SV_DXYSIG]
            row[SV_D3D] = v_rows[v, features.SV_D3D]
            row[SV_D3DSIG] = v_rows[v, features.SV_D3DSIG]
            row[SV_COSTHETA] = v_rows[v, features.SV_COSTHETA]
            k_sv += 1
        sv_n[jj] = n_keep

        track_rows = features._charged_rows(cand, trk, p4s, ip2, ip2s, ip3, ip3s, jdist, dz, jvec, jp, jpt, jeta,
                                            jphi, v_feta, v_fphi, pv_var)
        n_trk = trk.shape[0]
        n_all = n_trk + neu.shape[0]
        glob = np.empty(n_all, np.int64)
        pts = np.empty(n_all)
        for a in range(n_all):
            g = trk[a] if a < n_trk else neu[a - n_trk]
            glob[a] = g
            pts[a] = np.sqrt(cand[C_PX, g] ** 2 + cand[C_PY, g] ** 2)
        by_pt = np.argsort(-pts, kind="mergesort")
        n_keep = min(n_all, max_cands)
        for r in range(n_keep):
            a = by_pt[r]
            g = glob[a]
            row = pf[k_pf]
            px, py, pz, e = cand[C_PX, g], cand[C_PY, g], cand[C_PZ, g], cand[C_E, g]
            pt = pts[a]
            ceta, cphi = eta_phi(px, py, pz)
            row[PF_PT_LOG] = np.log(max(pt, 1e-9))
            row[PF_E_LOG] = np.log(max(e, 1e-9))
            row[PF_PTREL_LOG] = np.log(max(pt, 1e-9) / jpt)
            row[PF_EREL_LOG] = np.log(max(e, 1e-9) / je)
            row[PF_ETAREL] = eta_sign * (ceta - jeta)
            row[PF_PHIREL] = _dphi(cphi, jphi)
            row[PF_DR] = delta_r(ceta, cphi, jeta, jphi)
            row[PF_ABSETA] = abs(ceta)
            dr_sv = FATJET_DRMINSV_DEFAULT
            for v in range(n_vtx):
                dr_sv = min(dr_sv, delta_r(ceta, cphi, v_eta[v], v_phi[v]))
            row[PF_DRMINSV] = dr_sv
            kind = cand[C_KIND, g]
            if kind == TRACK:
                code = lepton[g]
                row[PF_CHARGE] = cand[C_Q, g]
                row[PF_IS_EL] = 1.0 if code == leptons.ELECTRON else 0.0
                row[PF_IS_MU] = 1.0 if code == leptons.MUON else 0.0
                row[PF_IS_CH] = 1.0 if code == leptons.NOT_LEPTON else 0.0
                tr = track_rows[a]
                row[PF_NORMCHI2] = cand[C_CHI2, g]
                row[PF_QUALITY] = cand[C_QUAL, g]
                sdz = np.sqrt(cand[C_SZ0, g] ** 2 + pv_var[2])
                row[PF_DZ] = dz[a] * MM_TO_CM
                row[PF_DZSIG] = dz[a] / sdz
                # transverse impact parameter with the track-parameter sign convention,
                # dxy = (-(x - x_PV) py + (y - y_PV) px) / pT
                tx, ty = cand[C_TX, g], cand[C_TY, g]
                txy = np.sqrt(tx * tx + ty * ty)
                dx = cand[C_X0, g] - pv[0]
                dy = cand[C_Y0, g] - pv[1]
                s = -(dx * tx + dy * ty) / (txy * txy)
                dxy = (-(dx + s * tx) * ty + (dy + s * ty) * tx) / txy
                sd2 = abs(ip2[a] / ip2s[a]) if ip2s[a] != 0 else 1.0
                row[PF_DXY] = dxy * MM_TO_CM
                row[PF_DXYSIG] = dxy / sd2
                p = np.sqrt(pt * pt + pz * pz)
                row[PF_ETAREL_B] = tr[features.CP_ETAREL]
                row[PF_PTRATIO_B] = tr[features.CP_PTREL] / p
                row[PF_PPARRATIO_B] = tr[features.CP_PPAR_RATIO]
                row[PF_SIP2D_VAL] = tr[features.CP_SIP2D_VAL]
                row[PF_SIP2D_SIG] = tr[features.CP_SIP2D_SIG]
                row[PF_SIP3D_VAL] = tr[features.CP_SIP3D_VAL]
                row[PF_SIP3D_SIG] = tr[features.CP_SIP3D_SIG]
                row[PF_JETDIST] = tr[features.CP_JETDIST]
                row[PF_PUPPIW] = tr[features.CP_PUPPIW]
            else:
                row[PF_IS_GAMMA] = 1.0 if kind == PHOTON else 0.0
                row[PF_IS_NH] = 1.0 if kind == NEUTRAL_HADRON else 0.0
                row[PF_PUPPIW] = (features._puppi_weight(cand, cand_offsets[ev], cand_offsets[ev + 1], pv, ceta,
                                                         cphi) if has_pileup else 1.0)
            k_pf += 1
        pf_n[jj] = n_keep
    return pf[:k_pf], pf_n, sv[:k_sv], sv_n


# --------------------------------------------------------------------------------------------- blocks


def _simulate(generator, n_events, seed, pileup, library):
    """Pythia events of one block through the detector model: ``(batch, cand, cand_offsets, pv_reco, npv,
    lepton)`` (as :func:`.producer.process_block` makes them, plus the lepton identification)."""
    batch, cand, cand_offsets, pv_reco, npv = clustering.simulate_events(generator, n_events, seed, pileup, library)
    lepton = leptons.identify(cand, cand_offsets, batch.offsets, batch.pid,
                              leptons.identification_uniforms(seed, cand.shape[1]))
    return batch, cand, cand_offsets, pv_reco, npv, lepton


def _sorted_by_pt(p4, eta, phi, jet_event, const_offsets, const_index):
    """Jets reordered by event, then decreasing pT (FastJet's inclusive jets come unsorted), with their
    constituent lists."""
    pt = np.hypot(p4[:, 0], p4[:, 1])
    order = np.lexsort((-pt, jet_event))
    new_offsets, index = clustering.gather_groups(const_offsets, order)
    return p4[order], eta[order], phi[order], jet_event[order], new_offsets, const_index[index]


def _constituent_p4(cand, cand_offsets, jet_event, const_offsets, const_index):
    glob = cand_offsets[np.repeat(jet_event, np.diff(const_offsets))] + const_index
    return tuple(cand[c, glob] for c in (C_PX, C_PY, C_PZ, C_E))


def _substructure(px, py, pz, e, counts, subjets):
    sd = substructure.softdrop(px, py, pz, e, counts, subjets=subjets)
    taus = substructure.nsubjettiness_taus(px, py, pz, e, counts)
    return sd, taus


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def fatjet_block(generator, n_events: int, seed: int, pileup: float, options: tuple,
                 library: pileup_library.Library | None = None) -> dict:
    """One block of the fat-jet ntuple: branches of ``schema.DEEPAK8`` (``options`` = (pT threshold,))."""
    (pt_min,) = options
    batch, cand, cand_offsets, pv_reco, npv, lepton = _simulate(generator, n_events, seed, pileup, library)
    p4, eta, phi, jet_event, jet_offsets, const_offsets, const_index = _fatjets(
        cand, cand_offsets, pv_reco, batch.n_events, float(pt_min), FATJET_ETA_MAX)
    counts = np.diff(const_offsets)
    sd, taus = _substructure(*_constituent_p4(cand, cand_offsets, jet_event, const_offsets, const_index), counts,
                             subjets=True)
    pf, pf_n, sv, sv_n = fatjet_lists(cand, cand_offsets, const_offsets, const_index, jet_event,
                                      np.ascontiguousarray(p4), pv_reco, lepton, pileup > 0, MAX_PFCANDS, MAX_SV)
    labels, n_b, n_c, res_pt, res_mass = truth.label_fatjets(
        batch.offsets, batch.pid, batch.status, batch.mother1, batch.mother2, batch.daughter1, batch.daughter2,
        batch.px, batch.py, batch.pz, batch.e, jet_offsets, eta, phi)
    genjet_pt, genjet_sdmass = _matched_gen_jets(batch, eta, phi, jet_event)
    undefined = genjet_pt == 0  # no generator-level jet: a pile-up jet
    labels[undefined] = 0
    labels[undefined, truth.FATJET_LABEL_INDEX["label_Undefined"]] = 1
    res_pt[undefined] = 0.0
    res_mass[undefined] = 0.0

    out = {"fj_pt": np.hypot(p4[:, 0], p4[:, 1]), "fj_eta": eta, "fj_phi": phi,
           "fj_mass": np.sqrt(np.maximum(p4[:, 3] ** 2 - (p4[:, :3] ** 2).sum(axis=1), 0.0)),
           "fj_sdmass": sd["mass"]}
    for n in range(3):
        out[f"fj_tau{n + 1}"] = taus[:, n]
    out["fj_tau21"] = _ratio(taus[:, 1], taus[:, 0])
    out["fj_tau32"] = _ratio(taus[:, 2], taus[:, 1])
    for k, key in ((1, "subjet1"), (2, "subjet2")):
        sj = sd[key]
        sj_eta, sj_phi, sj_pt = clustering.eta_phi_pt(sj)
        empty = sj_pt == 0
        out[f"fj_sdsj{k}_pt"] = sj_pt
        out[f"fj_sdsj{k}_eta"] = np.where(empty, 0.0, sj_eta)
        out[f"fj_sdsj{k}_phi"] = np.where(empty, 0.0, sj_phi)
        out[f"fj_sdsj{k}_mass"] = np.sqrt(np.maximum(sj[:, 3] ** 2 - (sj[:, :3] ** 2).sum(axis=1), 0.0))
    out["fj_sdsj_dr"] = sd["subjet_dr"]
    out["fj_sdsj_z"] = sd["subjet_z"]
    out["npv"] = npv[jet_event]
    for i, name in enumerate(schema.FJ_LABELS):
        out[name] = labels[:, i]
    out["fj_nbHadrons"] = n_b
    out["fj_ncHadrons"] = n_c
    out["fj_genjet_pt"] = genjet_pt
    out["fj_genjet_sdmass"] = genjet_sdmass
    out["fj_gen_res_pt"] = res_pt
    out["fj_gen_res_mass"] = res_mass
    for record, (content, n) in {"pfcand": (pf, pf_n), "sv": (sv, sv_n)}.items():
        fields = _LISTS[record].fields
        out[record] = ak.unflatten(ak.zip({f: content[:, i].astype(np.float32) for i, f in enumerate(fields)}), n)
    return schema.DEEPAK8.cast(out)


def _fatjets(cand, cand_offsets, pv_reco, n_events, pt_min, eta_max):
    """AK8 CHS jets (pT > ``pt_min``, |eta| < ``eta_max``), each event's jets by decreasing pT:
    ``(p4, eta, phi, jet_event, jet_offsets, const_offsets, const_index)``."""
    p4, eta, phi, jet_event, jet_offsets, const_offsets, const_index = clustering.reconstruct_jets(
        cand, cand_offsets, pv_reco, n_events, radius=FATJET_R, pt_min=pt_min, eta_max=eta_max)
    p4, eta, phi, jet_event, const_offsets, const_index = _sorted_by_pt(p4, eta, phi, jet_event, const_offsets,
                                                                        const_index)
    return p4, eta, phi, jet_event, jet_offsets, const_offsets, const_index


def _matched_gen_jets(batch, eta, phi, jet_event):
    """pT and soft-drop mass of the nearest generator-level AK8 jet within Delta R < 0.6 of each jet (0, 0
    without one)."""
    gp4, gen_offsets, gconst_offsets, gconst = clustering.gen_jets(batch, FATJET_R, GEN_JET_PT_MIN)
    pt = np.zeros(len(eta))
    sdmass = np.zeros(len(eta))
    if len(gp4) == 0 or len(eta) == 0:
        return pt, sdmass
    geta, gphi, gpt = clustering.eta_phi_pt(gp4)
    match = clustering.match_nearest(eta, phi, jet_event, geta, gphi, gen_offsets, GEN_MATCH_DR)
    ok = np.nonzero(match >= 0)[0]
    pt[ok] = gpt[match[ok]]
    sub_offsets, index = clustering.gather_groups(gconst_offsets, match[ok])
    index = gconst[index]
    sd = substructure.softdrop(batch.px[index], batch.py[index], batch.pz[index], batch.e[index],
                               np.diff(sub_offsets))
    sdmass[ok] = sd["mass"]
    return pt, sdmass


def event_block(generator, n_events: int, seed: int, pileup: float, options: tuple,
                library: pileup_library.Library | None = None) -> dict:
    """One block of the event-level ntuple: branches of ``schema.EVENTS`` for the events passing the
    preselection (``options`` = (the process's label branch,))."""
    (label,) = options
    batch, cand, cand_offsets, pv_reco, npv, lepton = _simulate(generator, n_events, seed, pileup, library)
    p4, eta, phi, jet_event, jet_offsets, const_offsets, const_index = _fatjets(
        cand, cand_offsets, pv_reco, batch.n_events, EVENT_JET_PT_MIN, FATJET_ETA_MAX)
    n_jets = np.diff(jet_offsets)
    rank = np.arange(len(jet_event)) - jet_offsets[jet_event]
    ht = np.bincount(jet_event, weights=np.hypot(p4[:, 0], p4[:, 1]), minlength=batch.n_events)
    passed = np.nonzero(ht > EVENT_HT_MIN)[0]
    # substructure of the five leading jets of the selected events only
    use = (rank < schema.EVENT_JETS) & np.isin(jet_event, passed)
    sel = np.nonzero(use)[0]
    sub_offsets, sub_index = clustering.gather_groups(const_offsets, sel)
    sub_index = const_index[sub_index]
    counts = np.diff(sub_offsets)
    sd, taus = _substructure(*_constituent_p4(cand, cand_offsets, jet_event[sel], sub_offsets, sub_index), counts,
                             subjets=False)
    row_of_event = np.full(batch.n_events, -1, np.int64)
    row_of_event[passed] = np.arange(len(passed))
    rows = row_of_event[jet_event[sel]]
    slots = rank[sel]
    s_eta, s_phi, s_pt = clustering.eta_phi_pt(p4[sel])
    mass = np.sqrt(np.maximum(p4[sel, 3] ** 2 - (p4[sel, :3] ** 2).sum(axis=1), 0.0))
    values = {"jetPt": s_pt, "jetEta": s_eta, "jetPhi": s_phi, "jetMass": mass, "jetMassSoftDrop": sd["mass"],
              "jetTau1": taus[:, 0], "jetTau2": taus[:, 1], "jetTau3": taus[:, 2]}
    n_lep = leptons.count_isolated(cand, cand_offsets, pv_reco, lepton)
    out = {"nJets": n_jets[passed], "nLeptons": n_lep[passed]}
    for i in range(schema.EVENT_JETS):
        at = slots == i
        for name in schema.EVENT_JET_FEATURES:
            column = np.zeros(len(passed))
            column[rows[at]] = values[name][at]
            out[f"{name}_{i}"] = column
    for name in schema.EVENT_LABELS:
        out[name] = np.full(len(passed), 1 if name == label else 0)
    return schema.EVENTS.cast(out)
