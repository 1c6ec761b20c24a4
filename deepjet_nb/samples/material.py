"""One particle through the tracker material: photon conversions, nuclear interactions, and what is
reconstructed of the particle and of its interaction products.

Layer by layer, a photon converts into e+ e- and a hadron interacts with a nucleus with the probability of the
layer's material budget (:mod:`.geometry`); an interacting hadron's track ends there and its products start
there. Each particle that reaches the reconstruction leaves a track (:mod:`.tracking`) or a calorimeter
deposit (:mod:`.calorimeter`). Interaction products do not interact again (depth 1). The sources of the numbers
are in :mod:`.detector`'s description ("material interactions").
"""

from __future__ import annotations

import numba
import numpy as np

from .calorimeter import add_deposit
from .candidates import C_ORIGIN, MAX_ROWS_PER_PARTICLE, ORIGIN_CONVERSION, ORIGIN_GENERATOR, ORIGIN_NUCLEAR, PION_MASS
from .geometry import CURVATURE_PER_INV_GEV, LAYER_LAMBDA, LAYER_R_MM, LAYER_X0, N_LAYERS, position_at_radius
from .tracking import TRACK_ETA_MAX, TRACK_PT_MIN, add_track, track_finding_efficiency

ELECTRON_MASS = 0.000511
NUCLEON_MASS = 0.93827
NEUTRON_MASS = 0.9396
# Nuclear interactions: nuclear enhancement of the pp multiplicity for Si and the energy share of the products
NI_NUCLEAR_RATIO, NI_VISIBLE_FRACTION, NI_MEAN_PT_REL = 1.5, 0.7, 0.35
ELECTRON, PION, NEUTRON = 11, 211, 2112
# Integer arguments are passed as np.int64, never as bare constants: numba compiles a separate copy of a kernel,
# and of every kernel it calls, for each constant value it is called with (minutes of compilation on first use).


@numba.njit(cache=True)
def add_particle(out, k, gen_index, code, q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz, pu_vertex, density):
    """Append the candidates of one particle: it crosses the material (conversion, nuclear interaction), then
    its track and/or calorimeter deposit, and those of its interaction products."""
    pt = np.sqrt(px * px + py * py)
    if pt < 1e-6 or k + MAX_ROWS_PER_PARTICLE > out.shape[1]:
        return k
    a = abs(code)
    r_prod = np.sqrt((vx - pvx) ** 2 + (vy - pvy) ** 2)  # pileup vertices lie within the beam spot too
    interacts = a == 22 or (a > 100 and a < 1000000)  # photons convert, hadrons interact with nuclei
    reach = 2.0 * pt / CURVATURE_PER_INV_GEV if q != 0 else 1e12  # a charged particle loops inside 2 R
    layer = interaction_layer(a, pt, pz, r_prod, reach) if interacts else -1
    if layer < 0:
        return reconstruct(out, k, gen_index, np.int64(code), q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz,
                           pu_vertex, np.int64(N_LAYERS), np.int64(ORIGIN_GENERATOR), density)
    x, y, z, ux, uy = position_at_radius(q, px, py, pz, vx - pvx, vy - pvy, vz, LAYER_R_MM[layer])
    x += pvx
    y += pvy
    if a == 22:
        return _convert(out, k, gen_index, e, px, py, pz, x, y, z, pvx, pvy, pvz, pu_vertex, density)
    if q != 0:  # the interacting hadron's track ends at the interaction: hits on the layers inside only
        k = reconstruct(out, k, gen_index, np.int64(code), q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz, pu_vertex,
                        np.int64(layer), np.int64(ORIGIN_GENERATOR), density)
    p = np.sqrt(pt * pt + pz * pz)
    return _nuclear_products(out, k, gen_index, q, e, ux * pt / p, uy * pt / p, pz / p, x, y, z, pvx, pvy, pvz,
                             pu_vertex, density)


@numba.njit(cache=True)
def reconstruct(out, k, gen_index, code, q, px, py, pz, e, vx, vy, vz, pvx, pvy, pvz, pu_vertex, stop_layer,
                origin, density):
    """The track of a charged particle (hits on the layers before ``stop_layer``) or, without a track, its
    calorimeter deposit; a particle that interacted (``stop_layer < N_LAYERS``) leaves no deposit of its own."""
    pt = np.sqrt(px * px + py * py)
    if pt < 1e-6:
        return k
    eta = np.arcsinh(pz / pt)
    aeta = abs(eta)
    r_prod = np.sqrt((vx - pvx) ** 2 + (vy - pvy) ** 2)  # pileup vertices lie within the beam spot too
    if q != 0 and pt > TRACK_PT_MIN and aeta < TRACK_ETA_MAX:
        if np.random.random() < track_finding_efficiency(aeta, r_prod):
            k_new = add_track(out, k, gen_index, q, px, py, pz, vx, vy, vz, pvx, pvy, pvz, r_prod, pu_vertex,
                              stop_layer, density)
            if k_new > k:
                out[C_ORIGIN, k] = origin
                return k_new
    if stop_layer < N_LAYERS:
        return k
    return add_deposit(out, k, gen_index, abs(code), e, eta, px, py, pu_vertex, origin)


@numba.njit(cache=True)
def interaction_layer(a, pt, pz, r_prod, reach):
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
        k = reconstruct(out, k, gen_index, np.int64(ELECTRON), 1.0 if leg == 0 else -1.0, px / p * pl,
                        py / p * pl, pz / p * pl, el, x, y, z, pvx, pvy, pvz, pu_vertex, np.int64(N_LAYERS),
                        np.int64(ORIGIN_CONVERSION), density)
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
    energies = np.random.exponential(1.0, n_ch + 1)
    energies *= NI_VISIBLE_FRACTION * e / energies.sum()
    v1x, v1y, v1z, v2x, v2y, v2z = _perpendicular_basis(ux, uy, uz)
    charge = q if q != 0 else 1.0
    for j in range(n_ch + 1):
        neutral = j == n_ch  # the remnant comes last
        mass = NEUTRON_MASS if neutral else PION_MASS
        ej = energies[j]
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
            k = reconstruct(out, k, gen_index, np.int64(NEUTRON), 0.0, qx, qy, qz, ej, x, y, z, pvx, pvy, pvz,
                            pu_vertex, np.int64(N_LAYERS), np.int64(ORIGIN_NUCLEAR), density)
        else:
            k = reconstruct(out, k, gen_index, np.int64(PION), charge, qx, qy, qz, ej, x, y, z, pvx, pvy, pvz,
                            pu_vertex, np.int64(N_LAYERS), np.int64(ORIGIN_NUCLEAR), density)
            charge = -charge
    return k


@numba.njit(cache=True)
def _perpendicular_basis(ux, uy, uz):
    """Two unit vectors v1, v2 perpendicular to the unit vector u and to each other: (v1x, ..., v2z)."""
    if abs(uz) < 0.9:
        v1x, v1y, v1z = -uy, ux, 0.0
    else:
        v1x, v1y, v1z = 0.0, -uz, uy
    nv = np.sqrt(v1x * v1x + v1y * v1y + v1z * v1z)
    v1x /= nv
    v1y /= nv
    v1z /= nv
    return v1x, v1y, v1z, uy * v1z - uz * v1y, uz * v1x - ux * v1z, ux * v1y - uy * v1x
