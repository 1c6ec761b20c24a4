"""The reconstructed-candidate table of the detector model: one column per quantity, one row per candidate.

The detector kernels append rows to a ``(N_CANDIDATE_COLUMNS, capacity)`` float64 array; the jet and event
features read it by the column indices below (``C_*``). Columns from ``gen_index`` on are generator truth
(bookkeeping for labels and validation), never an input feature.
"""

from __future__ import annotations

# Candidate kinds
TRACK, PHOTON, NEUTRAL_HADRON = 0, 1, 2
# Origin of a candidate's particle (truth bookkeeping, never an input): generator/pileup, conversion, nuclear
ORIGIN_GENERATOR, ORIGIN_CONVERSION, ORIGIN_NUCLEAR = 0, 1, 2

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
# tracks carry the charged-pion mass (the particle is not identified)
PION_MASS = 0.13957
# the most rows one particle can add (a nuclear interaction: the parent, its products and a remnant)
MAX_ROWS_PER_PARTICLE = 24
