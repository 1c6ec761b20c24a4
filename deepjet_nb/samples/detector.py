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
"""

from __future__ import annotations

import numba
import numpy as np

from .pythia import BEAMSPOT_SIGMA_XY_MM, BEAMSPOT_SIGMA_Z_MM

# Candidate kinds
TRACK, PHOTON, NEUTRAL_HADRON = 0, 1, 2
# Origin of a candidate's particle (truth bookkeeping, never an input): generator/pileup, conversion, nuclear
ORIGIN_GENERATOR, ORIGIN_CONVERSION, ORIGIN_NUCLEAR = 0, 1, 2

PION_MASS = 0.13957
ELECTRON_MASS = 0.000511
NUCLEON_MASS = 0.93827
B_FIELD_T = 3.8
CURVATURE_PER_INV_GEV = 0.3 * B_FIELD_T / 1000.0  # 1/R in 1/mm for pT = 1 GeV
PV_SIGMA_MM = np.array([0.008, 0.008, 0.015])
# Pile-up vertices lie in the beam spot (Pythia's vertex spread of the hard interaction); one is reconstructed
# with CMS's vertex quality ndof > 4, i.e. at least 4 reconstructed tracks [TRK-11-001], each found with the
# prompt-track efficiency
PU_VERTEX_MIN_TRACKS, PU_VERTEX_TRACK_EFFICIENCY = 4, 0.9

# Layer kinds
PASSIVE, PIXEL, STRIP, STEREO = 0, 1, 2, 3
# radius (mm), X/X0 and lambda/lambda_I at normal incidence, kind, r-phi and z resolution (mm; 0 = none), pitch
# in r-phi (mm), strip length (mm), hit efficiency
_LAYERS = (
    # beam pipe: 0.8 mm beryllium (X0 = 352.8 mm, lambda_I = 421 mm)
    (22.5, 0.0023, 0.0019, PASSIVE, 0.0, 0.0, 0.0, 0.0, 0.0),
    # the Phase-0 barrel pixel layers (Run 1 and 2016), modules with their cooling and cables
    (44.0, 0.020, 0.005, PIXEL, 0.010, 0.022, 0.100, 0.0, 0.98),
    (73.0, 0.020, 0.005, PIXEL, 0.010, 0.022, 0.100, 0.0, 0.98),
    (102.0, 0.020, 0.005, PIXEL, 0.010, 0.022, 0.100, 0.0, 0.98),
    (200.0, 0.030, 0.0075, PASSIVE, 0.0, 0.0, 0.0, 0.0, 0.0),  # pixel support tube and services
    (255.0, 0.030, 0.0075, STEREO, 0.023, 0.23, 0.080, 117.0, 0.98),
    (339.0, 0.030, 0.0075, STEREO, 0.023, 0.23, 0.080, 117.0, 0.98),
    (418.5, 0.030, 0.0075, STRIP, 0.035, 0.0, 0.120, 117.0, 0.98),
    (498.0, 0.030, 0.0075, STRIP, 0.035, 0.0, 0.120, 117.0, 0.98),
    (550.0, 0.050, 0.0125, PASSIVE, 0.0, 0.0, 0.0, 0.0, 0.0),  # TIB/TID services, TIB support
    (608.0, 0.018, 0.0045, STEREO, 0.053, 0.53, 0.183, 188.0, 0.98),
    (692.0, 0.018, 0.0045, STEREO, 0.053, 0.53, 0.183, 188.0, 0.98),
    (780.0, 0.018, 0.0045, STRIP, 0.053, 0.0, 0.183, 188.0, 0.98),
    (868.0, 0.018, 0.0045, STRIP, 0.053, 0.0, 0.183, 188.0, 0.98),
    (965.0, 0.018, 0.0045, STRIP, 0.035, 0.0, 0.122, 188.0, 0.98),
    (1080.0, 0.018, 0.0045, STRIP, 0.035, 0.0, 0.122, 188.0, 0.98),
)
N_LAYERS = len(_LAYERS)
LAYER_R_MM = np.array([layer[0] for layer in _LAYERS])
LAYER_X0 = np.array([layer[1] for layer in _LAYERS])
LAYER_LAMBDA = np.array([layer[2] for layer in _LAYERS])
LAYER_KIND = np.array([layer[3] for layer in _LAYERS], np.int64)
LAYER_SIGMA_RPHI = np.array([layer[4] for layer in _LAYERS])
LAYER_SIGMA_Z = np.array([layer[5] for layer in _LAYERS])
LAYER_PITCH = np.array([layer[6] for layer in _LAYERS])
LAYER_STRIP_LENGTH = np.array([layer[7] for layer in _LAYERS])
LAYER_EFFICIENCY = np.array([layer[8] for layer in _LAYERS])
PIXEL_LAYERS_MM = LAYER_R_MM[LAYER_KIND == PIXEL]
PIXEL_Z_PITCH_MM = 0.150

# Multiple scattering: fraction of scatterings in the single-scattering tail and where the tail starts [PDG 34.3]
MS_TAIL_FRACTION, MS_TAIL_START, MS_TAIL_END = 0.02, 2.5, 50.0
# Track fit and reconstruction
OUTLIER_CHI2 = 20.0  # KF outlier rejection [TRK-11-001]
MIN_RPHI_HITS, MIN_Z_HITS = 5, 2
TRACK_ALGO_EFFICIENCY_CENTRAL, TRACK_ALGO_EFFICIENCY_FORWARD = 0.95, 0.90
DISPLACED_EFFICIENCY_LENGTH_MM = 250.0
# highPurity selection (CMSSW selectHighPurity: chi2n_par, res_par [cm], d0/dz_par1, d0/dz_par2)
HP_CHI2N_PAR, HP_RES_PAR_MM = 0.7, (0.03, 0.01)
HP_D0_PAR1, HP_DZ_PAR1, HP_D0_PAR2, HP_DZ_PAR2, HP_POWER = 0.3, 0.35, 0.4, 0.4, 4.0
HP_MIN_LAYERS, HP_MIN_3D_LAYERS, HP_MAX_LOST_LAYERS = 3, 3, 2
# Nuclear interactions: nuclear enhancement of the pp multiplicity for Si and the energy share of the products
NI_NUCLEAR_RATIO, NI_VISIBLE_FRACTION, NI_MEAN_PT_REL = 1.5, 0.7, 0.35
# Local density of charged particles in (eta, phi) cells, for the wrong-hit probability
DENSITY_PT_MIN, DENSITY_CELL, DENSITY_ETA_MAX = 0.5, 0.05, 3.0
DENSITY_N_ETA = int(2 * DENSITY_ETA_MAX / DENSITY_CELL)
DENSITY_N_PHI = int(2 * np.pi / DENSITY_CELL)


@numba.njit(cache=True)
def seed_numba(seed):
    """Seed numba's random generator (used by every kernel below; single-threaded, so reproducible)."""
    np.random.seed(seed)


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

    density = np.zeros((DENSITY_N_ETA, DENSITY_N_PHI))
    for i in range(1, n):
        if status[base + i] > 0 and charge[base + i] != 0:
            fill_density(density, px[base + i], py[base + i], pz[base + i])
    # pile-up interactions: each at its vertex in the beam spot, its library event rotated in phi and mirrored
    # in z; their charged particles count in the track density too
    n_pu_reco = 0
    pu_geometry = np.empty((pileup.shape[0], 6))
    for v in range(pileup.shape[0]):
        j = pileup[v]
        found = 0
        for _ in range(lib_vertex_tracks[j]):
            if np.random.random() < PU_VERTEX_TRACK_EFFICIENCY:
                found += 1
        if found >= PU_VERTEX_MIN_TRACKS:
            n_pu_reco += 1
        angle = (np.random.random() * 2.0 - 1.0) * np.pi
        c = np.cos(angle)
        s_ = np.sin(angle)
        mirror = 1.0 if np.random.random() < 0.5 else -1.0
        pu_geometry[v, 0] = c
        pu_geometry[v, 1] = s_
        pu_geometry[v, 2] = mirror
        pu_geometry[v, 3] = np.random.normal() * BEAMSPOT_SIGMA_XY_MM
        pu_geometry[v, 4] = np.random.normal() * BEAMSPOT_SIGMA_XY_MM
        pu_geometry[v, 5] = np.random.normal() * BEAMSPOT_SIGMA_Z_MM
        for i in range(lib_offsets[j], lib_offsets[j + 1]):
            if lib_charge[i] != 0:
                fill_density(density, c * lib_p4[0, i] - s_ * lib_p4[1, i], s_ * lib_p4[0, i] + c * lib_p4[1, i],
                             mirror * lib_p4[2, i])

    k = n_out
    for i in range(1, n):
        if status[base + i] <= 0:
            continue
        a = abs(pid[base + i])
        if a == 12 or a == 14 or a == 16:
            continue
        k = _add_particle(out, k, i, pid[base + i], charge[base + i], px[base + i], py[base + i], pz[base + i],
                          e[base + i], vx[base + i], vy[base + i], vz[base + i], pvx, pvy, pvz, 0, density)
    for v in range(pileup.shape[0]):
        c = pu_geometry[v, 0]
        s_ = pu_geometry[v, 1]
        mirror = pu_geometry[v, 2]
        xv = pu_geometry[v, 3]
        yv = pu_geometry[v, 4]
        zv = pu_geometry[v, 5]
        j = pileup[v]
        for i in range(lib_offsets[j], lib_offsets[j + 1]):
            qx = c * lib_p4[0, i] - s_ * lib_p4[1, i]
            qy = s_ * lib_p4[0, i] + c * lib_p4[1, i]
            x = xv + c * lib_vertex[0, i] - s_ * lib_vertex[1, i]
            y = yv + s_ * lib_vertex[0, i] + c * lib_vertex[1, i]
            k = _add_particle(out, k, -1, lib_pid[i], lib_charge[i], qx, qy, mirror * lib_p4[2, i], lib_p4[3, i],
                              x, y, zv + mirror * lib_vertex[2, i], pvx, pvy, pvz, v + 1, density)
    return k, n_pu_reco


