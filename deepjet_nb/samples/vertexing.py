"""Impact parameters and an inclusive secondary-vertex finder on reconstructed tracks (straight lines).

Tracks are lines ``x0 + s t`` with a transverse (d0) and longitudinal (z0) resolution. A vertex is the point
minimising sum_i (x - x0_i)^T W_i (x - x0_i), where W_i weighs the distance perpendicular to track i by its
resolution: the fit is linear, its covariance is the inverse of sum W_i, so vertex errors follow from the
track resolutions. Lengths in mm.

Vertex finding follows CMS's inclusive vertex finder (IVF) and the CSV vertex selection (docs/reference.md §5):
seed tracks with 3D IP significance > 1.2 and IP > 50 um; compatible seed pairs (two-track fit chi2 < 9,
2D flight significance > 2) are joined into clusters; each cluster is fitted, outliers (chi2 contribution
> 9) are dropped one at a time; a vertex is kept with >= 2 tracks, 2D flight significance > 3,
0.1 mm < 2D flight < 25 mm, mass < 6.5 GeV, flight direction within Delta R < 0.4 of the jet (0.8 for fat jets),
outside the K0S mass window (|m - 497.6 MeV| < 50 MeV for opposite-charge two-track vertices), and when
no more than 65 % of its tracks are compatible with the primary vertex (3D IP significance < 2).
"""

from __future__ import annotations

import numba
import numpy as np

K0S_MASS = 0.4976
PION_MASS = 0.13957


@numba.njit(cache=True)
def track_weight(tx, ty, tz, sd0, sz0):
    """3x3 weight matrix of a track line: perpendicular directions weighted by 1/sigma^2."""
    txy = np.sqrt(tx * tx + ty * ty)
    u = np.array([-ty / txy, tx / txy, 0.0])
    t = np.array([tx, ty, tz])
    w = np.cross(t, u)
    sin_theta = txy / np.sqrt(tx * tx + ty * ty + tz * tz)
    sw = max(sz0 * sin_theta, 1e-6)
    return np.outer(u, u) / (sd0 * sd0) + np.outer(w, w) / (sw * sw)


@numba.njit(cache=True)
def fit_vertex(points, weights, use):
    """Least-squares vertex of the tracks with ``use[i]``: returns (position, covariance, chi2, chi2_i)."""
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for i in range(points.shape[0]):
        if use[i]:
            a += weights[i]
            b += weights[i] @ points[i]
    cov = np.linalg.inv(a)
    x = cov @ b
    chi2_i = np.zeros(points.shape[0])
    for i in range(points.shape[0]):
        if use[i]:
            d = x - points[i]
            chi2_i[i] = d @ (weights[i] @ d)
    return x, cov, chi2_i.sum(), chi2_i


@numba.njit(cache=True)
def _mass(p4s, use):
    e = 0.0
    px = 0.0
    py = 0.0
    pz = 0.0
    for i in range(p4s.shape[0]):
        if use[i]:
            px += p4s[i, 0]
            py += p4s[i, 1]
            pz += p4s[i, 2]
            e += p4s[i, 3]
    return np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


@numba.njit(cache=True)
def eta_phi(x, y, z):
    """Pseudorapidity and azimuth of a vector; one along the beam gets |eta| = 1e9 (never matched)."""
    rho = np.sqrt(x * x + y * y)
    if rho < 1e-12:
        return (1e9 if z >= 0 else -1e9), 0.0
    return np.arcsinh(z / rho), np.arctan2(y, x)


@numba.njit(cache=True)
def delta_r(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi * dphi)


@numba.njit(cache=True)
def flight(x, cov, pv, pv_cov_diag):
    """2D and 3D flight distance from the primary vertex with their uncertainties."""
    f = x - pv
    c = cov.copy()
    for k in range(3):
        c[k, k] += pv_cov_diag[k]
    dxy = np.sqrt(f[0] ** 2 + f[1] ** 2)
    d3d = np.sqrt(f @ f)
    fx = np.array([f[0], f[1], 0.0])
    sxy = np.sqrt(max(fx @ (c @ fx), 1e-18)) / max(dxy, 1e-12)
    s3d = np.sqrt(max(f @ (c @ f), 1e-18)) / max(d3d, 1e-12)
    return dxy, sxy, d3d, s3d


