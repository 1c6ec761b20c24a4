"""Tracks of the detector model: hits, multiple scattering, wrong hits, the track fit and the track quality.

A charged particle crosses the layers of :mod:`.geometry` from its production radius outwards; every sensitive
layer gives a hit with the layer's resolution and efficiency (or another particle's hit in the search window,
with a probability from the local occupancy of :mod:`.occupancy`), every layer scatters it. A weighted
least-squares fit with the full covariance of hit errors and multiple scattering, with outlier rejection, gives
the measured impact parameters, direction, pT and their errors; the CMS highPurity selection on the measured
quantities gives the quality. The sources of the numbers are in :mod:`.detector`'s description ("Tracks").

The kernels keep one track's hits in small per-layer tables whose rows are named below (``H_*`` values,
``F_*`` flags, ``S_*`` scatterers).
"""

from __future__ import annotations

import numba
import numpy as np

from .candidates import (
    C_CHI2, C_D0_PULL, C_E, C_FAKE, C_GEN, C_KIND, C_NHITS, C_NPIX, C_NWRONG, C_ORIGIN, C_PU, C_PX, C_PY, C_PZ,
    C_Q, C_QUAL, C_SD0, C_SZ0, C_TX, C_TY, C_TZ, C_X0, C_Y0, C_Z0, ORIGIN_GENERATOR, PION_MASS, TRACK,
)
from .geometry import (
    CURVATURE_PER_INV_GEV, LAYER_EFFICIENCY, LAYER_KIND, LAYER_PITCH, LAYER_R_MM, LAYER_SIGMA_RPHI, LAYER_SIGMA_Z,
    LAYER_STRIP_LENGTH, LAYER_X0, N_LAYERS, PASSIVE, PIXEL, PIXEL_Z_PITCH_MM, true_dca,
)
from .occupancy import local_density

# Multiple scattering: fraction of scatterings in the single-scattering tail and where the tail starts [PDG 34.3]
MS_TAIL_FRACTION, MS_TAIL_START, MS_TAIL_END = 0.02, 2.5, 50.0
# Track finding: charged particles above this pT within the tracker acceptance
TRACK_PT_MIN, TRACK_ETA_MAX = 1.0, 2.5
# Track fit and reconstruction
OUTLIER_CHI2 = 20.0  # KF outlier rejection [TRK-11-001]
MAX_FITS = 4  # one fit and at most three refits without the worst outlier
MIN_RPHI_HITS, MIN_Z_HITS = 5, 2
N_TRACK_PARAMETERS = 5  # d0, phi, curvature in r-phi; z0, cot theta in r-z
TRACK_ALGO_EFFICIENCY_CENTRAL, TRACK_ALGO_EFFICIENCY_FORWARD = 0.95, 0.90
TRACK_ALGO_CENTRAL_ETA = 1.5
DISPLACED_EFFICIENCY_LENGTH_MM = 250.0
# highPurity selection (CMSSW selectHighPurity: chi2n_par, res_par [cm], d0/dz_par1, d0/dz_par2)
HP_CHI2N_PAR, HP_RES_PAR_MM = 0.7, (0.03, 0.01)
HP_D0_PAR1, HP_DZ_PAR1, HP_D0_PAR2, HP_DZ_PAR2, HP_POWER = 0.3, 0.35, 0.4, 0.4, 4.0
HP_MIN_LAYERS, HP_MIN_3D_LAYERS, HP_MAX_LOST_LAYERS = 3, 3, 2
QUALITY_HIGH_PURITY, QUALITY_LOOSE = 7.0, 1.0  # CMS track quality masks

# One track's hits, per layer (float64 (N_HIT_ROWS, N_LAYERS), 0 where the layer has none): radius, measured
# r-phi and z offsets from the unscattered trajectory, their resolutions
H_R, H_U, H_Z, H_SIGMA_U, H_SIGMA_Z = 0, 1, 2, 3, 4
N_HIT_ROWS = 5
# Flags of one track's hits, per layer (bool (N_FLAG_ROWS, N_LAYERS)): the r-phi and the z measurement enter the
# fit, the hit is another particle's, the layer is a pixel layer
F_USE_U, F_USE_Z, F_WRONG, F_PIXEL = 0, 1, 2, 3
N_FLAG_ROWS = 4
# One track's scatterers, in crossing order (float64 (N_SCATTERER_ROWS, N_LAYERS)): radius and the variance of
# the slope kink in r-phi and in r-z
S_R, S_VAR_U, S_VAR_Z = 0, 1, 2
N_SCATTERER_ROWS = 3