CANDIDATE_COLUMNS = (
    "px", "py", "pz", "e", "kind", "charge", "x0", "y0", "z0", "tx", "ty", "tz", "sigma_d0", "sigma_z0",
    "chi2", "quality", "npix", "nhits", "gen_index", "pu_vertex", "fake", "origin", "nwrong", "d0_pull",
)
C_PX, C_PY, C_PZ, C_E, C_KIND, C_Q = 0, 1, 2, 3, 4, 5
C_X0, C_Y0, C_Z0, C_TX, C_TY, C_TZ, C_SD0, C_SZ0 = 6, 7, 8, 9, 10, 11, 12, 13
C_CHI2, C_QUAL, C_NPIX, C_NHITS, C_GEN, C_PU, C_FAKE = 14, 15, 16, 17, 18, 19, 20
C_ORIGIN, C_NWRONG, C_D0_PULL = 21, 22, 23
N_CANDIDATE_COLUMNS = len(CANDIDATE_COLUMNS)
assert CANDIDATE_COLUMNS.index("d0_pull") == C_D0_PULL
# the most rows one particle can add (a nuclear interaction: the parent, its products and a remnant)
MAX_ROWS_PER_PARTICLE = 24


# ------------------------------------------------------------------------------------- particles and material


@numba.njit(cache=True)
def _add_particle(out, k, gen_index, code, q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz, pu_vertex, density):
    """Append the candidates of one particle: it crosses the material (conversion, nuclear interaction), then
    its track and/or calorimeter deposit, and those of its interaction products."""
    pt = np.sqrt(px * px + py * py)
    if pt < 1e-6 or k + MAX_ROWS_PER_PARTICLE > out.shape[1]:
        return k
    a = abs(code)
    r_prod = np.sqrt((vx - pvx) ** 2 + (vy - pvy) ** 2)  # pileup vertices lie within the beam spot too
    interacts = a == 22 or (a > 100 and a < 1000000)  # photons convert, hadrons interact with nuclei
    reach = 2.0 * pt / CURVATURE_PER_INV_GEV if q != 0 else 1e12  # a charged particle loops inside 2 R
    layer = _interaction_layer(a, pt, pz, r_prod, reach) if interacts else -1
    if layer < 0:
        return _reconstruct(out, k, gen_index, code, q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz, pu_vertex,
                            N_LAYERS, ORIGIN_GENERATOR, density)
    x, y, z, ux, uy = _position_at_radius(q, px, py, pz, vx - pvx, vy - pvy, vz, LAYER_R_MM[layer])
    x += pvx
    y += pvy
    if a == 22:
        return _convert(out, k, gen_index, e, px, py, pz, x, y, z, pvx, pvy, pvz, pu_vertex, density)
    if q != 0:  # the interacting hadron's track ends at the interaction: hits on the layers inside only
        k = _reconstruct(out, k, gen_index, code, q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz, pu_vertex, layer,
                         ORIGIN_GENERATOR, density)
    p = np.sqrt(pt * pt + pz * pz)
    return _nuclear_products(out, k, gen_index, q, e, ux * pt / p, uy * pt / p, pz / p, x, y, z, pvx, pvy, pvz,
                             pu_vertex, density)


