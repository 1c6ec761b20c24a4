"""A CMS-like detector as of 2016 (Run 2, Phase-0 pixel): tracks from hits and a fit, material interactions,
calorimeter deposits and pileup, from generator particles.

Every number below approximates the CMS detector, with its source; docs/reference.md §5 collects them with a
realism table. Lengths are in mm (Pythia's unit) inside the simulation; the ntuple stores cm, like CMS.

Tracker geometry and material (barrel cylinders, used at every |eta| < 2.5 with the path length 1/sin(theta))
  - beam pipe (r = 22.5 mm since 2015, 0.8 mm Be: 0.23 % X0, 0.19 % lambda_I), the three Phase-0 pixel layers
    that took the 2016 data of the published taggers (44, 73, 102 mm, about 2 % X0 each with cooling and
    cables; the Phase-1 pixel of 2017 has four lighter layers from 29 mm) [Pixel], the pixel support tube and
    services (200 mm, 3 % X0), four TIB layers (255, 339, 418, 498 mm, 3 % X0), the TIB/TID services and
    support (550 mm, 5 % X0) and six TOB layers (608 ... 1080 mm, 1.8 % X0): about 0.37 X0 at eta = 0
    [CMS: 0.4 X0 at eta = 0; TRK-10-003]. lambda/lambda_I = 0.25 X/X0 outside the beryllium pipe [CMS: 0.1
    lambda_I against 0.4 X0 at eta = 0].
  - material interactions, drawn layer by layer for every generator particle, pileup particle and interaction
    product that crosses a layer beyond its production radius: photon conversions with probability
    1 - exp(-(7/9) (X/X0) / sin(theta)) into e+ e- (Bethe-Heitler energy sharing [PDG 34.4]); inelastic nuclear
    interactions of hadrons with 1 - exp(-(lambda/lambda_I) / sin(theta)): the hadron stops there (its track has
    the hits inside only) and Poisson(<n_ch>) charged secondaries, <n_ch> = R_A <n_ch>_pp(sqrt(s_NN)), share
    70 % of its energy with one neutral remnant [PDG multiplicities; R_A = 1.5 for Si]. Interaction products do
    not interact again (depth 1).
Tracks (charged particles with pT > 1 GeV, |eta| < 2.5)
  - hits on the layers crossed between the production radius and the interaction (if any): pixel
    sigma(r phi) = 10 um, sigma(z) = 22 um, efficiency 0.98 [Pixel]; strips sigma(r phi) = pitch / sqrt(12)
    (23-53 um) and, for the stereo layers TIB 1-2 and TOB 1-2, sigma(z) = 10 x sigma(r phi) (100 mrad stereo
    angle), efficiency 0.98 [CMS];
  - multiple scattering at every material layer with the Highland width [PDG 34.3] and, in 2 % of the
    scatterings, a single-scattering (Rutherford, dN/dtheta ~ theta^-3) tail beyond 2.5 theta_0 [PDG 34.3: the
    central 98 % is Gaussian];
  - wrong hits: on each layer the track picks up another particle's hit inside its search window with
    probability 1 - exp(-rho A), rho the local density of charged particles (pT > 0.5 GeV) of the event on that
    layer, A the window (3 sigma of the predicted position, at least the pitch; the strip length for r phi-only
    strips); the hit lands uniformly in the window;
  - the fit: weighted least squares, in r phi of a parabola (d0, phi, curvature) and in r z of a line (z0,
    cot theta), with the full covariance of the hit errors and of the multiple scattering (equivalent to a
    Kalman filter with scattering as process noise); outlier rejection drops the worst hit while its chi2 > 20
    [TRK-11-001 §3.4]. Fitted IP, direction and pT, their errors sigma(d0), sigma(z0), the normalised chi2 and
    the hit counts are the fit's: nothing is drawn from a category label;
  - reconstruction: >= 5 r phi hits and >= 2 z hits, with an algorithmic efficiency 0.95 (|eta| < 1.5) / 0.90
    times exp(-r/250 mm) with the production radius r [TRK-11-001: 0.9-0.95 for charged hadrons, lower when
    displaced]; quality highPurity (mask 7) from the CMS selection on measured quantities: layers >= 3,
    3D layers >= 3, lost layers <= 2, chi2/ndf < 0.7 n_layers, |d0| and |dz| within (0.3-0.4 n_layers)^4
    times the nominal and the fitted errors [CMSSW selectHighPurity]; loose (1) otherwise;
  - the ``fake`` column (truth only) marks tracks with >= 2 wrong hits of which at least half their pixel
    hits: random hit combinations in dense cores; ``origin``, ``nwrong`` and ``d0_pull`` are truth too. No input
    feature reads them (features.py reads only measured columns);
  - the reconstructed primary vertex has resolution 8 um in x, y and 15 um in z [TRK-11-001].
Calorimeters (|eta| < 3)
  - photons and untracked electrons: ECAL sigma(E)/E = 3 %/sqrt(E) (+) 0.5 % (+) 0.2 GeV/E; angular
    smearing 0.005 (crystal size 0.0174); kept above E = 1 GeV;
  - neutral hadrons and untracked charged hadrons: HCAL sigma(E)/E = 100 %/sqrt(E) (+) 5 %; angular
    smearing 0.03 (tower 0.087); kept above E = 2 GeV; muons without a track are lost.
Pileup (optional, mean number of interactions ``mu``; CMS Run 2 had 20-35)
  - Poisson(mu) extra interactions, each a Pythia minimum-bias event from the library of samples/pileup.py
    (rotated in phi, mirrored in z at random) at its own vertex in the beam spot; its particles go through
    the same material, hits and fit, and count in the local track density;
  - a pileup vertex is reconstructed when at least 4 of its charged particles with pT > 0.2 GeV, |eta| < 2.5
    are found (efficiency 0.9 each): CMS's vertex quality ndof > 4; npv counts the reconstructed vertices.

Where each part lives: :mod:`.geometry` (layers, material, trajectories), :mod:`.material` (conversions,
nuclear interactions, one particle's reconstruction), :mod:`.tracking` (hits, fit, quality), :mod:`.occupancy`
(local track density), :mod:`.calorimeter`, :mod:`.pileup_overlay` and :mod:`.candidates` (the output table).
This module assembles them into the candidates of whole events.
"""

