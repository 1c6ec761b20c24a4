"""Fat-jet substructure from constituents: soft drop (FastJet contrib, through the ``fastjet`` package) and
N-subjettiness with exclusive-kT axes (axes from FastJet, τ_N from :func:`deepjet_nb.kernels.substructure.nsubjettiness`).

Soft drop [Larkoski, Marzani, Soyez, Thaler, JHEP 05 (2014) 146], as CMS uses it for AK8 jets: the
constituents are reclustered with Cambridge/Aachen and declustered from the top, dropping the softer branch
until min(pT1, pT2)/(pT1 + pT2) > z_cut (ΔR12/R0)^β; β = 0, z_cut = 0.1, R0 = 0.8. The groomed jet's mass is
the soft-drop mass; its two branches at the stop are the soft-drop subjets (their ΔR and momentum share are
returned, and on request their four-momenta: the two exclusive C/A jets of the groomed constituents).

Every function takes one "event" per fat jet: flat constituent four-momenta (GeV) with per-jet ``counts``.
"""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np

from ..kernels.substructure import nsubjettiness
from .pythia import _quiet_stdout

SOFTDROP_BETA, SOFTDROP_ZCUT, FATJET_R = 0.0, 0.1, 0.8
RECLUSTER_R = 10.0  # reclustering radius: larger than any fat jet, so each jet's constituents end in one jet


def _jets(px, py, pz, e, counts):
    fields = {"px": px, "py": py, "pz": pz, "E": e}
    return ak.unflatten(ak.zip({k: np.asarray(v, np.float64) for k, v in fields.items()}, with_name="Momentum4D"),
                        np.asarray(counts, np.int64))


def _sequence(particles, algorithm):
    import fastjet

    with _quiet_stdout(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fastjet's generic note on exclusive jets
        return fastjet.ClusterSequence(particles, fastjet.JetDefinition(getattr(fastjet, algorithm), RECLUSTER_R))


def softdrop(px, py, pz, e, counts, *, beta: float = SOFTDROP_BETA, zcut: float = SOFTDROP_ZCUT,
             r0: float = FATJET_R, subjets: bool = False) -> dict:
    """Soft-drop mass, pT, subjet ΔR and momentum share of every fat jet (zeros for a jet without
    constituents; a jet that is groomed down to one constituent has subjet ΔR 0).

    With ``subjets``, also ``subjet1`` and ``subjet2``: (n_jets, 4) four-momenta (px, py, pz, E) of the two
    soft-drop subjets, the two exclusive Cambridge/Aachen jets of the groomed constituents (the two branches
    at the splitting where grooming stopped), ordered by decreasing pT; a groomed jet of one constituent has
    that constituent as ``subjet1`` and zeros as ``subjet2``.
    """
    counts = np.asarray(counts, np.int64)
    out = {k: np.zeros(len(counts)) for k in ("mass", "pt", "subjet_dr", "subjet_z")}
    if subjets:
        out["subjet1"] = np.zeros((len(counts), 4))
        out["subjet2"] = np.zeros((len(counts), 4))
    filled = np.nonzero(counts > 0)[0]
    if filled.size == 0:
        return out
    particles = _jets(px, py, pz, e, counts)[filled]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        groomed = _sequence(particles, "cambridge_algorithm").exclusive_jets_softdrop_grooming(
            njets=1, beta=beta, symmetry_cut=zcut, R0=r0)
    for key, field in (("mass", "msoftdrop"), ("pt", "ptsoftdrop"), ("subjet_dr", "deltaRsoftdrop"),
                       ("subjet_z", "symmetrysoftdrop")):
        values = ak.to_numpy(ak.fill_none(groomed[field], 0.0)).astype(np.float64).reshape(-1)
        out[key][filled] = np.nan_to_num(values, nan=0.0)
    if subjets:
        _subjets(groomed["constituents"], filled, out["subjet1"], out["subjet2"])
    return out


def _subjets(constituents, filled, first, second):
    """Fill ``first``/``second`` rows ``filled`` with the two exclusive C/A subjets of the groomed
    ``constituents`` (one jagged list per filled jet), by decreasing pT."""
    n_groomed = ak.to_numpy(ak.num(constituents, axis=1))
    columns = ("px", "py", "pz", "E")
    one = np.nonzero(n_groomed == 1)[0]
    if one.size:
        first[filled[one]] = np.stack([ak.to_numpy(ak.flatten(constituents[one][c])) for c in columns], axis=1)
    two = np.nonzero(n_groomed >= 2)[0]
    if two.size == 0:
        return
    particles = _jets(*(ak.to_numpy(ak.flatten(constituents[two][c])) for c in columns), n_groomed[two])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pairs = _sequence(particles, "cambridge_algorithm").exclusive_jets(n_jets=2)
    p4 = np.stack([ak.to_numpy(ak.flatten(pairs[c])) for c in columns], axis=1).reshape(-1, 2, 4)
    swap = np.hypot(p4[:, 1, 0], p4[:, 1, 1]) > np.hypot(p4[:, 0, 0], p4[:, 0, 1])
    p4[swap] = p4[swap][:, ::-1]
    first[filled[two]] = p4[:, 0]
    second[filled[two]] = p4[:, 1]


def nsubjettiness_taus(px, py, pz, e, counts, *, n_max: int = 3, r0: float = FATJET_R) -> np.ndarray:
    """(n_jets, n_max) τ1..τ_nmax (β = 1) with exclusive-kT axes; τ_N = 0 for a jet with ≤ N constituents."""
    counts = np.asarray(counts, np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    pt, rap, phi = _pt_rap_phi(np.asarray(px), np.asarray(py), np.asarray(pz), np.asarray(e))
    taus = np.zeros((len(counts), n_max))
    particles = _jets(px, py, pz, e, counts)
    for n in range(1, n_max + 1):
        enough = counts > n
        if not enough.any():
            continue
        axis_offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(np.where(enough, n, 0), out=axis_offsets[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            axes = ak.flatten(_sequence(particles[enough], "kt_algorithm").exclusive_jets(n_jets=n))
        _, arap, aphi = _pt_rap_phi(*(ak.to_numpy(axes[c]).astype(np.float64) for c in ("px", "py", "pz", "E")))
        taus[:, n - 1] = nsubjettiness(offsets, pt, rap, phi, axis_offsets, arap, aphi, r0)
    return taus


def _pt_rap_phi(px, py, pz, e):
    pt = np.hypot(px, py)
    rap = 0.5 * np.log(np.maximum(e + pz, 1e-12) / np.maximum(e - pz, 1e-12))
    return pt, rap, np.arctan2(py, px)