@numba.njit(cache=True)
def _interaction_layer(a, pt, pz, r_prod, reach):
    """Index of the first layer beyond ``r_prod`` where the particle converts (photon, a == 22) or interacts
    with a nucleus (hadron), or -1: probabilities 1 - exp(-(7/9) X/X0 / sin theta), 1 - exp(-lambda / sin
    theta)."""
    inv_sin = np.sqrt(pt * pt + pz * pz) / pt
    for layer in range(N_LAYERS):
        if LAYER_R_MM[layer] <= r_prod:
            continue
        if LAYER_R_MM[layer] > reach:
            return -1
        if a == 22:
            prob = 1.0 - np.exp(-7.0 / 9.0 * LAYER_X0[layer] * inv_sin)
        else:
            prob = 1.0 - np.exp(-LAYER_LAMBDA[layer] * inv_sin)
        if np.random.random() < prob:
            return layer
    return -1


@numba.njit(cache=True)
def _circle(q, pt, ux, uy, dx, dy):
    """The transverse circle of a charged particle at (dx, dy) moving along (ux, uy): radius, charge sign and
    centre, to the right of the motion for positive charge (B along +z)."""
    rho = pt / CURVATURE_PER_INV_GEV
    sgn = 1.0 if q > 0 else -1.0
    return rho, sgn, dx + sgn * rho * uy, dy - sgn * rho * ux