@numba.njit(cache=True)
def find_vertices(points, dirs, weights, p4s, charges, ip3d, ip3d_sig, pv, pv_cov_diag, jet_eta, jet_phi,
                  max_dr=0.4):
    """Inclusive secondary vertices among one jet's tracks, flight direction within Delta R < ``max_dr`` of
    the jet axis (0.4, the AK4 value; the fat-jet producer passes its radius 0.8).

    Inputs per track: ``points`` (n,3) a point on the line, ``dirs`` (n,3) unit directions, ``weights``
    (n,3,3) from :func:`track_weight`, ``p4s`` (n,4) momenta as pions, ``charges``, unsigned 3D IP and its
    significance. Returns ``(assignment, positions, covariances, chi2s)``: ``assignment[i]`` is the vertex
    index of track i or -1; vertex arrays have one row per accepted vertex.
    """
    n = points.shape[0]
    seed = (ip3d_sig > 1.2) & (ip3d > 0.05)
    parent = np.arange(n)
    any_pair = False
    two = np.zeros(n, np.bool_)
    for i in range(n):
        if not seed[i]:
            continue
        for j in range(i + 1, n):
            if not seed[j]:
                continue
            two[:] = False
            two[i] = True
            two[j] = True
            x, cov, chi2, _ = fit_vertex(points, weights, two)
            if chi2 > 9.0:
                continue
            dxy, sxy, _, _ = flight(x, cov, pv, pv_cov_diag)
            if dxy / sxy < 2.0:
                continue
            # union
            ri = i
            while parent[ri] != ri:
                ri = parent[ri]
            rj = j
            while parent[rj] != rj:
                rj = parent[rj]
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
            any_pair = True
    assignment = np.full(n, -1, np.int64)
    positions = np.zeros((0, 3))
    covs = np.zeros((0, 3, 3))
    chi2s = np.zeros(0)
    if not any_pair:
        return assignment, positions, covs, chi2s
    roots = np.empty(n, np.int64)
    for i in range(n):
        r = i
        while parent[r] != r:
            r = parent[r]
        roots[i] = r
    pos_list = []
    cov_list = []
    chi_list = []
    n_vtx = 0
    for r in range(n):
        use = (roots == r) & seed
        if use.sum() < 2:
            continue
        # fit, dropping the worst outlier while it is incompatible
        while True:
            x, cov, chi2, chi2_i = fit_vertex(points, weights, use)
            worst = np.argmax(chi2_i)
            if use.sum() > 2 and chi2_i[worst] > 9.0:
                use[worst] = False
                continue
            break
        ntrk = use.sum()
        if ntrk == 2 and chi2 > 9.0:
            continue
        dxy, sxy, _, _ = flight(x, cov, pv, pv_cov_diag)
        if dxy / sxy < 3.0 or dxy < 0.1 or dxy > 25.0:
            continue
        mass = _mass(p4s, use)
        if mass > 6.5:
            continue
        f = x - pv
        f_eta, f_phi = eta_phi(f[0], f[1], f[2])
        if delta_r(f_eta, f_phi, jet_eta, jet_phi) > max_dr:
            continue
        if ntrk == 2:
            qsum = 0.0
            for i in range(n):
                if use[i]:
                    qsum += charges[i]
            if qsum == 0.0 and abs(mass - K0S_MASS) < 0.05:
                continue
        n_pv_compatible = 0
        for i in range(n):
            if use[i] and ip3d_sig[i] < 2.0:
                n_pv_compatible += 1
        if n_pv_compatible > 0.65 * ntrk:
            continue
        for i in range(n):
            if use[i]:
                assignment[i] = n_vtx
        pos_list.append(x)
        cov_list.append(cov)
        chi_list.append(chi2)
        n_vtx += 1
    if n_vtx > 0:
        positions = np.zeros((n_vtx, 3))
        covs = np.zeros((n_vtx, 3, 3))
        chi2s = np.zeros(n_vtx)
        for v in range(n_vtx):
            positions[v] = pos_list[v]
            covs[v] = cov_list[v]
            chi2s[v] = chi_list[v]
    return assignment, positions, covs, chi2s
