"""Fat-jet substructure from constituents: soft drop (:func:`deepjet_nb.kernels.substructure.softdrop_jets`)
and N-subjettiness with exclusive-kT axes (axes from FastJet, τ_N from
:func:`deepjet_nb.kernels.substructure.nsubjettiness`).

Soft drop [Larkoski, Marzani, Soyez, Thaler, JHEP 05 (2014) 146], as CMS uses it for AK8 jets: the
constituents are reclustered with Cambridge/Aachen and declustered from the top, dropping the softer branch
until min(pT1, pT2)/(pT1 + pT2) > z_cut (ΔR12/R0)^β; β = 0, z_cut = 0.1, R0 = 0.8. The groomed jet's mass is
the soft-drop mass; its two branches at the stop are the soft-drop subjets (their ΔR and momentum share are
returned, and on request their four-momenta).

Every function takes one "event" per fat jet: flat constituent four-momenta (GeV) with per-jet ``counts``.
"""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np

from ..kernels.substructure import nsubjettiness, softdrop_jets
from .pythia import _quiet_stdout

SOFTDROP_BETA, SOFTDROP_ZCUT, FATJET_R = 0.0, 0.1, 0.8
RECLUSTER_R = 10.0  # kT reclustering radius for the τ axes: larger than any fat jet, so each ends as one jet


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
    constituents; a jet that is groomed down to one constituent has subjet ΔR and share 0).

    The Cambridge/Aachen clustering and declustering run in :func:`deepjet_nb.kernels.substructure.softdrop_jets`
    (the same tree and grooming as FastJet contrib's SoftDrop, tested against it, about 20 times faster than
    its Python binding). With ``subjets``, also ``subjet1`` and ``subjet2``: (n_jets, 4) four-momenta (px, py,
    pz, E) of the two soft-drop subjets, the two branches at the splitting where grooming stopped, by
    decreasing pT; a groomed jet of one constituent has that constituent as ``subjet1`` and zeros as
    ``subjet2``.
    """
    counts = np.asarray(counts, np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    arrays = (np.ascontiguousarray(a, dtype=np.float64) for a in (px, py, pz, e))
    groomed, branches, dr, z = softdrop_jets(offsets, *arrays, float(zcut), float(beta), float(r0))
    mass2 = groomed[:, 3] ** 2 - np.sum(groomed[:, :3] ** 2, axis=1)
    out = {"mass": np.sqrt(np.maximum(mass2, 0.0)), "pt": np.hypot(groomed[:, 0], groomed[:, 1]),
           "subjet_dr": dr, "subjet_z": z}
    if subjets:
        out["subjet1"] = branches[:, 0].copy()
        out["subjet2"] = branches[:, 1].copy()
    return out


def nsubjettiness_taus(px, py, pz, e, counts, *, n_max: int = 3, r0: float = FATJET_R) -> np.ndarray:
    """(n_jets, n_max) τ1..τ_nmax (β = 1) with exclusive-kT axes; τ_N = 0 for a jet with ≤ N constituents.

    One kT clustering serves every N for the jets with more than ``n_max`` constituents (nearly all fat jets);
    the few others are clustered once per N they have enough constituents for."""
    counts = np.asarray(counts, np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    pt, rap, phi = _pt_rap_phi(np.asarray(px), np.asarray(py), np.asarray(pz), np.asarray(e))
    taus = np.zeros((len(counts), n_max))
    particles = _jets(px, py, pz, e, counts)
    rich = counts > n_max
    rich_sequence = _sequence(particles[rich], "kt_algorithm") if rich.any() else None
    for n in range(1, n_max + 1):
        enough = counts > n
        if not enough.any():
            continue
        axis_rap = np.zeros((len(counts), n))
        axis_phi = np.zeros((len(counts), n))
        for group, sequence in ((rich, rich_sequence), (enough & ~rich, None)):
            if not group.any():
                continue
            sequence = sequence or _sequence(particles[group], "kt_algorithm")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                axes = ak.flatten(sequence.exclusive_jets(n_jets=n))
            _, arap, aphi = _pt_rap_phi(*(ak.to_numpy(axes[c]).astype(np.float64) for c in ("px", "py", "pz", "E")))
            axis_rap[group], axis_phi[group] = arap.reshape(-1, n), aphi.reshape(-1, n)
        axis_offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(np.where(enough, n, 0), out=axis_offsets[1:])
        taus[:, n - 1] = nsubjettiness(offsets, pt, rap, phi, axis_offsets, axis_rap[enough].reshape(-1),
                                       axis_phi[enough].reshape(-1), r0)
    return taus


def _pt_rap_phi(px, py, pz, e):
    pt = np.hypot(px, py)
    rap = 0.5 * np.log(np.maximum(e + pz, 1e-12) / np.maximum(e - pz, 1e-12))
    return pt, rap, np.arctan2(py, px)