@numba.njit(cache=True)
def _position_at_radius(q, px, py, pz, dx, dy, z0, radius):
    """Where a particle produced at (dx, dy, z0) (transverse position relative to the primary vertex) crosses
    the cylinder of ``radius``: (x, y, z, ux, uy) with the transverse unit direction there (helix for charged
    particles in the 3.8 T field, straight line for neutral ones)."""
    pt = np.sqrt(px * px + py * py)
    ux = px / pt
    uy = py / pt
    if q == 0:
        b = dx * ux + dy * uy
        c = dx * dx + dy * dy - radius * radius
        s = -b + np.sqrt(max(b * b - c, 0.0))
        return dx + s * ux, dy + s * uy, z0 + s * pz / pt, ux, uy
    rho, sgn, cx, cy = _circle(q, pt, ux, uy, dx, dy)
    d = np.sqrt(cx * cx + cy * cy)
    along = (radius * radius - rho * rho + d * d) / (2.0 * d)
    h = np.sqrt(max(radius * radius - along * along, 0.0))
    best_x = dx
    best_y = dy
    best_turn = 1e9
    for side in (-1.0, 1.0):
        xx = along * cx / d + side * h * (-cy / d)
        yy = along * cy / d + side * h * (cx / d)
        turn = _turning_angle(dx - cx, dy - cy, xx - cx, yy - cy, sgn)
        if turn < best_turn:
            best_turn = turn
            best_x = xx
            best_y = yy
    # direction of motion on the circle: clockwise for positive charge
    tx = sgn * (best_y - cy) / rho
    ty = -sgn * (best_x - cx) / rho
    return best_x, best_y, z0 + best_turn * rho * pz / pt, tx, ty


@numba.njit(cache=True)
def _turning_angle(ax, ay, bx, by, sgn):
    """Angle in [0, 2 pi) turned from radius vector a to b along the motion (clockwise if sgn > 0)."""
    ang = np.arctan2(ax * by - ay * bx, ax * bx + ay * by)  # counter-clockwise angle from a to b
    if sgn > 0:
        ang = -ang
    if ang < 0:
        ang += 2.0 * np.pi
    return ang


@numba.njit(cache=True)
def _convert(out, k, gen_index, e, px, py, pz, x, y, z, pvx, pvy, pvz, pu_vertex, density):
    """gamma -> e+ e- at (x, y, z): energy share x from the complete-screening Bethe-Heitler spectrum
    1 - 4/3 x (1 - x) [PDG 34.4]; both along the photon (opening angle ~ m_e / E neglected)."""
    while True:
        share = np.random.random()
        if np.random.random() < 1.0 - 4.0 / 3.0 * share * (1.0 - share):
            break
    p = np.sqrt(px * px + py * py + pz * pz)
    for leg in range(2):
        f = share if leg == 0 else 1.0 - share
        el = max(f * e, ELECTRON_MASS * 1.0001)
        pl = np.sqrt(el * el - ELECTRON_MASS ** 2)
        k = _reconstruct(out, k, gen_index, 11, 1.0 if leg == 0 else -1.0, px / p * pl, py / p * pl, pz / p * pl,
                         el, x, y, z, pvx, pvy, pvz, pu_vertex, N_LAYERS, ORIGIN_CONVERSION, density)
    return k


@numba.njit(cache=True)
def _pp_charged_multiplicity(s):
    """Mean charged multiplicity of inelastic pp collisions at c.o.m. energy squared ``s`` (GeV^2), the
    a + b ln s + c ln^2 s fit of the PDG review of multiplicities."""
    ls = np.log(max(s, 4.0))
    return 0.88 + 0.44 * ls + 0.118 * ls * ls