from __future__ import annotations

import numba
import numpy as np

# The names below are re-exported: the feature builders, tests and benchmarks read the detector model from here.
from .candidates import (  # noqa: F401
    C_CHI2, C_D0_PULL, C_E, C_FAKE, C_GEN, C_KIND, C_NHITS, C_NPIX, C_NWRONG, C_ORIGIN, C_PU, C_PX, C_PY, C_PZ,
    C_Q, C_QUAL, C_SD0, C_SZ0, C_TX, C_TY, C_TZ, C_X0, C_Y0, C_Z0, CANDIDATE_COLUMNS, MAX_ROWS_PER_PARTICLE,
    N_CANDIDATE_COLUMNS, NEUTRAL_HADRON, ORIGIN_CONVERSION, ORIGIN_GENERATOR, ORIGIN_NUCLEAR, PHOTON, PION_MASS,
    TRACK,
)
from .geometry import (  # noqa: F401
    CURVATURE_PER_INV_GEV, LAYER_EFFICIENCY, LAYER_KIND, LAYER_LAMBDA, LAYER_PITCH, LAYER_R_MM, LAYER_SIGMA_RPHI,
    LAYER_SIGMA_Z, LAYER_STRIP_LENGTH, LAYER_X0, N_LAYERS, PASSIVE, PIXEL, PIXEL_LAYERS_MM, STEREO, STRIP,
)
from .material import add_particle
from .occupancy import DENSITY_N_ETA, DENSITY_N_PHI, fill_density  # noqa: F401
from .pileup_overlay import (  # noqa: F401
    PU_VERTEX_MIN_TRACKS, PU_VERTEX_TRACK_EFFICIENCY, add_pileup_particles, draw_pileup, fill_pileup_density,
    place_pileup,
)
from .tracking import gls_fit, highland  # noqa: F401

PV_SIGMA_MM = np.array([0.008, 0.008, 0.015])  # reconstructed primary vertex resolution [TRK-11-001]
# First guess of the candidate table's size: rows per generator-record entry, per pile-up interaction, per event
CAPACITY_PER_RECORD_ENTRY, CAPACITY_PER_PILEUP, CAPACITY_PER_EVENT = 0.6, 30.0, 50.0
NEUTRINOS = (12, 14, 16)


@numba.njit(cache=True)
def seed_numba(seed):
    """Seed numba's random generator (used by every detector kernel; single-threaded, so reproducible)."""
    np.random.seed(seed)