@numba.njit(cache=True)
def track_finding_efficiency(abs_eta, r_prod):
    """Algorithmic efficiency of finding the track of a charged particle produced at transverse radius
    ``r_prod`` (mm) from the primary vertex [TRK-11-001: 0.9-0.95 for charged hadrons, lower when displaced]."""
    central = abs_eta < TRACK_ALGO_CENTRAL_ETA
    return (TRACK_ALGO_EFFICIENCY_CENTRAL if central else TRACK_ALGO_EFFICIENCY_FORWARD) * np.exp(
        -r_prod / DISPLACED_EFFICIENCY_LENGTH_MM)


@numba.njit(cache=True)
def add_track(out, k, gen_index, q, px, py, pz, vx, vy, vz, pvx, pvy, pvz, r_prod, pu_vertex, stop_layer,
              density):
    """Hits, multiple scattering, wrong hits and the fit of one charged particle produced at (vx, vy, vz)
    (transverse radius ``r_prod`` from the primary vertex (pvx, pvy, pvz)), with hits on the layers before
    ``stop_layer``; appends the track as row ``k`` of ``out`` if it is reconstructed (enough hits, measured
    pT > 1 GeV). Returns the new row count."""
    hits, flags, scatterers, n_ms, first_layer, last_layer = _simulate_hits(
        px, py, pz, r_prod, stop_layer, local_density(density, px, py, pz))
    n_u, n_z = _count_measurements(flags)
    if n_u < MIN_RPHI_HITS or n_z < MIN_Z_HITS:
        return k
    fit_u, cov_u, chi2_u, fit_z, cov_z, chi2_z, n_u, n_z = _fit_rejecting_outliers(
        hits, flags, scatterers, n_ms, n_u, n_z)
    # measured trajectory: the true one at its point of closest approach, moved by the fitted deviations
    x_d, y_d, z_d, tx_d, ty_d = true_dca(q, px, py, pz, vx - pvx, vy - pvy, vz)
    pt = np.sqrt(px * px + py * py)
    pt_m = CURVATURE_PER_INV_GEV / max(abs(CURVATURE_PER_INV_GEV / pt + fit_u[2]), 1e-9)
    if pt_m < TRACK_PT_MIN:
        return k
    phi_m = np.arctan2(ty_d, tx_d) + fit_u[1]
    theta_m = np.arctan2(1.0, pz / pt + fit_z[1])
    # the fitted d0 moves the point of closest approach along the transverse normal (nx, ny) = (-ty, tx)
    nx = -ty_d
    ny = tx_d
    sd0 = np.sqrt(cov_u[0, 0])
    sz0 = np.sqrt(cov_z[0, 0])
    chi2n = (chi2_u + chi2_z) / (n_u + n_z - N_TRACK_PARAMETERS)
    n_pix, n_3d, n_lost, n_wrong, n_wrong_pix = _hit_pattern(flags, first_layer, last_layer)
    # compatibility with the particle's own interaction point (the closest vertex)
    dz = z_d + fit_z[0] - (vz if pu_vertex > 0 else pvz)
    d0 = np.sqrt((x_d + fit_u[0] * nx) ** 2 + (y_d + fit_u[0] * ny) ** 2)
    sin_t = pt / np.sqrt(pt * pt + pz * pz)
    high_purity = _high_purity(n_u, n_3d, n_lost, chi2n, d0, sd0, dz, sz0, pt_m, 1.0 / sin_t)

    _write_track_kinematics(out, k, q, pt_m, phi_m, theta_m)
    # the stored point of closest approach is absolute (the primary vertex added back)
    out[C_X0, k] = pvx + x_d + fit_u[0] * nx
    out[C_Y0, k] = pvy + y_d + fit_u[0] * ny
    out[C_Z0, k] = z_d + fit_z[0]
    out[C_SD0, k] = sd0
    out[C_SZ0, k] = sz0
    out[C_CHI2, k] = chi2n
    out[C_QUAL, k] = QUALITY_HIGH_PURITY if high_purity else QUALITY_LOOSE
    out[C_NPIX, k] = n_pix
    out[C_NHITS, k] = n_u
    _write_track_truth(out, k, gen_index, pu_vertex, n_wrong, n_wrong_pix, n_pix, fit_u[0] / sd0)
    return k + 1