@numba.njit(cache=True)
def _nuclear_products(out, k, gen_index, q, e, ux, uy, uz, x, y, z, pvx, pvy, pvz, pu_vertex, density):
    """Products of an inelastic hadron-nucleus interaction at (x, y, z) of a hadron of energy ``e`` along unit
    vector u: Poisson(R_A <n_ch>_pp) charged pions (at least one) and one neutral remnant share
    ``NI_VISIBLE_FRACTION`` of the energy (flat Dirichlet), each with an exponential pT relative to u (mean
    ``NI_MEAN_PT_REL``); charges alternate from the parent's."""
    s = 2.0 * NUCLEON_MASS * e + 2.0 * NUCLEON_MASS ** 2
    n_ch = max(np.random.poisson(NI_NUCLEAR_RATIO * _pp_charged_multiplicity(s)), 1)
    n_ch = min(n_ch, MAX_ROWS_PER_PARTICLE - 3)
    weights = np.random.exponential(1.0, n_ch + 1)
    weights *= NI_VISIBLE_FRACTION * e / weights.sum()
    # two unit vectors perpendicular to u
    if abs(uz) < 0.9:
        v1x, v1y, v1z = -uy, ux, 0.0
    else:
        v1x, v1y, v1z = 0.0, -uz, uy
    nv = np.sqrt(v1x * v1x + v1y * v1y + v1z * v1z)
    v1x /= nv
    v1y /= nv
    v1z /= nv
    v2x = uy * v1z - uz * v1y
    v2y = uz * v1x - ux * v1z
    v2z = ux * v1y - uy * v1x
    charge = q if q != 0 else 1.0
    for j in range(n_ch + 1):
        neutral = j == n_ch
        mass = 0.9396 if neutral else PION_MASS
        ej = weights[j]
        if ej <= mass * 1.001:
            continue
        pj = np.sqrt(ej * ej - mass * mass)
        ptrel = min(np.random.exponential(NI_MEAN_PT_REL), 0.9 * pj)
        plong = np.sqrt(pj * pj - ptrel * ptrel)
        az = 2.0 * np.pi * np.random.random()
        ca = np.cos(az) * ptrel
        sa = np.sin(az) * ptrel
        qx = plong * ux + ca * v1x + sa * v2x
        qy = plong * uy + ca * v1y + sa * v2y
        qz = plong * uz + ca * v1z + sa * v2z
        if neutral:
            k = _reconstruct(out, k, gen_index, 2112, 0.0, qx, qy, qz, ej, x, y, z, pvx, pvy, pvz, pu_vertex,
                             N_LAYERS, ORIGIN_NUCLEAR, density)
        else:
            k = _reconstruct(out, k, gen_index, 211, charge, qx, qy, qz, ej, x, y, z, pvx, pvy, pvz, pu_vertex,
                             N_LAYERS, ORIGIN_NUCLEAR, density)
            charge = -charge
    return k


@numba.njit(cache=True)
def _reconstruct(out, k, gen_index, code, q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz, pu_vertex, stop_layer,
                 origin, density):
    """The track of a charged particle (hits on the layers before ``stop_layer``) or, without a track, its
    calorimeter deposit; a particle that interacted (``stop_layer < N_LAYERS``) leaves no deposit of its own."""
    pt = np.sqrt(px * px + py * py)
    if pt < 1e-6:
        return k
    eta = np.arcsinh(pz / pt)
    aeta = abs(eta)
    a = abs(code)
    r_prod = np.sqrt((vx - pvx) ** 2 + (vy - pvy) ** 2)  # pileup vertices lie within the beam spot too
    if q != 0 and pt > 1.0 and aeta < 2.5:
        eff = (TRACK_ALGO_EFFICIENCY_CENTRAL if aeta < 1.5 else TRACK_ALGO_EFFICIENCY_FORWARD) * np.exp(
            -r_prod / DISPLACED_EFFICIENCY_LENGTH_MM)
        if np.random.random() < eff:
            k_new = _add_track(out, k, gen_index, q, px, py, pz, vx, vy, vz, pvx, pvy, pvz, r_prod, pu_vertex,
                               stop_layer, density)
            if k_new > k:
                out[C_ORIGIN, k] = origin
                return k_new
    if stop_layer < N_LAYERS or aeta > 3.0 or a == 13:
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
    out[C_ORIGIN, k] = origin
    return k + 1


# ---------------------------------------------------------------------------------------- local track density


@numba.njit(cache=True)
def fill_density(density, px, py, pz):
    """Count a charged particle with pT > ``DENSITY_PT_MIN`` in its (eta, phi) cell of ``density``."""
    pt = np.sqrt(px * px + py * py)
    if pt < DENSITY_PT_MIN:
        return
    i, j = _density_cell(pt, pz, px, py)
    if i >= 0:
        density[i, j] += 1.0


@numba.njit(cache=True)
def _density_cell(pt, pz, px, py):
    eta = np.arcsinh(pz / pt)
    if abs(eta) >= DENSITY_ETA_MAX:
        return -1, 0
    i = int((eta + DENSITY_ETA_MAX) / DENSITY_CELL)
    j = int((np.arctan2(py, px) + np.pi) / (2 * np.pi) * DENSITY_N_PHI) % DENSITY_N_PHI
    return min(i, DENSITY_N_ETA - 1), j


@numba.njit(cache=True)
def _local_density(density, px, py, pz):
    """Charged particles per unit (eta, phi) around a direction (3 x 3 cells), not counting the particle."""
    pt = np.sqrt(px * px + py * py)
    i, j = _density_cell(pt, pz, px, py)
    if i < 0:
        return 0.0
    count = 0.0
    for di in range(-1, 2):
        ii = i + di
        if ii < 0 or ii >= DENSITY_N_ETA:
            continue
        for dj in range(-1, 2):
            count += density[ii, (j + dj) % DENSITY_N_PHI]
    if pt >= DENSITY_PT_MIN:
        count -= 1.0
    return max(count, 0.0) / (9.0 * DENSITY_CELL * (2 * np.pi / DENSITY_N_PHI))


# ------------------------------------------------------------------------------------------ hits and the fit


