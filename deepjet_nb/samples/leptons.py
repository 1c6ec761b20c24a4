"""Electron and muon identification of reconstructed tracks, as a fast simulation parametrises it, and the
isolated-lepton count of the event-level sample (docs/reference.md §5).

The detector model has no muon chambers and no electron shower-shape or track-cluster matching, so
identification is drawn per track with an efficiency: the generator species of a track's particle decides
only which efficiency applies (as in any parametrised fast simulation); no input feature reads the species
otherwise.

- muons: a track whose particle is a muon (from the generator record, not a material-interaction product)
  with p > 3 GeV (the momentum a muon needs to reach the CMS muon stations through the calorimeters and the
  return yoke) and |eta| < 2.4 (muon-system acceptance) is identified with efficiency 0.98 [CMS, "Performance
  of the CMS muon detector and muon reconstruction with proton-proton collisions at sqrt(s) = 13 TeV",
  JINST 13 (2018) P06015: loose/medium muon ID efficiency 0.98-0.99];
- electrons: a track whose particle is an electron (generator record; conversion electrons are not prompt and
  are vetoed in CMS) with pT > 2 GeV and |eta| < 2.5 with efficiency 0.90 [CMS, "Electron and photon
  reconstruction and identification with the CMS experiment at the CERN LHC", JINST 16 (2021) P05014:
  reconstruction x identification efficiency 0.85-0.95 above 10 GeV, lower at low pT];
- misidentification of every other track (charged hadrons, conversion and nuclear-interaction products,
  pile-up tracks) above the same thresholds: 0.2 % as a muon (hadron punch-through and decays in flight) and
  0.3 % as an electron [same references: hadron fake rates of 0.1-0.5 % per track for loose IDs].

Random numbers come from a generator seeded with the block's seed and used for nothing else, so the AK4
producer's candidates and features do not change.
"""

from __future__ import annotations

import numba
import numpy as np

from .detector import C_E, C_GEN, C_KIND, C_ORIGIN, C_PX, C_PY, C_PZ, C_Z0, ORIGIN_GENERATOR, TRACK
from .features import CHS_DZ_MM
from .vertexing import delta_r, eta_phi

NOT_LEPTON, ELECTRON, MUON = 0, 11, 13
MUON_P_MIN, MUON_ETA_MAX, MUON_EFFICIENCY = 3.0, 2.4, 0.98
ELECTRON_PT_MIN, ELECTRON_ETA_MAX, ELECTRON_EFFICIENCY = 2.0, 2.5, 0.90
HADRON_AS_MUON, HADRON_AS_ELECTRON = 0.002, 0.003
# isolated leptons of the event-level sample (docs/formats.md §1c)
ISOLATED_PT_MIN, ISOLATED_ETA_MAX, ISOLATION_CONE, ISOLATION_MAX = 20.0, 2.4, 0.4, 0.15
_SALT = 0x1E9  # separates the identification stream from every other use of the block seed


def identification_uniforms(seed: int, n: int) -> np.ndarray:
    """``n`` uniform numbers for :func:`identify`, from their own generator seeded with ``seed``."""
    return np.random.default_rng([int(seed), _SALT]).random(n)


@numba.njit(cache=True)
def identify(cand, cand_offsets, gen_offsets, gen_pid, uniforms):
    """Lepton identification of every candidate: ``ELECTRON`` (11), ``MUON`` (13) or ``NOT_LEPTON`` (0) (int32).

    ``gen_pid``/``gen_offsets`` are the generator record's PDG ids and event offsets (``C_GEN`` indexes the
    event's particles); ``uniforms`` holds one uniform number per candidate (:func:`identification_uniforms`).
    Neutral candidates are never leptons.
    """
    n_cand = cand.shape[1]
    out = np.zeros(n_cand, np.int32)
    for ev in range(cand_offsets.shape[0] - 1):
        for g in range(cand_offsets[ev], cand_offsets[ev + 1]):
            if cand[C_KIND, g] != TRACK:
                continue
            px, py, pz = cand[C_PX, g], cand[C_PY, g], cand[C_PZ, g]
            pt = np.sqrt(px * px + py * py)
            p = np.sqrt(pt * pt + pz * pz)
            eta, _ = eta_phi(px, py, pz)
            species = 0
            gen = int(cand[C_GEN, g])
            if gen >= 0 and cand[C_ORIGIN, g] == ORIGIN_GENERATOR:
                species = abs(gen_pid[gen_offsets[ev] + gen])
            u = uniforms[g]
            muon_ok = p > MUON_P_MIN and abs(eta) < MUON_ETA_MAX
            electron_ok = pt > ELECTRON_PT_MIN and abs(eta) < ELECTRON_ETA_MAX
            if species == 13:
                if muon_ok and u < MUON_EFFICIENCY:
                    out[g] = MUON
            elif species == 11:
                if electron_ok and u < ELECTRON_EFFICIENCY:
                    out[g] = ELECTRON
            elif muon_ok and u < HADRON_AS_MUON:
                out[g] = MUON
            elif electron_ok and u > 1.0 - HADRON_AS_ELECTRON:
                out[g] = ELECTRON
    return out


@numba.njit(cache=True)
def count_isolated(cand, cand_offsets, pv_reco, lepton):
    """Isolated identified electrons and muons per event: pT > 20 GeV, |eta| < 2.4, from the primary vertex
    (|dz| < the CHS window) and relative isolation < 0.15, the scalar pT sum of the other reconstructed
    candidates within Delta R < 0.4 (tracks from the primary vertex, photons, neutral hadrons: the
    charged-hadron-subtracted isolation) over the lepton pT."""
    n_events = cand_offsets.shape[0] - 1
    out = np.zeros(n_events, np.int32)
    for ev in range(n_events):
        for g in range(cand_offsets[ev], cand_offsets[ev + 1]):
            if lepton[g] == NOT_LEPTON or abs(cand[C_Z0, g] - pv_reco[ev, 2]) > CHS_DZ_MM:
                continue
            pt = np.sqrt(cand[C_PX, g] ** 2 + cand[C_PY, g] ** 2)
            eta, phi = eta_phi(cand[C_PX, g], cand[C_PY, g], cand[C_PZ, g])
            if pt < ISOLATED_PT_MIN or abs(eta) > ISOLATED_ETA_MAX:
                continue
            iso = 0.0
            for h in range(cand_offsets[ev], cand_offsets[ev + 1]):
                if h == g or cand[C_E, h] <= 0:
                    continue
                if cand[C_KIND, h] == TRACK and abs(cand[C_Z0, h] - pv_reco[ev, 2]) > CHS_DZ_MM:
                    continue
                heta, hphi = eta_phi(cand[C_PX, h], cand[C_PY, h], cand[C_PZ, h])
                if delta_r(eta, phi, heta, hphi) < ISOLATION_CONE:
                    iso += np.sqrt(cand[C_PX, h] ** 2 + cand[C_PY, h] ** 2)
            if iso < ISOLATION_MAX * pt:
                out[ev] += 1
    return out

