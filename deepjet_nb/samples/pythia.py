"""Pythia 8 event generation, delivered as flat numpy arrays (one batch of events at a time).

Pythia is configured once per worker process; each block of events re-seeds its random engine, so a block's
events depend only on (seed, block index). Units are Pythia's: GeV and mm.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import awkward as ak
import numpy as np

from ..errors import ArgumentError

PROCESSES = {
    # ttbar: b jets from t -> Wb, c and light jets from W -> qq', gluon jets from radiation.
    "ttbar": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"],
    # QCD multijet: light-quark and gluon jets, heavy flavour from g -> bb/cc splitting and flavour excitation.
    "qcd": ["HardQCD:all = on"],
    # Minimum bias (all inelastic processes, diffraction included): the pile-up library of samples/pileup.py.
    "minbias": ["SoftQCD:inelastic = on"],
    # --- boosted samples: one entry per AK8 jet (samples/fatjets.py, docs/formats.md §1b) ---
    # Z' -> t tbar, M = 2 TeV, the pure Z' (Zprime:gmZmode = 3: no gamma*/Z0 interference), both W bosons of
    # the tops hadronic: fully merged t -> bqq' jets (top pT ~ 1 TeV, decay cone ~ 2 m_t / pT ~ 0.35).
    # Settings as in the CMS Z' cards (genproductions ZprimeTo*_TuneCUETP8M1_13TeV_pythia8) and the Pythia 8
    # manual, "New Gauge Boson Processes".
    "zprime_tt": ["NewGaugeBoson:ffbar2gmZZprime = on", "Zprime:gmZmode = 3", "32:m0 = 2000.",
                  "32:onMode = off", "32:onIfAny = 6", "24:onMode = off", "24:onIfAny = 1 2 3 4 5"],
    # W' -> W Z, M = 2 TeV (Wprime:coup2WZ = 1, the Extended Gauge Model value, as in CMS's WprimeToWZ cards),
    # W -> qq' and Z -> qq (b included): merged two-prong W and Z jets.
    "wprime_wz": ["NewGaugeBoson:ffbar2Wprime = on", "Wprime:coup2WZ = 1.", "34:m0 = 2000.",
                  "34:onMode = off", "34:onIfAll = 23 24", "24:onMode = off", "24:onIfAny = 1 2 3 4 5",
                  "23:onMode = off", "23:onIfAny = 1 2 3 4 5"],
    # QCD multijet background of the boosted samples: pT-hat > 500 GeV (DEFAULT_PTHAT_MIN), so that QCD fat jets
    # fill the 500-1000 GeV window where the boosted taggers are trained and compared (configs/fatjet.yaml,
    # deepjet_nb.boosted.PT_RANGE) next to the tops and Ws of 2 TeV resonances.
    "qcd_boosted": ["HardQCD:all = on"],
    # gg -> H2 (a heavy CP-even scalar, M = 1.5 TeV) -> h h, h -> b bbar: merged H -> bb jets (Pythia 8 manual,
    # "Higgs Processes": Higgs:useBSM, HiggsBSM:gg2H2; the H2 -> h h channel switched on alone).
    "hh_bbbb": ["Higgs:useBSM = on", "HiggsBSM:gg2H2 = on", "35:m0 = 1500.", "35:onMode = off",
                "35:onIfMatch = 25 25", "25:onMode = off", "25:onIfMatch = 5 -5"],
    # --- event-level samples: one entry per event (docs/formats.md §1c) ---
    # all-hadronic ttbar: both W -> qq'.
    "ttbar_allhad": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5"],
    # QCD multijets against it: pT-hat > 150 GeV (DEFAULT_PTHAT_MIN). The event-level preselection (H_T of the
    # AK8 jets > 400 GeV) needs pT-hat of about 200 GeV at leading order, so the generator cut lies below it:
    # the QCD events that pass are nearly unbiased by it and overlap the preselected ttbar events in H_T and
    # jet pT, while ~40 % of the generated events pass (pT-hat > 30 GeV would keep under 1 %).
    "qcd_multijet": ["HardQCD:all = on"],
}
DEFAULT_PTHAT_MIN = {"ttbar": None, "qcd": 30.0, "minbias": None, "zprime_tt": None, "wprime_wz": None,
                     "qcd_boosted": 500.0, "hh_bbbb": None, "ttbar_allhad": None, "qcd_multijet": 150.0}
# What each process's sample is: an AK4 jet ntuple (DeepNTuples), a fat-jet ntuple (DeepAK8) or, with
# ``--event-level``, an event ntuple; the event-level label of the processes allowed there.
FATJET_PROCESSES = ("zprime_tt", "wprime_wz", "qcd_boosted", "hh_bbbb")
EVENT_LABEL = {"ttbar": "label_ttbar", "ttbar_allhad": "label_ttbar", "qcd": "label_QCD",
               "qcd_multijet": "label_QCD", "qcd_boosted": "label_QCD"}

# Beam spot (docs/reference.md §5, CMS Run 2): sigma_x,y = 10 um, sigma_z = 4 cm; Pythia takes mm.
BEAMSPOT_SIGMA_XY_MM = 0.010
BEAMSPOT_SIGMA_Z_MM = 40.0
# Decays happen at their true, lifetime-sampled vertices inside the tracker volume (r < 1.1 m, |z| < 2.8 m);
# particles that would decay outside it (most K0L, some K0S/Lambda, charged pions and kaons) stay stable.
DECAY_CYLINDER_R_MM = 1100.0
DECAY_CYLINDER_Z_MM = 2800.0

# The largest seed Pythia accepts is 900 000 000.
_SEED_MODULUS = 900_000_000


def block_seed(seed: int, block: int) -> int:
    """Pythia seed of one block of events: a fixed function of the user seed and the block index."""
    return (seed * 1_000_003 + block * 7919) % _SEED_MODULUS + 1


@dataclass
class Batch:
    """Flat view of a batch of Pythia events: per-particle arrays and event offsets.

    Indices (mother1, daughter1, ...) are local to each event, as in Pythia's event record.
    """

    offsets: np.ndarray  # int64, n_events + 1
    pid: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    mother2: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    mass: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    charge: np.ndarray  # float64, in units of e

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1


class EventGenerator:
    """A configured Pythia 8 instance for one process at sqrt(s) = 13 TeV."""

    def __init__(self, process: str, pthat_min: float | None = None):
        if process not in PROCESSES:
            raise ArgumentError(f"unknown process {process!r}; choose one of {', '.join(PROCESSES)}")
        import pythia8mc

        with _quiet_stdout():
            self._pythia = pythia8mc.Pythia("", False)
            settings = [
                "Beams:eCM = 13000.",
                "Print:quiet = on",
                "Next:numberCount = 0",
                "Random:setSeed = on",
                "Random:seed = 1",
                "Beams:allowVertexSpread = on",
                f"Beams:sigmaVertexX = {BEAMSPOT_SIGMA_XY_MM}",
                f"Beams:sigmaVertexY = {BEAMSPOT_SIGMA_XY_MM}",
                f"Beams:sigmaVertexZ = {BEAMSPOT_SIGMA_Z_MM}",
                "ParticleDecays:limitCylinder = on",
                f"ParticleDecays:xyMax = {DECAY_CYLINDER_R_MM}",
                f"ParticleDecays:zMax = {DECAY_CYLINDER_Z_MM}",
                *PROCESSES[process],
            ]
            pthat = DEFAULT_PTHAT_MIN[process] if pthat_min is None else pthat_min
            if pthat is not None:
                settings.append(f"PhaseSpace:pTHatMin = {float(pthat)}")
            for line in settings:
                if not self._pythia.readString(line):
                    raise ArgumentError(f"Pythia rejected the setting {line!r}")
            if not self._pythia.init():
                raise ArgumentError(f"Pythia failed to initialise process {process!r}")
        self._charge_cache: dict[int, float] = {}

    def generate(self, n_events: int, seed: int) -> Batch:
        """Generate ``n_events`` events with the random engine re-seeded to ``seed``."""
        self._pythia.rndm.init(seed)
        with _quiet_stdout():
            events = self._pythia.nextBatch(n_events)
        return self._flatten(events.prt)

    def generate_only(self, n_events: int, seed: int) -> int:
        """Generate events and discard them (the benchmark's Pythia-only reference); returns the count."""
        self._pythia.rndm.init(seed)
        with _quiet_stdout():
            events = self._pythia.nextBatch(n_events)
        return len(events)

    def _flatten(self, prt) -> Batch:
        counts = ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])

        def flat(array, dtype):
            return np.ascontiguousarray(ak.to_numpy(ak.flatten(array, axis=1)), dtype=dtype)

        pid = flat(prt.id, np.int32)
        vprod = ak.fill_none(prt.vProd, {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0}, axis=1)
        return Batch(
            offsets=offsets,
            pid=pid,
            status=flat(prt.status, np.int32),
            mother1=flat(prt.mother1, np.int32),
            mother2=flat(prt.mother2, np.int32),
            daughter1=flat(prt.daughter1, np.int32),
            daughter2=flat(prt.daughter2, np.int32),
            px=flat(prt.p.px, np.float64),
            py=flat(prt.p.py, np.float64),
            pz=flat(prt.p.pz, np.float64),
            e=flat(prt.p.e, np.float64),
            mass=flat(prt.m, np.float64),
            vx=flat(vprod.px, np.float64),
            vy=flat(vprod.py, np.float64),
            vz=flat(vprod.pz, np.float64),
            charge=self._charges(pid),
        )

    def _charges(self, pid: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(pid, return_inverse=True)
        data = self._pythia.particleData
        table = np.empty(len(unique), np.float64)
        for k, code in enumerate(unique.tolist()):
            if code not in self._charge_cache:
                self._charge_cache[code] = float(data.charge(code))
            table[k] = self._charge_cache[code]
        return table[inverse]


class _quiet_stdout:  # noqa: N801 (used as a context manager)
    """Silence Pythia's C++ banner and warnings, which go to the process's stdout file descriptor."""

    def __enter__(self):
        sys.stdout.flush()
        self._saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self._saved, 1)
        os.close(self._saved)