@numba.njit(cache=True)
def highland(p, x_over_x0):
    """Plane multiple-scattering width theta_0 (rad) of a singly charged beta = 1 particle of momentum ``p``
    (GeV) through ``x_over_x0`` radiation lengths [PDG 34.3, Highland-Lynch-Dahl]."""
    return 0.0136 / p * np.sqrt(x_over_x0) * (1.0 + 0.038 * np.log(x_over_x0))


@numba.njit(cache=True)
def _scattering_angle(theta0):
    """One projected scattering angle: Gaussian core, and in ``MS_TAIL_FRACTION`` of the cases a single-
    scattering tail dN/dtheta ~ theta^-3 between ``MS_TAIL_START`` and ``MS_TAIL_END`` theta_0."""
    if np.random.random() < MS_TAIL_FRACTION:
        lo = MS_TAIL_START * theta0
        ratio2 = (MS_TAIL_START / MS_TAIL_END) ** 2
        angle = lo / np.sqrt(1.0 - np.random.random() * (1.0 - ratio2))
        return angle if np.random.random() < 0.5 else -angle
    return theta0 * np.random.normal()


@numba.njit(cache=True)
def gls_fit(r, u, sigma, use, ms_r, ms_var, n_ms, n_par):
    """Weighted least-squares fit of u(r) = a0 + a1 r (+ a2 r^2 / 2) to the hits with ``use``.

    The covariance of the hits is diag(sigma^2) plus, for every scatterer j (radius ``ms_r[j]``, variance of the
    slope kink ``ms_var[j]``, j < ``n_ms``), ms_var_j (r_i - r_j)(r_k - r_j) for hits beyond it: the global-chi2
    form of a Kalman filter with multiple scattering as process noise. Returns ``(params, cov, chi2,
    hit_chi2)``; ``hit_chi2[i]`` = residual_i^2 / var(residual_i) for the used hits, 0 elsewhere.
    """
    n = r.shape[0]
    m = 0
    for i in range(n):
        if use[i]:
            m += 1
    idx = np.empty(m, np.int64)
    m = 0
    for i in range(n):
        if use[i]:
            idx[m] = i
            m += 1
    v = np.zeros((m, m))
    design = np.zeros((m, n_par))
    y = np.empty(m)
    for a in range(m):
        ri = r[idx[a]]
        y[a] = u[idx[a]]
        design[a, 0] = 1.0
        if n_par > 1:
            design[a, 1] = ri
        if n_par > 2:
            design[a, 2] = 0.5 * ri * ri
        for b in range(a + 1):
            rk = r[idx[b]]
            s = 0.0
            for j in range(n_ms):
                if ms_r[j] < ri and ms_r[j] < rk:
                    s += ms_var[j] * (ri - ms_r[j]) * (rk - ms_r[j])
            v[a, b] = s
            v[b, a] = s
        v[a, a] += sigma[idx[a]] ** 2
    w = np.linalg.inv(v)
    wa = w @ design
    cov = np.linalg.inv(design.T @ wa)
    params = cov @ (wa.T @ y)
    res = y - design @ params
    chi2 = res @ (w @ res)
    res_cov = v - design @ cov @ design.T
    hit_chi2 = np.zeros(n)
    for a in range(m):
        hit_chi2[idx[a]] = res[a] * res[a] / max(res_cov[a, a], 1e-30)
    return params, cov, chi2, hit_chi2


@numba.njit(cache=True)
def _true_dca(q, px, py, pz, dx, dy, z0):
    """Point of closest transverse approach to the primary vertex of the trajectory through (dx, dy, z0)
    (relative to the PV in x, y), and the transverse unit direction there: (x, y, z, tx, ty)."""
    pt = np.sqrt(px * px + py * py)
    ux = px / pt
    uy = py / pt
    if q == 0 or dx * dx + dy * dy < 1e-16:
        s = -(dx * ux + dy * uy)
        return dx + s * ux, dy + s * uy, z0 + s * pz / pt, ux, uy
    rho, sgn, cx, cy = _circle(q, pt, ux, uy, dx, dy)
    d = np.sqrt(cx * cx + cy * cy)
    f = 1.0 - rho / d
    x = cx * f
    y = cy * f
    # signed arc from the DCA to the production point along the motion, in (-pi, pi] * rho
    turn = _turning_angle(x - cx, y - cy, dx - cx, dy - cy, sgn)
    if turn > np.pi:
        turn -= 2.0 * np.pi
    tx = sgn * (y - cy) / rho
    ty = -sgn * (x - cx) / rho
    return x, y, z0 - turn * rho * pz / pt, tx, ty


