"""A parametrised CMS-like (Run 2) detector: tracks, calorimeter deposits and pileup from generator particles.

Every number below is an approximation of the CMS Run-2 detector, with its source; docs/reference.md §5 collects
them. Lengths are in mm (Pythia's unit) inside the simulation; the ntuple stores cm, like CMS.

Tracks (charged particles with pT > 1 GeV, |eta| < 2.5, produced inside the pixel volume reach)
  - efficiency 0.93 (|eta| < 1.5) / 0.88 (forward) for prompt tracks [CMS TRK-11-001: 0.9-0.95], falling
    as exp(-r/250 mm) with the production radius r and zero beyond r = 600 mm [lower for displaced tracks,
    CMS TRK-11-001 Fig. 13];
  - pT resolution sigma(pT)/pT = (1 % (+) 0.015 %*pT/GeV) * (1 + 0.25 |eta|) [1-2 % below 100 GeV, linear rise];
  - direction resolution sigma(phi) = sigma(theta) = 0.2 mrad (+) 2 mrad GeV / pT;
  - transverse impact parameter sigma(d0) = 10 um (+) 90 um GeV / (pT sqrt(sin theta)) [10 um at high pT,
    ~90-100 um at 1 GeV, CMS TRK-11-001]; longitudinal sigma(z0) = (20 um (+) 100 um GeV / (pT sqrt(sin
    theta))) / sin(theta) [worse than d0, growing with |eta|];
  - non-Gaussian tails: 15 % of tracks get their impact-parameter error scaled by 2.5 (multiple scattering
    in material, nuclear interactions), 3 % are badly measured (x 8, and a worse fit chi2), and 2 % of the
    reconstructed tracks are fakes with random impact parameters (sigma 0.5 mm in d0, 1 mm in z0); these
    fractions are tuned so that track counting (second-highest 3D IP significance) reaches about 50-55 %
    b-jet efficiency at 1 % light mistag in ttbar, as CMS track counting did [CMS BTV-12-001];
  - hits: 4 pixel barrel layers at r = 29, 68, 109, 160 mm (CMS Phase-1) crossed only by tracks produced
    inside them (97 % hit efficiency each), about 10 strip hits; normalised fit chi2 from a chi2 law with
    2 n_hits - 5 degrees of freedom (scaled up for badly measured and fake tracks); quality "highPurity"
    (mask 7) for well measured tracks, "loose" (1) otherwise;
  - the reconstructed primary vertex has resolution 8 um in x, y and 15 um in z [beam-spot constrained
    PV of a ttbar event, CMS TRK-11-001].
Calorimeters (|eta| < 3)
  - photons and untracked electrons: ECAL sigma(E)/E = 3 %/sqrt(E) (+) 0.5 % (+) 0.2 GeV/E; angular
    smearing 0.005 (crystal size 0.0174); kept above E = 1 GeV;
  - neutral hadrons and untracked charged hadrons: HCAL sigma(E)/E = 100 %/sqrt(E) (+) 5 %; angular
    smearing 0.03 (tower 0.087); kept above E = 2 GeV; muons without a track are lost.
Pileup (optional, mean number of interactions ``mu``; CMS Run 2 had 20-35)
  - Poisson(mu) extra interactions, each a Pythia minimum-bias event from the library of samples/pileup.py
    (rotated in phi, mirrored in z at random) at its own vertex in the beam spot; its particles go through
    the same detector model;
  - a pileup vertex is reconstructed when at least 4 of its charged particles with pT > 0.2 GeV, |eta| < 2.5
    are found (efficiency 0.9 each): CMS's vertex quality ndof > 4; npv counts the reconstructed vertices.
"""

from __future__ import annotations

import numba
import numpy as np

from .pythia import BEAMSPOT_SIGMA_XY_MM, BEAMSPOT_SIGMA_Z_MM

# Candidate kinds
TRACK, PHOTON, NEUTRAL_HADRON = 0, 1, 2

PION_MASS = 0.13957
# Non-Gaussian track tails (fractions of reconstructed tracks and impact-parameter error scale factors)
MS_TAIL_FRACTION, MS_TAIL_SCALE = 0.15, 2.5
BAD_TRACK_FRACTION, BAD_TRACK_SCALE = 0.03, 8.0
FAKE_TRACK_FRACTION, FAKE_D0_SIGMA_MM, FAKE_Z0_SIGMA_MM = 0.02, 0.5, 1.0
PIXEL_LAYERS_MM = np.array([29.0, 68.0, 109.0, 160.0])
PV_SIGMA_MM = np.array([0.008, 0.008, 0.015])
# Pile-up vertices lie in the beam spot (Pythia's vertex spread of the hard interaction); one is reconstructed
# with CMS's vertex quality ndof > 4, i.e. at least 4 reconstructed tracks [TRK-11-001], each found with the
# prompt-track efficiency
PU_VERTEX_MIN_TRACKS, PU_VERTEX_TRACK_EFFICIENCY = 4, 0.9
CANDIDATES_PER_PARTICLE_MAX = 2  # room per particle in the candidate buffer (secondaries included)


