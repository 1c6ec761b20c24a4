"""Event and jet reconstruction shared by the sample producers: a block of Pythia events through the detector
model (with the pile-up overlay), FastJet anti-kT on the reconstructed candidates that survive charged-hadron
subtraction, the pT/eta selection, and generator-level jets with their matching.

The AK4 producer (:mod:`.producer`, R = 0.4, pT > 20 GeV, |eta| < 2.5) and the fat-jet and event-level
producers (:mod:`.fatjets`, R = 0.8) call the same functions with their radius and cuts. Constituent
indices are local to each event among *all* its candidates, so every candidate (CHS-removed ones included)
stays available to the features.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from . import detector, features, pileup as pileup_library
from .pythia import _quiet_stdout

NEUTRINOS = (12, 14, 16)


def simulate_events(generator, n_events: int, seed: int, pileup: float, library=None):
    """``n_events`` Pythia events of ``generator`` seeded with ``seed``, through the detector model with
    Poisson(``pileup``) minimum-bias events of ``library`` overlaid (default: the cached
    :func:`~deepjet_nb.samples.pileup.load_library`): ``(batch, cand, cand_offsets, pv_reco, npv)``."""
    batch = generator.generate(n_events, seed)
    if library is None:
        library = pileup_library.load_library() if pileup > 0 else pileup_library.Library.empty()
    detector.seed_numba(seed)
    cand, cand_offsets, _, pv_reco, npv = detector.simulate_candidates(
        batch.offsets, batch.status, batch.pid, batch.charge, batch.px, batch.py, batch.pz, batch.e,
        batch.vx, batch.vy, batch.vz, float(pileup), library.offsets, library.pid, library.charge, library.p4,
        library.vertex, library.vertex_tracks)
    return batch, cand, cand_offsets, pv_reco, npv


def offsets_of(counts):
    """Offsets (n + 1,) int64 of consecutive groups of ``counts``."""
    out = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def gather_groups(offsets, which):
    """The groups ``which`` of consecutive groups with ``offsets``: ``(new_offsets, index)``, ``index`` the
    positions of their elements in the flat array, group after group in the order of ``which``."""
    which = np.asarray(which, np.int64)
    counts = np.diff(offsets)[which]
    new_offsets = offsets_of(counts)
    index = np.repeat(offsets[:-1][which] - new_offsets[:-1], counts) + np.arange(new_offsets[-1], dtype=np.int64)
    return new_offsets, index


def eta_phi_pt(p4):
    """Pseudorapidity, azimuth and pT of (n, 4) four-momenta (px, py, pz, E)."""
    pt = np.hypot(p4[:, 0], p4[:, 1])
    eta = np.arcsinh(p4[:, 2] / np.maximum(pt, 1e-12))
    phi = np.arctan2(p4[:, 1], p4[:, 0])
    return eta, phi, pt


def cluster(px, py, pz, e, counts, ptmin, radius):
    """anti-kT jets of radius ``radius`` of each event (particles grouped by ``counts``), pT > ``ptmin``:
    ``(p4 (n, 4), jets per event, constituent counts, constituent indices local to the event's particles)``."""
    import fastjet

    particles = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D"), counts)
    with _quiet_stdout():  # FastJet prints its banner on first use
        sequence = fastjet.ClusterSequence(particles, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
        jets = sequence.inclusive_jets(ptmin)
        consts = sequence.constituent_index(ptmin)
    p4 = np.stack([ak.to_numpy(ak.flatten(jets[c])) for c in ("px", "py", "pz", "E")], axis=1)
    n_per_event = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    const_counts = ak.to_numpy(ak.flatten(ak.num(consts, axis=2))).astype(np.int64)
    const_index = ak.to_numpy(ak.flatten(consts, axis=None)).astype(np.int64)
    return p4, n_per_event, const_counts, const_index


def reconstruct_jets(cand, cand_offsets, pv_reco, n_events, *, radius, pt_min, eta_max):
    """anti-kT jets of radius ``radius`` of the candidates that survive charged-hadron subtraction (all
    candidates stay available to the features), with pT > ``pt_min`` and |eta| < ``eta_max``: ``(p4, eta, phi,
    jet_event, jet_offsets, const_offsets, const_index)``, constituent indices local to each event among all
    its candidates. Jets come in FastJet's order (decreasing pT within an event)."""
    C = detector
    keep = np.nonzero(features.chs_keep(cand, cand_offsets, pv_reco))[0]
    event_of_cand = np.repeat(np.arange(n_events), np.diff(cand_offsets))
    kept_offsets = offsets_of(np.bincount(event_of_cand[keep], minlength=n_events))
    p4, jets_per_event, const_counts, const_index = cluster(
        cand[C.C_PX, keep], cand[C.C_PY, keep], cand[C.C_PZ, keep], cand[C.C_E, keep], np.diff(kept_offsets),
        pt_min, radius)
    eta, phi, pt = eta_phi_pt(p4)
    jet_event = np.repeat(np.arange(n_events), jets_per_event)
    # constituent indices: local to the event among kept candidates -> local to the event among all
    const_event = np.repeat(jet_event, const_counts)
    const_index = keep[kept_offsets[const_event] + const_index] - cand_offsets[const_event]
    good = (np.abs(eta) < eta_max) & (pt > pt_min)
    # keep the constituents of the selected jets only
    const_index = const_index[np.repeat(good, const_counts)]
    const_offsets = offsets_of(const_counts[good])
    p4, eta, phi, jet_event = p4[good], eta[good], phi[good], jet_event[good]
    jet_offsets = offsets_of(np.bincount(jet_event, minlength=n_events))
    return p4, eta, phi, jet_event, jet_offsets, const_offsets, const_index


def visible_particles(batch):
    """Mask of the generator's visible final-state particles (stable, not neutrinos): what generator jets
    are made of."""
    return (batch.status > 0) & ~np.isin(np.abs(batch.pid), NEUTRINOS)


def gen_jets(batch, radius, pt_min):
    """Generator-level anti-kT jets of the visible final-state particles: ``(p4, gen_offsets, const_offsets,
    const_particles)``, constituents as indices into the batch's flat particle arrays."""
    visible = visible_particles(batch)
    event_of = np.repeat(np.arange(batch.n_events), np.diff(batch.offsets))
    counts = np.bincount(event_of[visible], minlength=batch.n_events)
    gp4, gen_per_event, const_counts, const_index = cluster(
        batch.px[visible], batch.py[visible], batch.pz[visible], batch.e[visible], counts, pt_min, radius)
    gen_offsets = offsets_of(gen_per_event)
    # constituent indices local to the event's visible particles -> flat batch indices
    visible_index = np.nonzero(visible)[0]
    visible_offsets = offsets_of(counts)
    gen_event = np.repeat(np.arange(batch.n_events), gen_per_event)
    const_particles = visible_index[visible_offsets[np.repeat(gen_event, const_counts)] + const_index]
    return gp4, gen_offsets, offsets_of(const_counts), const_particles


def match_nearest(eta, phi, jet_event, geta, gphi, gen_offsets, max_dr):
    """Index of the nearest generator jet of the same event within Delta R < ``max_dr`` of each jet, else -1."""
    out = np.full(len(eta), -1, np.int64)
    for j in range(len(eta)):
        lo, hi = gen_offsets[jet_event[j]], gen_offsets[jet_event[j] + 1]
        if hi == lo:
            continue
        dphi = (gphi[lo:hi] - phi[j] + np.pi) % (2 * np.pi) - np.pi
        dr = np.hypot(geta[lo:hi] - eta[j], dphi)
        k = np.argmin(dr)
        if dr[k] < max_dr:
            out[j] = lo + k
    return out