@numba.njit(cache=True)
def _add_track(out, k, gen_index, q, px, py, pz, vx, vy, vz, pvx, pvy, pvz, r_prod, pu_vertex, stop_layer,
               density):
    """Hits, multiple scattering, wrong hits and the fit of one charged particle; appends the track if it is
    reconstructed (enough hits, measured pT > 1 GeV)."""
    pt = np.sqrt(px * px + py * py)
    p = np.sqrt(pt * pt + pz * pz)
    sin_t = pt / p
    cot_t = pz / pt
    cosh_eta = p / pt
    rho_local = _local_density(density, px, py, pz)
    r_hit = np.zeros(N_LAYERS)
    u_hit = np.zeros(N_LAYERS)
    z_hit = np.zeros(N_LAYERS)
    s_u = np.zeros(N_LAYERS)
    s_z = np.zeros(N_LAYERS)
    use_u = np.zeros(N_LAYERS, np.bool_)
    use_z = np.zeros(N_LAYERS, np.bool_)
    wrong = np.zeros(N_LAYERS, np.bool_)
    is_pixel = np.zeros(N_LAYERS, np.bool_)
    ms_r = np.zeros(N_LAYERS)
    ms_var_u = np.zeros(N_LAYERS)
    ms_var_z = np.zeros(N_LAYERS)
    n_ms = 0
    # true deviations from the unscattered trajectory: offset and slope in r-phi (u) and r-z (w)
    u = 0.0
    du = 0.0
    w = 0.0
    dw = 0.0
    r_now = r_prod
    prev_u_sig = 0.0  # r-phi spread of the prediction from the last scatterer (for the search window)
    prev_z_sig = 0.0
    n_hits = 0
    first_layer = -1
    last_layer = -1
    for layer in range(min(stop_layer, N_LAYERS)):
        radius = LAYER_R_MM[layer]
        if radius <= r_prod:
            continue
        gap = radius - r_now
        u += du * gap
        w += dw * gap
        kind = LAYER_KIND[layer]
        if kind != PASSIVE and np.random.random() < LAYER_EFFICIENCY[layer]:
            su = LAYER_SIGMA_RPHI[layer]
            sz = LAYER_SIGMA_Z[layer]
            hu = u + su * np.random.normal()
            hz = w + sz * np.random.normal()
            # another particle's hit inside the search window
            win_u = max(3.0 * np.sqrt(su * su + (prev_u_sig * gap) ** 2), LAYER_PITCH[layer])
            if sz > 0:
                pitch_z = PIXEL_Z_PITCH_MM if kind == PIXEL else 0.0
                win_z = max(3.0 * np.sqrt(sz * sz + (prev_z_sig * gap) ** 2), pitch_z)
                area = 4.0 * win_u * win_z
            else:
                area = 2.0 * win_u * LAYER_STRIP_LENGTH[layer]
            rho_layer = rho_local / (radius * radius * cosh_eta)
            if np.random.random() < 1.0 - np.exp(-rho_layer * area):
                wrong[layer] = True
                hu = u + win_u * (2.0 * np.random.random() - 1.0)
                if sz > 0:
                    hz = w + win_z * (2.0 * np.random.random() - 1.0)
            r_hit[layer] = radius
            u_hit[layer] = hu
            z_hit[layer] = hz
            s_u[layer] = su
            s_z[layer] = sz
            use_u[layer] = True
            use_z[layer] = sz > 0
            is_pixel[layer] = kind == PIXEL
            n_hits += 1
            if first_layer < 0:
                first_layer = layer
            last_layer = layer
        # scattering in this layer's material
        theta0 = highland(p, LAYER_X0[layer] / sin_t)
        var_u = (theta0 / sin_t) ** 2
        var_z = (theta0 / (sin_t * sin_t)) ** 2
        du += _scattering_angle(theta0) / sin_t
        dw += _scattering_angle(theta0) / (sin_t * sin_t)
        ms_r[n_ms] = radius
        ms_var_u[n_ms] = var_u
        ms_var_z[n_ms] = var_z
        n_ms += 1
        prev_u_sig = np.sqrt(var_u)
        prev_z_sig = np.sqrt(var_z)
        r_now = radius
    n_u = 0
    n_z = 0
    for layer in range(N_LAYERS):
        n_u += use_u[layer]
        n_z += use_z[layer]
    if n_u < MIN_RPHI_HITS or n_z < MIN_Z_HITS:
        return k
    # fit, dropping the worst hit while its chi2 exceeds the outlier cut
    for _ in range(4):
        pu, cu, chi2_u, hit_u = gls_fit(r_hit, u_hit, s_u, use_u, ms_r, ms_var_u, n_ms, 3)
        pw, cz, chi2_z, hit_z = gls_fit(r_hit, z_hit, s_z, use_z, ms_r, ms_var_z, n_ms, 2)
        worst = -1
        worst_chi2 = OUTLIER_CHI2
        for layer in range(N_LAYERS):
            c = hit_u[layer] + hit_z[layer]
            if use_u[layer] and c > worst_chi2:
                if n_u - 1 < MIN_RPHI_HITS or (use_z[layer] and n_z - 1 < MIN_Z_HITS):
                    continue
                worst = layer
                worst_chi2 = c
        if worst < 0:
            break
        use_u[worst] = False
        n_u -= 1
        if use_z[worst]:
            use_z[worst] = False
            n_z -= 1
    # measured trajectory: the true one at its point of closest approach, moved by the fitted deviations
    x_d, y_d, z_d, tx_d, ty_d = _true_dca(q, px, py, pz, vx - pvx, vy - pvy, vz)
    kappa = CURVATURE_PER_INV_GEV / pt
    pt_m = CURVATURE_PER_INV_GEV / max(abs(kappa + pu[2]), 1e-9)
    if pt_m < 1.0:
        return k
    phi_m = np.arctan2(ty_d, tx_d) + pu[1]
    cot_m = cot_t + pw[1]
    nx = -ty_d
    ny = tx_d
    theta_m = np.arctan2(1.0, cot_m)
    sd0 = np.sqrt(cu[0, 0])
    sz0 = np.sqrt(cz[0, 0])
    ndf = n_u + n_z - 5
    chi2n = (chi2_u + chi2_z) / ndf
    n_pix = 0
    n_wrong = 0
    n_wrong_pix = 0
    n_3d = 0
    n_lost = 0
    for layer in range(N_LAYERS):
        if use_u[layer]:
            n_pix += is_pixel[layer]
            n_3d += use_z[layer]
            if wrong[layer]:
                n_wrong += 1
                n_wrong_pix += is_pixel[layer]
        elif LAYER_KIND[layer] != PASSIVE and first_layer <= layer <= last_layer:
            n_lost += 1
    fake = 1.0 if n_wrong >= 2 and 2 * n_wrong_pix >= max(n_pix, 1) else 0.0
    # compatibility with the particle's own interaction point (the closest vertex)
    dz = z_d + pw[0] - (vz if pu_vertex > 0 else pvz)
    d0 = np.sqrt((x_d + pu[0] * nx) ** 2 + (y_d + pu[0] * ny) ** 2)
    quality = 7.0 if _high_purity(n_u, n_3d, n_lost, chi2n, d0, sd0, dz, sz0, pt_m, 1.0 / sin_t) else 1.0

    pzm = pt_m / np.tan(theta_m)
    out[C_PX, k] = pt_m * np.cos(phi_m)
    out[C_PY, k] = pt_m * np.sin(phi_m)
    out[C_PZ, k] = pzm
    out[C_E, k] = np.sqrt(pt_m * pt_m + pzm * pzm + PION_MASS ** 2)
    out[C_KIND, k] = TRACK
    out[C_Q, k] = q
    out[C_X0, k] = pvx + x_d + pu[0] * nx
    out[C_Y0, k] = pvy + y_d + pu[0] * ny
    out[C_Z0, k] = z_d + pw[0]
    out[C_TX, k] = np.sin(theta_m) * np.cos(phi_m)
    out[C_TY, k] = np.sin(theta_m) * np.sin(phi_m)
    out[C_TZ, k] = np.cos(theta_m)
    out[C_SD0, k] = sd0
    out[C_SZ0, k] = sz0
    out[C_CHI2, k] = chi2n
    out[C_QUAL, k] = quality
    out[C_NPIX, k] = n_pix
    out[C_NHITS, k] = n_u
    out[C_GEN, k] = gen_index
    out[C_PU, k] = pu_vertex
    out[C_FAKE, k] = fake
    out[C_ORIGIN, k] = ORIGIN_GENERATOR
    out[C_NWRONG, k] = n_wrong
    out[C_D0_PULL, k] = pu[0] / sd0
    return k + 1