@numba.njit(cache=True)
def highland(p, x_over_x0):
    """Plane multiple-scattering width theta_0 (rad) of a singly charged beta = 1 particle of momentum ``p``
    (GeV) through ``x_over_x0`` radiation lengths [PDG 34.3, Highland-Lynch-Dahl]."""
    return 0.0136 / p * np.sqrt(x_over_x0) * (1.0 + 0.038 * np.log(x_over_x0))


@numba.njit(cache=True)
def gls_fit(r, u, sigma, use, ms_r, ms_var, n_ms, n_par):
    """Weighted least-squares fit of u(r) = a0 + a1 r (+ a2 r^2 / 2) to the hits with ``use``.

    The covariance of the hits is diag(sigma^2) plus, for every scatterer j (radius ``ms_r[j]``, variance of the
    slope kink ``ms_var[j]``, j < ``n_ms``), ms_var_j (r_i - r_j)(r_k - r_j) for hits beyond it: the global-chi2
    form of a Kalman filter with multiple scattering as process noise. Returns ``(params, cov, chi2,
    hit_chi2)``; ``hit_chi2[i]`` = residual_i^2 / var(residual_i) for the used hits, 0 elsewhere.

    Solved by Cholesky whitening (V = L L^T; the ordinary fit of L^-1 y on L^-1 A) in plain loops: with at most
    a dozen hits, LAPACK and BLAS calls cost several times the arithmetic (the fit was most of the time of a
    pile-up sample), and the whitening never forms V^-1, which is stabler than inverting V.
    """
    idx = np.flatnonzero(use)
    v = _hit_covariance(r, sigma, idx, ms_r, ms_var, n_ms)
    design = _design_matrix(r, idx, n_par)
    y = u[idx]
    chol = _cholesky(v)
    design_w = _forward_substitute(chol, design)
    y_w = _forward_substitute(chol, y.reshape((-1, 1)))  # one column
    cov = _inverse_spd(_cross(design_w, design_w))
    params = _times(cov, _cross(design_w, y_w)[:, 0])
    chi2 = 0.0
    for a in range(idx.shape[0]):
        res_w = y_w[a, 0] - _dot(design_w[a], params)
        chi2 += res_w * res_w
    hit_chi2 = np.zeros(r.shape[0])
    for a in range(idx.shape[0]):
        res = y[a] - _dot(design[a], params)
        # variance of the residual: the hit's minus that of the fitted trajectory at the hit
        res_var = v[a, a] - _dot(design[a], _times(cov, design[a]))
        hit_chi2[idx[a]] = res * res / max(res_var, 1e-30)
    return params, cov, chi2, hit_chi2


@numba.njit(cache=True)
def _hit_covariance(r, sigma, idx, ms_r, ms_var, n_ms):
    """Covariance of the hits ``idx``: their resolutions and the multiple scattering they share (see
    :func:`gls_fit`)."""
    m = idx.shape[0]
    v = np.zeros((m, m))
    for a in range(m):
        ri = r[idx[a]]
        for b in range(a + 1):
            rk = r[idx[b]]
            s = 0.0
            for j in range(n_ms):
                if ms_r[j] < ri and ms_r[j] < rk:
                    s += ms_var[j] * (ri - ms_r[j]) * (rk - ms_r[j])
            v[a, b] = s
            v[b, a] = s
        v[a, a] += sigma[idx[a]] ** 2
    return v


@numba.njit(cache=True)
def _design_matrix(r, idx, n_par):
    """Derivatives of the trajectory u(r) at the hits ``idx`` by its ``n_par`` parameters: 1, r, r^2 / 2."""
    design = np.zeros((idx.shape[0], n_par))
    for a in range(idx.shape[0]):
        ri = r[idx[a]]
        design[a, 0] = 1.0
        if n_par > 1:
            design[a, 1] = ri
        if n_par > 2:
            design[a, 2] = 0.5 * ri * ri
    return design