@numba.njit(cache=True)
def seed_numba(seed):
    """Seed numba's random generator (used by every kernel below; single-threaded, so reproducible)."""
    np.random.seed(seed)


@numba.njit(cache=True)
def _chi2_ndf(ndf):
    s = 0.0
    for _ in range(ndf):
        g = np.random.normal()
        s += g * g
    return s / ndf


@numba.njit(cache=True)
def _d0_sigma(pt, sin_theta):
    return np.sqrt(0.010 ** 2 + (0.090 / (pt * np.sqrt(sin_theta))) ** 2)


@numba.njit(cache=True)
def _z0_sigma(pt, sin_theta):
    return np.sqrt(0.020 ** 2 + (0.100 / (pt * np.sqrt(sin_theta))) ** 2) / sin_theta


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
    # primary vertex: the position of the hard interaction (beam-spot smeared by Pythia)
    pvx = vx[base + 1]
    pvy = vy[base + 1]
    pvz = vz[base + 1]
    pv_true[0] = pvx
    pv_true[1] = pvy
    pv_true[2] = pvz
    pv_reco[0] = pvx + np.random.normal() * PV_SIGMA_MM[0]
    pv_reco[1] = pvy + np.random.normal() * PV_SIGMA_MM[1]
    pv_reco[2] = pvz + np.random.normal() * PV_SIGMA_MM[2]

    k = n_out
    for i in range(1, n):
        if status[base + i] <= 0:
            continue
        a = abs(pid[base + i])
        if a == 12 or a == 14 or a == 16:
            continue
        k = _add_particle(out, k, i, pid[base + i], charge[base + i], px[base + i], py[base + i], pz[base + i],
                          e[base + i], vx[base + i], vy[base + i], vz[base + i], pvx, pvy, pvz, 0)
    n_pu_reco = 0
    for v in range(pileup.shape[0]):
        j = pileup[v]
        # the interaction's vertex in the beam spot; the library event rotated in phi and mirrored in z
        xv = np.random.normal() * BEAMSPOT_SIGMA_XY_MM
        yv = np.random.normal() * BEAMSPOT_SIGMA_XY_MM
        zv = np.random.normal() * BEAMSPOT_SIGMA_Z_MM
        found = 0
        for _ in range(lib_vertex_tracks[j]):
            if np.random.random() < PU_VERTEX_TRACK_EFFICIENCY:
                found += 1
        if found >= PU_VERTEX_MIN_TRACKS:
            n_pu_reco += 1
        angle = (np.random.random() * 2.0 - 1.0) * np.pi
        c = np.cos(angle)
        s = np.sin(angle)
        mirror = 1.0 if np.random.random() < 0.5 else -1.0
        for i in range(lib_offsets[j], lib_offsets[j + 1]):
            qx = c * lib_p4[0, i] - s * lib_p4[1, i]
            qy = s * lib_p4[0, i] + c * lib_p4[1, i]
            x = xv + c * lib_vertex[0, i] - s * lib_vertex[1, i]
            y = yv + s * lib_vertex[0, i] + c * lib_vertex[1, i]
            k = _add_particle(out, k, -1, lib_pid[i], lib_charge[i], qx, qy, mirror * lib_p4[2, i], lib_p4[3, i],
                              x, y, zv + mirror * lib_vertex[2, i], pvx, pvy, pvz, v + 1)
    return k, n_pu_reco


CANDIDATE_COLUMNS = (
    "px", "py", "pz", "e", "kind", "charge", "x0", "y0", "z0", "tx", "ty", "tz", "sigma_d0", "sigma_z0",
    "chi2", "quality", "npix", "nhits", "gen_index", "pu_vertex", "fake",
)
_C = {name: i for i, name in enumerate(CANDIDATE_COLUMNS)}
C_PX, C_PY, C_PZ, C_E, C_KIND, C_Q = 0, 1, 2, 3, 4, 5
C_X0, C_Y0, C_Z0, C_TX, C_TY, C_TZ, C_SD0, C_SZ0 = 6, 7, 8, 9, 10, 11, 12, 13
C_CHI2, C_QUAL, C_NPIX, C_NHITS, C_GEN, C_PU, C_FAKE = 14, 15, 16, 17, 18, 19, 20
N_CANDIDATE_COLUMNS = len(CANDIDATE_COLUMNS)