@numba.njit(cache=True)
def _high_purity(n_layers, n_3d, n_lost, chi2n, d0, sd0, dz, sz0, pt, p_over_pt):
    """CMS highPurity selection (CMSSW selectHighPurity; lengths in mm): layer counts, chi2/ndf below
    chi2n_par x n_layers, and |d0|, |dz| within (par x n_layers)^4 of the nominal and of the fitted errors."""
    if n_layers < HP_MIN_LAYERS or n_3d < HP_MIN_3D_LAYERS or n_lost > HP_MAX_LOST_LAYERS:
        return False
    if chi2n >= HP_CHI2N_PAR * n_layers:
        return False
    nominal_d0 = np.sqrt(HP_RES_PAR_MM[0] ** 2 + (HP_RES_PAR_MM[1] / pt) ** 2)
    nominal_dz = nominal_d0 * p_over_pt
    if abs(d0) >= (HP_D0_PAR1 * n_layers) ** HP_POWER * nominal_d0:
        return False
    if abs(dz) >= (HP_DZ_PAR1 * n_layers) ** HP_POWER * nominal_dz:
        return False
    if abs(d0) >= (HP_D0_PAR2 * n_layers) ** HP_POWER * sd0:
        return False
    return abs(dz) < (HP_DZ_PAR2 * n_layers) ** HP_POWER * sz0


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
        # make room: every particle and its material-interaction products (~1.8 candidates per visible
        # particle on average; the generator record's n counts unstable particles too)
        need = k + 2 * n + 4 * n_pu_particles + 100
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
