"""Calorimeter deposits of the detector model: photons and electrons in the ECAL, hadrons in the HCAL.

A particle without a track (neutral, untracked or outside the tracker) within |eta| < ``CALO_ETA_MAX`` leaves a
neutral candidate with its energy smeared by the calorimeter's resolution and its direction by the cell size;
muons pass through. The sources of the numbers are in :mod:`.detector`'s description ("Calorimeters").
"""

from __future__ import annotations

import numba
import numpy as np

from .candidates import (
    C_E, C_GEN, C_KIND, C_ORIGIN, C_PU, C_PX, C_PY, C_PZ, C_Q, C_X0, N_CANDIDATE_COLUMNS, NEUTRAL_HADRON, PHOTON,
)

CALO_ETA_MAX = 3.0
# ECAL: sigma(E)/E = stochastic / sqrt(E) (+) constant (+) noise / E, angular smearing (crystal 0.0174), threshold
ECAL_STOCHASTIC, ECAL_CONSTANT, ECAL_NOISE_GEV = 0.03, 0.005, 0.2
ECAL_ANGULAR, ECAL_E_MIN = 0.005, 1.0
# HCAL: sigma(E)/E = stochastic / sqrt(E) (+) constant, angular smearing (tower 0.087), threshold
HCAL_STOCHASTIC, HCAL_CONSTANT = 1.0, 0.05
HCAL_ANGULAR, HCAL_E_MIN = 0.03, 2.0


@numba.njit(cache=True)
def add_deposit(out, k, gen_index, abs_code, e, eta, px, py, pu_vertex, origin):
    """Append the calorimeter deposit of a particle (``abs_code`` = |PDG id|, energy ``e``, pseudorapidity
    ``eta``, transverse momentum (px, py)) as row ``k`` of ``out`` if it is inside the calorimeters and above
    the threshold; returns the new row count."""
    if abs(eta) > CALO_ETA_MAX or abs_code == 13:
        return k
    electromagnetic = abs_code == 22 or abs_code == 11
    if electromagnetic:
        sig = np.sqrt(ECAL_STOCHASTIC ** 2 / e + ECAL_CONSTANT ** 2 + (ECAL_NOISE_GEV / e) ** 2)
        angular, threshold = ECAL_ANGULAR, ECAL_E_MIN
    else:
        sig = np.sqrt(HCAL_STOCHASTIC ** 2 / e + HCAL_CONSTANT ** 2)
        angular, threshold = HCAL_ANGULAR, HCAL_E_MIN
    e_meas = e * (1.0 + sig * np.random.normal())
    if e_meas < threshold:
        return k
    eta_m = eta + angular * np.random.normal()
    phi_m = np.arctan2(py, px) + angular * np.random.normal()
    pt_m = e_meas / np.cosh(eta_m)
    out[C_PX, k] = pt_m * np.cos(phi_m)
    out[C_PY, k] = pt_m * np.sin(phi_m)
    out[C_PZ, k] = pt_m * np.sinh(eta_m)
    out[C_E, k] = e_meas
    out[C_KIND, k] = PHOTON if electromagnetic else NEUTRAL_HADRON
    out[C_Q, k] = 0.0
    # no track: the track columns and the truth columns are zero except the bookkeeping set below
    for c in range(C_X0, N_CANDIDATE_COLUMNS):
        out[c, k] = 0.0
    out[C_GEN, k] = gen_index
    out[C_PU, k] = pu_vertex
    out[C_ORIGIN, k] = origin
    return k + 1
