"""Tracker geometry and material of the detector model, and where a particle's trajectory meets it.

The barrel layers (radius, material budget, kind, resolutions, pitch, strip length, hit efficiency) as CMS's
tracker of 2016 (Phase-0 pixel), and the trajectories in the 3.8 T solenoid field: a helix for charged
particles, a straight line for neutral ones. The sources of the numbers are in :mod:`.detector`'s description
("Tracker geometry and material"). Lengths in mm, momenta in GeV.
"""

from __future__ import annotations

import numba
import numpy as np

B_FIELD_T = 3.8
CURVATURE_PER_INV_GEV = 0.3 * B_FIELD_T / 1000.0  # 1/R in 1/mm for pT = 1 GeV

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


@numba.njit(cache=True)
def position_at_radius(q, px, py, pz, dx, dy, z0, radius):
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
def true_dca(q, px, py, pz, dx, dy, z0):
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
def _circle(q, pt, ux, uy, dx, dy):
    """The transverse circle of a charged particle at (dx, dy) moving along (ux, uy): radius, charge sign and
    centre, to the right of the motion for positive charge (B along +z)."""
    rho = pt / CURVATURE_PER_INV_GEV
    sgn = 1.0 if q > 0 else -1.0
    return rho, sgn, dx + sgn * rho * uy, dy - sgn * rho * ux


@numba.njit(cache=True)
def _turning_angle(ax, ay, bx, by, sgn):
    """Angle in [0, 2 pi) turned from radius vector a to b along the motion (clockwise if sgn > 0)."""
    ang = np.arctan2(ax * by - ay * bx, ax * bx + ay * by)  # counter-clockwise angle from a to b
    if sgn > 0:
        ang = -ang
    if ang < 0:
        ang += 2.0 * np.pi
    return ang