@numba.njit(cache=True)
def _add_particle(out, k, gen_index, code, q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz, pu_vertex):
    pt = np.sqrt(px * px + py * py)
    if pt < 1e-6:
        return k
    eta = np.arcsinh(pz / pt)
    aeta = abs(eta)
    a = abs(code)
    r_prod = np.sqrt((vx - pvx) ** 2 + (vy - pvy) ** 2)  # pile-up vertices lie within ~15 um of the PV in r
    if q != 0 and pt > 1.0 and aeta < 2.5 and r_prod < 600.0:
        eff = (0.93 if aeta < 1.5 else 0.88) * np.exp(-r_prod / 250.0)
        if np.random.random() < eff:
            return _add_track(out, k, gen_index, q, px, py, pz, vx, vy, vz, pvx, pvy, pvz, r_prod, pu_vertex)
    if aeta > 3.0 or a == 13:
        return k
    # calorimeter deposit: photons and electrons in ECAL, hadrons in HCAL
    if a == 22 or a == 11:
        sig = np.sqrt(0.03 ** 2 / e + 0.005 ** 2 + (0.2 / e) ** 2)
        kind = PHOTON
        ang = 0.005
        threshold = 1.0
    else:
        sig = np.sqrt(1.0 / e + 0.05 ** 2)
        kind = NEUTRAL_HADRON
        ang = 0.03
        threshold = 2.0
    e_meas = e * (1.0 + sig * np.random.normal())
    if e_meas < threshold:
        return k
    eta_m = eta + ang * np.random.normal()
    phi_m = np.arctan2(py, px) + ang * np.random.normal()
    pt_m = e_meas / np.cosh(eta_m)
    out[C_PX, k] = pt_m * np.cos(phi_m)
    out[C_PY, k] = pt_m * np.sin(phi_m)
    out[C_PZ, k] = pt_m * np.sinh(eta_m)
    out[C_E, k] = e_meas
    out[C_KIND, k] = kind
    out[C_Q, k] = 0.0
    for c in range(C_X0, N_CANDIDATE_COLUMNS):
        out[c, k] = 0.0
    out[C_GEN, k] = gen_index
    out[C_PU, k] = pu_vertex
    return k + 1