@numba.njit(cache=True)
def _cholesky(v):
    """Lower-triangular L with L L^T = ``v`` (symmetric positive definite)."""
    m = v.shape[0]
    chol = np.zeros((m, m))
    for a in range(m):
        for b in range(a + 1):
            s = v[a, b]
            for c in range(b):
                s -= chol[a, c] * chol[b, c]
            chol[a, b] = np.sqrt(s) if a == b else s / chol[b, b]
    return chol


@numba.njit(cache=True)
def _forward_substitute(chol, rhs):
    """L^-1 ``rhs`` for lower-triangular L = ``chol`` and a matrix ``rhs`` (column by column)."""
    out = np.empty(rhs.shape)
    for col in range(rhs.shape[1]):
        for a in range(rhs.shape[0]):
            s = rhs[a, col]
            for c in range(a):
                s -= chol[a, c] * out[c, col]
            out[a, col] = s / chol[a, a]
    return out


@numba.njit(cache=True)
def _cross(left, right):
    """``left``^T ``right`` in plain loops (BLAS costs more than the arithmetic at these sizes)."""
    out = np.zeros((left.shape[1], right.shape[1]))
    for q in range(left.shape[1]):
        for t in range(right.shape[1]):
            s = 0.0
            for a in range(left.shape[0]):
                s += left[a, q] * right[a, t]
            out[q, t] = s
    return out


@numba.njit(cache=True)
def _times(matrix, vector):
    """``matrix`` ``vector`` in plain loops."""
    out = np.zeros(matrix.shape[0])
    for q in range(matrix.shape[0]):
        out[q] = _dot(matrix[q], vector)
    return out


@numba.njit(cache=True)
def _dot(left, right):
    """Scalar product of two vectors in a plain loop."""
    s = 0.0
    for a in range(left.shape[0]):
        s += left[a] * right[a]
    return s


@numba.njit(cache=True)
def _inverse_spd(matrix):
    """Inverse of a small symmetric positive definite matrix: (L^-1)^T L^-1 with L its Cholesky factor."""
    chol_inv = _forward_substitute(_cholesky(matrix), np.eye(matrix.shape[0]))
    return _cross(chol_inv, chol_inv)


# ------------------------------------------------------------------------------------------------------ hits


@numba.njit(cache=True)
def _simulate_hits(px, py, pz, r_prod, stop_layer, rho_local):
    """The hits of a particle of momentum (px, py, pz) produced at transverse radius ``r_prod``, on the layers
    before ``stop_layer``, in an occupancy of ``rho_local`` charged particles per unit (eta, phi).

    Returns ``(hits, flags, scatterers, n_scatterers, first_layer, last_layer)``: the tables of the rows ``H_*``,
    ``F_*`` and ``S_*``, and the first and last layer with a hit (-1 without hits).
    """
    pt = np.sqrt(px * px + py * py)
    p = np.sqrt(pt * pt + pz * pz)
    sin_t = pt / p
    cosh_eta = p / pt
    hits = np.zeros((N_HIT_ROWS, N_LAYERS))
    flags = np.zeros((N_FLAG_ROWS, N_LAYERS), np.bool_)
    scatterers = np.zeros((N_SCATTERER_ROWS, N_LAYERS))
    n_ms = 0
    # true deviations from the unscattered trajectory: offset and slope in r-phi (u) and r-z (w)
    u = 0.0
    du = 0.0
    w = 0.0
    dw = 0.0
    r_now = r_prod
    first_layer = -1
    last_layer = -1
    for layer in range(min(stop_layer, N_LAYERS)):
        radius = LAYER_R_MM[layer]
        if radius <= r_prod:
            continue
        gap = radius - r_now
        u += du * gap
        w += dw * gap
        if LAYER_KIND[layer] != PASSIVE and np.random.random() < LAYER_EFFICIENCY[layer]:
            # the spread of the prediction from the last scatterer widens the search window
            spread_u = _slope_spread(scatterers, S_VAR_U, n_ms) * gap
            spread_z = _slope_spread(scatterers, S_VAR_Z, n_ms) * gap
            _record_hit(hits, flags, layer, u, w, spread_u, spread_z, rho_local / (radius * radius * cosh_eta))
            if first_layer < 0:
                first_layer = layer
            last_layer = layer
        kink_u, kink_z = _scatter(scatterers, n_ms, layer, p, sin_t)
        du += kink_u
        dw += kink_z
        n_ms += 1
        r_now = radius
    return hits, flags, scatterers, n_ms, first_layer, last_layer


