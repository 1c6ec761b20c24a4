"""Pile-up overlay kernels: minimum-bias events of the library of :mod:`.pileup` placed on a hard event.

Each pile-up interaction takes a library event, rotated by a random azimuth, mirrored in z with probability
1/2, at its own vertex in the beam spot; its particles go through the same material, hits and fit as the hard
event's and count in the event's track density. A pile-up vertex is reconstructed when at least
``PU_VERTEX_MIN_TRACKS`` of its vertex-finder tracks are found. The sources of the numbers are in
:mod:`.detector`'s description ("Pileup").
"""

from __future__ import annotations

import numba
import numpy as np

from .material import add_particle
from .occupancy import fill_density
from .pythia import BEAMSPOT_SIGMA_XY_MM, BEAMSPOT_SIGMA_Z_MM

# Pile-up vertices lie in the beam spot (Pythia's vertex spread of the hard interaction); one is reconstructed
# with CMS's vertex quality ndof > 4, i.e. at least 4 reconstructed tracks [TRK-11-001], each found with the
# prompt-track efficiency
PU_VERTEX_MIN_TRACKS, PU_VERTEX_TRACK_EFFICIENCY = 4, 0.9
# Columns of a pile-up interaction's placement: rotation (cos, sin of the azimuth), z mirror (+-1), vertex (mm)
P_COS, P_SIN, P_MIRROR, P_X, P_Y, P_Z = 0, 1, 2, 3, 4, 5
N_PLACEMENT_COLUMNS = 6


@numba.njit(cache=True)
def draw_pileup(pileup_mu, lib_offsets):
    """Library events of the Poisson(``pileup_mu``) pile-up interactions of one event, and their number of
    particles."""
    n_lib = lib_offsets.shape[0] - 1
    n_pu = np.random.poisson(pileup_mu) if pileup_mu > 0 else 0
    pileup = np.empty(n_pu, np.int64)
    n_pu_particles = 0
    for v in range(n_pu):
        pileup[v] = np.random.randint(n_lib)
        n_pu_particles += lib_offsets[pileup[v] + 1] - lib_offsets[pileup[v]]
    return pileup, n_pu_particles


@numba.njit(cache=True)
def place_pileup(pileup, lib_vertex_tracks):
    """Draw, for each pile-up interaction of library event ``pileup[v]``, whether its vertex is reconstructed
    and where it lies. Returns ``(placement, n_reconstructed)``: ``placement`` is (n, N_PLACEMENT_COLUMNS)
    with the columns ``P_*``."""
    n_reconstructed = 0
    placement = np.empty((pileup.shape[0], N_PLACEMENT_COLUMNS))
    for v in range(pileup.shape[0]):
        found = 0
        for _ in range(lib_vertex_tracks[pileup[v]]):
            if np.random.random() < PU_VERTEX_TRACK_EFFICIENCY:
                found += 1
        if found >= PU_VERTEX_MIN_TRACKS:
            n_reconstructed += 1
        angle = (np.random.random() * 2.0 - 1.0) * np.pi
        placement[v, P_COS] = np.cos(angle)
        placement[v, P_SIN] = np.sin(angle)
        placement[v, P_MIRROR] = 1.0 if np.random.random() < 0.5 else -1.0
        placement[v, P_X] = np.random.normal() * BEAMSPOT_SIGMA_XY_MM
        placement[v, P_Y] = np.random.normal() * BEAMSPOT_SIGMA_XY_MM
        placement[v, P_Z] = np.random.normal() * BEAMSPOT_SIGMA_Z_MM
    return placement, n_reconstructed


@numba.njit(cache=True)
def fill_pileup_density(density, pileup, placement, lib_offsets, lib_charge, lib_p4):
    """Count the charged particles of the placed pile-up interactions in the track density."""
    for v in range(pileup.shape[0]):
        c = placement[v, P_COS]
        s = placement[v, P_SIN]
        mirror = placement[v, P_MIRROR]
        j = pileup[v]
        for i in range(lib_offsets[j], lib_offsets[j + 1]):
            if lib_charge[i] != 0:
                fill_density(density, c * lib_p4[0, i] - s * lib_p4[1, i], s * lib_p4[0, i] + c * lib_p4[1, i],
                             mirror * lib_p4[2, i])


@numba.njit(cache=True)
def add_pileup_particles(out, k, pileup, placement, lib_offsets, lib_pid, lib_charge, lib_p4, lib_vertex, pvx,
                         pvy, pvz, density):
    """Append the candidates of the placed pile-up interactions' particles (``pu_vertex`` = v + 1 for
    interaction v); returns the new row count."""
    for v in range(pileup.shape[0]):
        c = placement[v, P_COS]
        s = placement[v, P_SIN]
        mirror = placement[v, P_MIRROR]
        xv = placement[v, P_X]
        yv = placement[v, P_Y]
        zv = placement[v, P_Z]
        j = pileup[v]
        for i in range(lib_offsets[j], lib_offsets[j + 1]):
            qx = c * lib_p4[0, i] - s * lib_p4[1, i]
            qy = s * lib_p4[0, i] + c * lib_p4[1, i]
            x = xv + c * lib_vertex[0, i] - s * lib_vertex[1, i]
            y = yv + s * lib_vertex[0, i] + c * lib_vertex[1, i]
            k = add_particle(out, k, np.int64(-1), lib_pid[i], lib_charge[i], qx, qy, mirror * lib_p4[2, i], lib_p4[3, i],
                             x, y, zv + mirror * lib_vertex[2, i], pvx, pvy, pvz, v + 1, density)
    return k