@numba.njit(cache=True)
def simulate_candidates(offsets, status, pid, charge, px, py, pz, e, vx, vy, vz, pileup_mu, lib_offsets, lib_pid,
                        lib_charge, lib_p4, lib_vertex, lib_vertex_tracks):
    """Reconstructed candidates for a batch of events, with Poisson(``pileup_mu``) pile-up interactions per
    event drawn from the minimum-bias library ``lib_*`` (:class:`.pileup.Library`; needed when ``pileup_mu`` > 0).

    Returns ``(cand, cand_offsets, pv_true, pv_reco, npv)``: ``cand`` is (N_CANDIDATE_COLUMNS, n_cand)
    float64 (columns in ``CANDIDATE_COLUMNS``), ``pv_*`` are (n_events, 3) in mm, ``npv`` the number of
    reconstructed primary vertices per event.
    """
    n_events = offsets.shape[0] - 1
    if pileup_mu > 0 and lib_offsets.shape[0] - 1 == 0:
        raise ValueError("pile-up needs a minimum-bias library")
    capacity = int((offsets[-1] - offsets[0]) * CAPACITY_PER_RECORD_ENTRY
                   + n_events * (pileup_mu * CAPACITY_PER_PILEUP + CAPACITY_PER_EVENT) + 100)
    out = np.empty((N_CANDIDATE_COLUMNS, capacity))
    cand_offsets = np.zeros(n_events + 1, np.int64)
    pv_true = np.zeros((n_events, 3))
    pv_reco = np.zeros((n_events, 3))
    npv = np.ones(n_events, np.int32)
    k = 0
    for ev in range(n_events):
        base = offsets[ev]
        n = offsets[ev + 1] - base
        pileup, n_pu_particles = draw_pileup(pileup_mu, lib_offsets)
        # room for every particle and its material-interaction products (~1.8 candidates per visible particle
        # on average; the generator record's n counts unstable particles too)
        out = _with_room(out, k, k + 2 * n + 4 * n_pu_particles + 100)
        k, n_pu_reco = simulate_event_candidates(base, n, status, pid, charge, px, py, pz, e, vx, vy, vz, pileup,
                                                 lib_offsets, lib_pid, lib_charge, lib_p4, lib_vertex,
                                                 lib_vertex_tracks, out, k, pv_true[ev], pv_reco[ev])
        npv[ev] = 1 + n_pu_reco
        cand_offsets[ev + 1] = k
    return out[:, :k], cand_offsets, pv_true, pv_reco, npv


@numba.njit(cache=True)
def simulate_event_candidates(
    base, n, status, pid, charge, px, py, pz, e, vx, vy, vz, pileup, lib_offsets, lib_pid, lib_charge, lib_p4,
    lib_vertex, lib_vertex_tracks, out, n_out, pv_true, pv_reco
):
    """Reconstructed candidates of one event, appended to the ``out`` columns from row ``n_out``.

    ``pileup`` holds the indices of the minimum-bias library events (``lib_*``, :mod:`.pileup`) overlaid on
    this event, one per pile-up interaction. ``out`` is a (n_columns, capacity) float64 array; columns are
    listed in ``CANDIDATE_COLUMNS``. Returns the new row count and the number of reconstructed pileup vertices.
    """
    pvx, pvy, pvz = _primary_vertex(vx[base + 1], vy[base + 1], vz[base + 1], pv_true, pv_reco)
    density = np.zeros((DENSITY_N_ETA, DENSITY_N_PHI))
    for i in range(1, n):
        if status[base + i] > 0 and charge[base + i] != 0:
            fill_density(density, px[base + i], py[base + i], pz[base + i])
    placement, n_pu_reco = place_pileup(pileup, lib_vertex_tracks)
    fill_pileup_density(density, pileup, placement, lib_offsets, lib_charge, lib_p4)

    k = n_out
    for i in range(1, n):
        if status[base + i] <= 0 or abs(pid[base + i]) in NEUTRINOS:
            continue
        k = add_particle(out, k, i, pid[base + i], charge[base + i], px[base + i], py[base + i], pz[base + i],
                         e[base + i], vx[base + i], vy[base + i], vz[base + i], pvx, pvy, pvz, np.int64(0),
                         density)
    k = add_pileup_particles(out, k, pileup, placement, lib_offsets, lib_pid, lib_charge, lib_p4, lib_vertex, pvx,
                             pvy, pvz, density)
    return k, n_pu_reco


@numba.njit(cache=True)
def _primary_vertex(pvx, pvy, pvz, pv_true, pv_reco):
    """Record the primary vertex, the position of the hard interaction (beam-spot smeared by Pythia), in
    ``pv_true`` and its reconstruction, smeared by the vertex resolution, in ``pv_reco``; returns it."""
    pv_true[0] = pvx
    pv_true[1] = pvy
    pv_true[2] = pvz
    pv_reco[0] = pvx + np.random.normal() * PV_SIGMA_MM[0]
    pv_reco[1] = pvy + np.random.normal() * PV_SIGMA_MM[1]
    pv_reco[2] = pvz + np.random.normal() * PV_SIGMA_MM[2]
    return pvx, pvy, pvz


@numba.njit(cache=True)
def _with_room(out, k, need):
    """``out`` (its first ``k`` rows kept) with room for at least ``need`` rows."""
    if need <= out.shape[1]:
        return out
    grown = np.empty((N_CANDIDATE_COLUMNS, max(need, 2 * out.shape[1])))
    grown[:, :k] = out[:, :k]
    return grown
