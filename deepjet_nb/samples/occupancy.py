"""Local density of charged particles in (eta, phi) cells: the occupancy that gives a track wrong hits.

An event's charged particles with pT > ``DENSITY_PT_MIN`` (hard interaction and pile-up) are counted in cells
of ``DENSITY_CELL`` in eta and phi; a track's wrong-hit probability on a layer follows from the count around
its direction (:mod:`.tracking`).
"""

from __future__ import annotations

import numba
import numpy as np

DENSITY_PT_MIN, DENSITY_CELL, DENSITY_ETA_MAX = 0.5, 0.05, 3.0
DENSITY_N_ETA = int(2 * DENSITY_ETA_MAX / DENSITY_CELL)
DENSITY_N_PHI = int(2 * np.pi / DENSITY_CELL)


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
def local_density(density, px, py, pz):
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


@numba.njit(cache=True)
def _density_cell(pt, pz, px, py):
    """The (eta, phi) cell of a direction, or (-1, 0) outside |eta| < ``DENSITY_ETA_MAX``."""
    eta = np.arcsinh(pz / pt)
    if abs(eta) >= DENSITY_ETA_MAX:
        return -1, 0
    i = int((eta + DENSITY_ETA_MAX) / DENSITY_CELL)
    j = int((np.arctan2(py, px) + np.pi) / (2 * np.pi) * DENSITY_N_PHI) % DENSITY_N_PHI
    return min(i, DENSITY_N_ETA - 1), j