@numba.njit(cache=True)
def _add_track(out, k, gen_index, q, px, py, pz, vx, vy, vz, pvx, pvy, pvz, r_prod, pu_vertex):
    pt = np.sqrt(px * px + py * py)
    p = np.sqrt(pt * pt + pz * pz)
    eta = np.arcsinh(pz / pt)
    sin_theta = pt / p
    # measured momentum
    sig_pt = np.sqrt(0.01 ** 2 + (1.5e-4 * pt) ** 2) * (1.0 + 0.25 * abs(eta))
    pt_m = pt * (1.0 + sig_pt * np.random.normal())
    if pt_m < 1.0:
        return k
    sig_ang = np.sqrt(0.0002 ** 2 + (0.002 / pt) ** 2)
    phi_m = np.arctan2(py, px) + sig_ang * np.random.normal()
    theta_m = np.arctan2(pt, pz) + sig_ang * np.random.normal()
    tx = np.sin(theta_m) * np.cos(phi_m)
    ty = np.sin(theta_m) * np.sin(phi_m)
    tz = np.cos(theta_m)
    # true line: production vertex along the true direction; its point of closest transverse approach to the
    # true primary vertex (straight line: curvature is negligible over the few-cm lever arms that matter)
    ux = px / p
    uy = py / p
    uz = pz / p
    uxy2 = ux * ux + uy * uy
    s = ((pvx - vx) * ux + (pvy - vy) * uy) / uxy2
    x0 = vx + s * ux
    y0 = vy + s * uy
    z0 = vz + s * uz
    # hits: pixel layers beyond the production radius, ~10 strip hits
    npix = 0
    for r_layer in PIXEL_LAYERS_MM:
        if r_layer > r_prod and np.random.random() < 0.97:
            npix += 1
    nstrip = min(max(int(10 + 2.0 * np.random.normal() - r_prod / 100.0), 0), 14)
    nhits = npix + nstrip
    sd0 = _d0_sigma(pt, sin_theta)
    sz0 = _z0_sigma(pt, sin_theta)
    if npix == 0:  # no pixel hit: the impact parameter is extrapolated from the strips
        sd0 *= 5.0
        sz0 *= 5.0
    scale = 1.0
    chi2_scale = 1.0
    quality = 7.0
    u = np.random.random()
    fake = 0.0
    if u < FAKE_TRACK_FRACTION:
        fake = 1.0
    elif u < FAKE_TRACK_FRACTION + BAD_TRACK_FRACTION:
        scale = BAD_TRACK_SCALE
        chi2_scale = 2.5
        quality = 7.0 if np.random.random() < 0.5 else 1.0
    elif u < FAKE_TRACK_FRACTION + BAD_TRACK_FRACTION + MS_TAIL_FRACTION:
        scale = MS_TAIL_SCALE
        chi2_scale = 1.3
    ndf = max(2 * nhits - 5, 1)
    chi2 = _chi2_ndf(min(ndf, 40)) * chi2_scale
    # displacement of the measured line, perpendicular to the track in the transverse plane (d0) and along z
    nx = -uy / np.sqrt(uxy2)
    ny = ux / np.sqrt(uxy2)
    if fake > 0:
        dd0 = FAKE_D0_SIGMA_MM * np.random.normal()
        dz0 = FAKE_Z0_SIGMA_MM * np.random.normal()
        chi2 = _chi2_ndf(min(ndf, 40)) * 3.0
        quality = 7.0 if np.random.random() < 0.3 else 1.0
    else:
        dd0 = sd0 * scale * np.random.normal()
        dz0 = sz0 * scale * np.random.normal()
    out[C_PX, k] = pt_m * np.cos(phi_m)
    out[C_PY, k] = pt_m * np.sin(phi_m)
    out[C_PZ, k] = pt_m * tz / np.sin(theta_m)
    pzm = out[C_PZ, k]
    out[C_E, k] = np.sqrt(pt_m * pt_m + pzm * pzm + PION_MASS ** 2)
    out[C_KIND, k] = TRACK
    out[C_Q, k] = q
    out[C_X0, k] = x0 + dd0 * nx
    out[C_Y0, k] = y0 + dd0 * ny
    out[C_Z0, k] = z0 + dz0
    out[C_TX, k] = tx
    out[C_TY, k] = ty
    out[C_TZ, k] = tz
    out[C_SD0, k] = sd0
    out[C_SZ0, k] = sz0
    out[C_CHI2, k] = chi2
    out[C_QUAL, k] = quality
    out[C_NPIX, k] = npix
    out[C_NHITS, k] = nhits
    out[C_GEN, k] = gen_index
    out[C_PU, k] = pu_vertex
    out[C_FAKE, k] = fake
    return k + 1


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
    n_lib = lib_offsets.shape[0] - 1
    if pileup_mu > 0 and n_lib == 0:
        raise ValueError("pile-up needs a minimum-bias library")
    capacity = int((offsets[-1] - offsets[0]) * 0.6 + n_events * (pileup_mu * 30.0 + 50.0) + 100)
    out = np.empty((N_CANDIDATE_COLUMNS, capacity))
    cand_offsets = np.zeros(n_events + 1, np.int64)
    pv_true = np.zeros((n_events, 3))
    pv_reco = np.zeros((n_events, 3))
    npv = np.ones(n_events, np.int32)
    k = 0
    for ev in range(n_events):
        base = offsets[ev]
        n = offsets[ev + 1] - base
        n_pu = np.random.poisson(pileup_mu) if pileup_mu > 0 else 0
        pileup = np.empty(n_pu, np.int64)
        n_pu_particles = 0
        for v in range(n_pu):
            pileup[v] = np.random.randint(n_lib)
            n_pu_particles += lib_offsets[pileup[v] + 1] - lib_offsets[pileup[v]]
        # make room for the worst case: every particle, twice over for secondaries from material interactions
        need = k + CANDIDATES_PER_PARTICLE_MAX * (n + n_pu_particles) + 100
        if need > out.shape[1]:
            grown = np.empty((N_CANDIDATE_COLUMNS, max(need, 2 * out.shape[1])))
            grown[:, :k] = out[:, :k]
            out = grown
        k, n_pu_reco = simulate_event_candidates(base, n, status, pid, charge, px, py, pz, e, vx, vy, vz, pileup,
                                                 lib_offsets, lib_pid, lib_charge, lib_p4, lib_vertex,
                                                 lib_vertex_tracks, out, k, pv_true[ev], pv_reco[ev])
        npv[ev] = 1 + n_pu_reco
        cand_offsets[ev + 1] = k
    return out[:, :k], cand_offsets, pv_true, pv_reco, npv