@numba.njit(cache=True)
def _slope_spread(scatterers, row, n_ms):
    """Width of the slope kink of the last scatterer (0 before the first one)."""
    return np.sqrt(scatterers[row, n_ms - 1]) if n_ms > 0 else 0.0


@numba.njit(cache=True)
def _record_hit(hits, flags, layer, u, w, spread_u, spread_z, rho_layer):
    """The hit on ``layer`` of a track at true offsets (u, w): smeared by the layer's resolution or, with the
    probability of another particle's hit in the search window (``rho_layer`` particles per mm^2), uniform in
    the window. ``spread_*`` are the widths of the prediction from the last scatterer."""
    kind = LAYER_KIND[layer]
    su = LAYER_SIGMA_RPHI[layer]
    sz = LAYER_SIGMA_Z[layer]
    hu = u + su * np.random.normal()
    hz = w + sz * np.random.normal()
    win_u, win_z, area = _search_window(layer, su, sz, spread_u, spread_z)
    if np.random.random() < 1.0 - np.exp(-rho_layer * area):
        flags[F_WRONG, layer] = True
        hu = u + win_u * (2.0 * np.random.random() - 1.0)
        if sz > 0:
            hz = w + win_z * (2.0 * np.random.random() - 1.0)
    hits[H_R, layer] = LAYER_R_MM[layer]
    hits[H_U, layer] = hu
    hits[H_Z, layer] = hz
    hits[H_SIGMA_U, layer] = su
    hits[H_SIGMA_Z, layer] = sz
    flags[F_USE_U, layer] = True
    flags[F_USE_Z, layer] = sz > 0
    flags[F_PIXEL, layer] = kind == PIXEL


@numba.njit(cache=True)
def _search_window(layer, su, sz, spread_u, spread_z):
    """Half-widths in r-phi and z of the search window on ``layer`` (3 sigma of the predicted position, at least
    the pitch; the strip length in z for r-phi-only strips, then ``win_z`` = 0) and its area (mm^2)."""
    win_u = max(3.0 * np.sqrt(su * su + spread_u ** 2), LAYER_PITCH[layer])
    if sz > 0:
        pitch_z = PIXEL_Z_PITCH_MM if LAYER_KIND[layer] == PIXEL else 0.0
        win_z = max(3.0 * np.sqrt(sz * sz + spread_z ** 2), pitch_z)
        return win_u, win_z, 4.0 * win_u * win_z
    return win_u, 0.0, 2.0 * win_u * LAYER_STRIP_LENGTH[layer]


@numba.njit(cache=True)
def _scatter(scatterers, n_ms, layer, p, sin_t):
    """Multiple scattering in the material of ``layer``: records the scatterer as row ``n_ms`` of
    ``scatterers`` and returns the drawn slope kinks in r-phi and in r-z."""
    theta0 = highland(p, LAYER_X0[layer] / sin_t)
    scatterers[S_R, n_ms] = LAYER_R_MM[layer]
    scatterers[S_VAR_U, n_ms] = (theta0 / sin_t) ** 2
    scatterers[S_VAR_Z, n_ms] = (theta0 / (sin_t * sin_t)) ** 2
    kink_u = _scattering_angle(theta0) / sin_t
    kink_z = _scattering_angle(theta0) / (sin_t * sin_t)
    return kink_u, kink_z


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


# ------------------------------------------------------------------------------------------------------ fit


@numba.njit(cache=True)
def _count_measurements(flags):
    """Numbers of r-phi and of z measurements that enter the fit."""
    n_u = 0
    n_z = 0
    for layer in range(N_LAYERS):
        n_u += flags[F_USE_U, layer]
        n_z += flags[F_USE_Z, layer]
    return n_u, n_z


@numba.njit(cache=True)
def _fit_rejecting_outliers(hits, flags, scatterers, n_ms, n_u, n_z):
    """Fit in r-phi (d0, phi, curvature) and r-z (z0, cot theta), dropping the worst hit while its chi2 exceeds
    ``OUTLIER_CHI2`` (at most ``MAX_FITS`` fits; the hit dropped after the last fit leaves the counts and the
    flags, not the fit). Clears the ``F_USE_*`` flags of dropped hits; returns ``(params_u, cov_u, chi2_u,
    params_z, cov_z, chi2_z, n_u, n_z)``."""
    use_u = flags[F_USE_U]
    use_z = flags[F_USE_Z]
    for _ in range(MAX_FITS):
        fit_u, cov_u, chi2_u, hit_u = gls_fit(hits[H_R], hits[H_U], hits[H_SIGMA_U], use_u, scatterers[S_R],
                                              scatterers[S_VAR_U], n_ms, np.int64(3))
        fit_z, cov_z, chi2_z, hit_z = gls_fit(hits[H_R], hits[H_Z], hits[H_SIGMA_Z], use_z, scatterers[S_R],
                                              scatterers[S_VAR_Z], n_ms, np.int64(2))
        worst = _worst_outlier(hit_u, hit_z, use_u, use_z, n_u, n_z)
        if worst < 0:
            break
        use_u[worst] = False
        n_u -= 1
        if use_z[worst]:
            use_z[worst] = False
            n_z -= 1
    return fit_u, cov_u, chi2_u, fit_z, cov_z, chi2_z, n_u, n_z


@numba.njit(cache=True)
def _worst_outlier(hit_chi2_u, hit_chi2_z, use_u, use_z, n_u, n_z):
    """Layer of the hit with the largest chi2 above ``OUTLIER_CHI2`` whose removal leaves enough hits, or -1."""
    worst = -1
    worst_chi2 = OUTLIER_CHI2
    for layer in range(N_LAYERS):
        c = hit_chi2_u[layer] + hit_chi2_z[layer]
        if use_u[layer] and c > worst_chi2:
            if n_u - 1 < MIN_RPHI_HITS or (use_z[layer] and n_z - 1 < MIN_Z_HITS):
                continue
            worst = layer
            worst_chi2 = c
    return worst


# ----------------------------------------------------------------------------------------- quality and output


@numba.njit(cache=True)
def _hit_pattern(flags, first_layer, last_layer):
    """Counts over the hits in the fit: pixel hits, 3D hits, lost layers (sensitive layers between the first
    and the last hit without one in the fit), wrong hits and wrong pixel hits."""
    n_pix = 0
    n_3d = 0
    n_lost = 0
    n_wrong = 0
    n_wrong_pix = 0
    for layer in range(N_LAYERS):
        if flags[F_USE_U, layer]:
            n_pix += flags[F_PIXEL, layer]
            n_3d += flags[F_USE_Z, layer]
            if flags[F_WRONG, layer]:
                n_wrong += 1
                n_wrong_pix += flags[F_PIXEL, layer]
        elif LAYER_KIND[layer] != PASSIVE and first_layer <= layer <= last_layer:
            n_lost += 1
    return n_pix, n_3d, n_lost, n_wrong, n_wrong_pix


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
def _write_track_kinematics(out, k, q, pt, phi, theta):
    """Momentum (pion mass), kind, charge and direction of the track in row ``k``."""
    pz = pt / np.tan(theta)
    out[C_PX, k] = pt * np.cos(phi)
    out[C_PY, k] = pt * np.sin(phi)
    out[C_PZ, k] = pz
    out[C_E, k] = np.sqrt(pt * pt + pz * pz + PION_MASS ** 2)
    out[C_KIND, k] = TRACK
    out[C_Q, k] = q
    out[C_TX, k] = np.sin(theta) * np.cos(phi)
    out[C_TY, k] = np.sin(theta) * np.sin(phi)
    out[C_TZ, k] = np.cos(theta)


@numba.njit(cache=True)
def _write_track_truth(out, k, gen_index, pu_vertex, n_wrong, n_wrong_pix, n_pix, d0_pull):
    """Truth columns of the track in row ``k``: ``fake`` marks >= 2 wrong hits of which at least half its
    pixel hits (random hit combinations in dense cores)."""
    out[C_GEN, k] = gen_index
    out[C_PU, k] = pu_vertex
    out[C_FAKE, k] = 1.0 if n_wrong >= 2 and 2 * n_wrong_pix >= max(n_pix, 1) else 0.0
    out[C_ORIGIN, k] = ORIGIN_GENERATOR
    out[C_NWRONG, k] = n_wrong
    out[C_D0_PULL, k] = d0_pull
