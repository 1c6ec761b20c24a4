"""From Pythia events to a DeepNTuples-schema ROOT file: blocks of events, worker processes, atomic output.

Blocks run on :class:`deepjet_nb.parallel.Runner` (this process, local processes or Dask), like conversion and
prediction: workers die with the parent and never hang on SIGTERM, and a block's content depends only on
(seed, block index), so the file is the same whatever ran it.
"""

from __future__ import annotations

import functools
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np

from .._args import integer, number
from .._atomic import atomic_path, check_output, remove_stale
from ..errors import ArgumentError, DeepJetError
from .. import schema
from . import detector, features, pileup as pileup_library, truth
from .pythia import PROCESSES, EventGenerator, _quiet_stdout, block_seed

BLOCK_EVENTS = 100  # events per block: the unit of seeding, parallelism and progress
MAX_EVENTS = 10**8  # far beyond what a laptop or a batch job generates (days of CPU); bounds the block list
MAX_PILEUP = 200.0  # HL-LHC design pileup; memory grows with it (1e6 took 12 GB for 10 events)
JET_PT_MIN = 20.0
JET_ETA_MAX = 2.5
JET_R = 0.4
GEN_MATCH_DR = 0.4

# jagged groups as written, from the schema: record name -> (field names, counter branch)
GROUPS = {objects.record: (objects.fields, objects.counter) for objects in schema.OBJECT_LISTS}
_COUNTER_NAMES = {record: counter for record, (_, counter) in GROUPS.items()}


@dataclass
class GenerateSummary:
    """What :func:`generate` produced."""

    path: Path
    process: str
    events: int
    jets: int
    seconds: float
    flavour_counts: dict = field(default_factory=dict)

    def __str__(self):
        lines = [f"{self.path}: {self.jets} jets from {self.events} {self.process} events in {self.seconds:.1f} s"]
        width = max(len(k) for k in self.flavour_counts) if self.flavour_counts else 0
        for name, count in self.flavour_counts.items():
            lines.append(f"  {name:<{width}}  {count:7d}  {count / max(self.jets, 1):6.1%}")
        return "\n".join(lines)


def _cluster(px, py, pz, e, counts, ptmin):
    """anti-kT R=0.4 jets of each event: (jet p4 (n,4), jets per event, constituent counts, indices)."""
    import fastjet

    particles = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D"), counts)
    with _quiet_stdout():  # FastJet prints its banner on first use
        sequence = fastjet.ClusterSequence(particles, fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R))
        jets = sequence.inclusive_jets(ptmin)
        consts = sequence.constituent_index(ptmin)
    p4 = np.stack([ak.to_numpy(ak.flatten(jets[c])) for c in ("px", "py", "pz", "E")], axis=1)
    n_per_event = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    const_counts = ak.to_numpy(ak.flatten(ak.num(consts, axis=2))).astype(np.int64)
    const_index = ak.to_numpy(ak.flatten(consts, axis=None)).astype(np.int64)
    return p4, n_per_event, const_counts, const_index


def _eta_phi_pt(p4):
    pt = np.hypot(p4[:, 0], p4[:, 1])
    eta = np.arcsinh(p4[:, 2] / np.maximum(pt, 1e-12))
    phi = np.arctan2(p4[:, 1], p4[:, 0])
    return eta, phi, pt


def _offsets(counts):
    out = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def process_block(generator: EventGenerator, n_events: int, seed: int, pileup: float,
                  library: pileup_library.Library | None = None) -> dict:
    """Generate and reconstruct one block of events; returns the block's branches (numpy / awkward).

    With ``pileup`` > 0, Poisson(``pileup``) minimum-bias events of ``library`` (default: the cached
    :func:`~deepjet_nb.samples.pileup.load_library`) are overlaid on each event."""
    batch = generator.generate(n_events, seed)
    if library is None:
        library = pileup_library.load_library() if pileup > 0 else pileup_library.Library.empty()
    detector.seed_numba(seed)
    cand, cand_offsets, _, pv_reco, npv = detector.simulate_candidates(
        batch.offsets, batch.status, batch.pid, batch.charge, batch.px, batch.py, batch.pz, batch.e,
        batch.vx, batch.vy, batch.vz, float(pileup), library.offsets, library.pid, library.charge, library.p4,
        library.vertex, library.vertex_tracks)
    p4, eta, phi, jet_event, jet_offsets, const_offsets, const_index = reconstruct_jets(
        cand, cand_offsets, pv_reco, batch.n_events)

    flags, hflav, pflav, _, _ = truth.label_jets(
        batch.offsets, batch.pid, batch.status, batch.mother1, batch.mother2, batch.daughter1, batch.daughter2,
        batch.px, batch.py, batch.pz, jet_offsets, eta, phi)

    (jets, cpf, cpf_n, csvtrk, csvtrk_n, etarel, etarel_n, npf, npf_n, sv, sv_n) = features.compute_jet_features(
        cand, cand_offsets, const_offsets, const_index, jet_event, np.ascontiguousarray(p4), pv_reco,
        pileup > 0)

    gen_pt = _matched_gen_pt(batch, eta, phi, jet_event)
    # a jet without a generator-level jet (a pile-up jet) is isUndefined, as DeepNTuples flags it
    flags[gen_pt == 0] = 0
    flags[gen_pt == 0, schema.FLAVOUR_FLAGS.index("isUndefined")] = 1

    out = {}
    for i, name in enumerate(features.JET_COLUMNS):
        out[name] = jets[:, i]
    out["gen_pt"] = gen_pt
    out["npv"] = npv[jet_event]
    for i, name in enumerate(schema.FLAVOUR_FLAGS):
        out[name] = flags[:, i]
    out["jet_hadronFlavour"] = hflav
    out["jet_partonFlavour"] = pflav
    lists = {"Cpfcan": (cpf, cpf_n), "Npfcan": (npf, npf_n), "sv": (sv, sv_n), "TagVarCSVTrk": (csvtrk, csvtrk_n),
             "TagVarCSV": (etarel[:, None], etarel_n)}
    for record, (content, counts) in lists.items():
        fields = GROUPS[record][0]
        out[record] = ak.unflatten(
            ak.zip({f: content[:, i].astype(np.float32) for i, f in enumerate(fields)}), counts)
    return _cast(out)


def reconstruct_jets(cand, cand_offsets, pv_reco, n_events):
    """anti-kT jets of the candidates that survive charged-hadron subtraction (all candidates stay available to
    the features), selected in pT and eta: ``(p4, eta, phi, jet_event, jet_offsets, const_offsets,
    const_index)``, constituent indices local to each event among all its candidates."""
    C = detector
    keep = np.nonzero(features.chs_keep(cand, cand_offsets, pv_reco))[0]
    event_of_cand = np.repeat(np.arange(n_events), np.diff(cand_offsets))
    kept_offsets = _offsets(np.bincount(event_of_cand[keep], minlength=n_events))
    p4, jets_per_event, const_counts, const_index = _cluster(
        cand[C.C_PX, keep], cand[C.C_PY, keep], cand[C.C_PZ, keep], cand[C.C_E, keep], np.diff(kept_offsets),
        JET_PT_MIN)
    eta, phi, pt = _eta_phi_pt(p4)
    jet_event = np.repeat(np.arange(n_events), jets_per_event)
    # constituent indices: local to the event among kept candidates -> local to the event among all
    const_event = np.repeat(jet_event, const_counts)
    const_index = keep[kept_offsets[const_event] + const_index] - cand_offsets[const_event]
    good = (np.abs(eta) < JET_ETA_MAX) & (pt > JET_PT_MIN)
    # keep the constituents of the selected jets only
    const_index = const_index[np.repeat(good, const_counts)]
    const_offsets = _offsets(const_counts[good])
    p4, eta, phi, jet_event = p4[good], eta[good], phi[good], jet_event[good]
    jet_offsets = _offsets(np.bincount(jet_event, minlength=n_events))
    return p4, eta, phi, jet_event, jet_offsets, const_offsets, const_index


def _matched_gen_pt(batch, eta, phi, jet_event):
    """pT of the nearest generator-level jet (visible final-state particles) within Delta R < 0.4, else 0."""
    visible = (batch.status > 0) & ~np.isin(np.abs(batch.pid), (12, 14, 16))
    event_of = np.repeat(np.arange(batch.n_events), np.diff(batch.offsets))
    counts = np.bincount(event_of[visible], minlength=batch.n_events)
    gp4, gen_per_event, _, _ = _cluster(batch.px[visible], batch.py[visible], batch.pz[visible], batch.e[visible],
                                        counts, 10.0)
    geta, gphi, gpt = _eta_phi_pt(gp4)
    gen_offsets = _offsets(gen_per_event)
    out = np.zeros(len(eta))
    for j in range(len(eta)):
        lo, hi = gen_offsets[jet_event[j]], gen_offsets[jet_event[j] + 1]
        if hi == lo:
            continue
        dphi = (gphi[lo:hi] - phi[j] + np.pi) % (2 * np.pi) - np.pi
        dr = np.hypot(geta[lo:hi] - eta[j], dphi)
        k = np.argmin(dr)
        if dr[k] < GEN_MATCH_DR:
            out[j] = gpt[lo + k]
    return out


def _cast(out: dict) -> dict:
    for name, value in out.items():
        if isinstance(value, np.ndarray):
            out[name] = value.astype(np.int32 if name in schema.INTEGER_BRANCHES else np.float32)
    return out


def generate_block(block: int, events: int, process: str, pthat_min, pileup: float, seed: int):
    """Runner worker: ``(n_events, branches)`` of block ``block`` of an ``events``-event sample, seeded from
    (``seed``, ``block``) only, so any process or machine gives the same content."""
    n_events = min(BLOCK_EVENTS, events - block * BLOCK_EVENTS)
    return n_events, process_block(_generator(process, pthat_min), n_events, block_seed(seed, block), pileup)


@functools.lru_cache(maxsize=1)
def _generator(process, pthat_min) -> EventGenerator:
    # Pythia's set-up costs about a second; a worker keeps its instance for the blocks it runs (every block
    # reseeds it, so which blocks ran before does not matter).
    return EventGenerator(process, pthat_min)


def validate_arguments(process, events, out, jobs, pthat_min, pileup):
    if process not in PROCESSES:
        raise ArgumentError(f"unknown process {process!r}; choose one of {', '.join(PROCESSES)}")
    if isinstance(events, bool) or not isinstance(events, numbers.Integral) or events <= 0:
        raise ArgumentError(f"number of events must be a positive integer, got {events!r}")
    integer(events, "--events", "generate", maximum=MAX_EVENTS)
    integer(jobs, "--jobs", "generate", minimum=1)
    if pthat_min is not None:
        number(pthat_min, "--pthat-min", "generate", minimum=0)
    number(pileup, "--pileup", "generate", minimum=0, maximum=MAX_PILEUP)
    out = Path(out)
    if out.suffix != ".root":
        raise ArgumentError(f"output file {str(out)!r} must end in .root")
    return check_output(out, what="output file")


def generate(process: str, events: int, out, *, seed: int = 1, jobs: int = 1, pthat_min: float | None = None,
             pileup: float = 0.0, progress: bool = True, scheduler=None) -> GenerateSummary:
    """Generate ``events`` Pythia 8 events of ``process`` ("ttbar" or "qcd") and write their jets to ``out``.

    One entry per anti-kT R=0.4 jet with pT > 20 GeV and |eta| < 2.5 in tree ``deepntuplizer/tree`` with the
    branches of :mod:`deepjet_nb.schema`. Events are produced in blocks of ``BLOCK_EVENTS``, each
    seeded from (``seed``, block index), over ``jobs`` worker processes (or on the Dask cluster of
    ``scheduler``, an address or a ``distributed.Client``); the same arguments give the same file content,
    whatever ran the blocks. The file appears only when complete.

    Raises :class:`~deepjet_nb.errors.ArgumentError` for an unknown process, a number of events outside
    1..``MAX_EVENTS``, pileup outside 0..``MAX_PILEUP``, or an unwritable output path.
    """
    out = validate_arguments(process, events, out, jobs, pthat_min, pileup)
    from ..parallel import Runner

    if pileup > 0:  # made once here (and cached) rather than by every worker
        pileup_library.ensure_library(progress=progress)
    start = time.perf_counter()
    events = int(events)
    n_blocks = -(-events // BLOCK_EVENTS)
    counts = dict.fromkeys(schema.FLAVOUR_FLAGS, 0)
    n_jets = 0
    remove_stale(out.parent, out.name)  # temporaries of earlier runs killed with SIGKILL
    try:
        with Runner(min(jobs, n_blocks), scheduler, n_blocks, what="generate") as runner, atomic_path(out) as tmp:
            import uproot

            with uproot.recreate(tmp) as file:
                tree = None
                # In block order, at most 4 blocks per worker in flight: bounded memory, a reproducible file.
                for block, ok, value in runner.map(generate_block, range(n_blocks),
                                                   (events, process, pthat_min, float(pileup), seed),
                                                   desc=f"generate {process}", progress=progress, unit="block",
                                                   ordered=True, window=4 * runner.jobs):
                    if not ok:
                        raise DeepJetError(f"generate: block {block} failed: {value}")
                    n_events, data = value
                    if tree is None:
                        tree = file.mktree(schema.TREE, _branch_types(data), counter_name=_COUNTER_NAMES.__getitem__)
                    if len(data["jet_pt"]):
                        tree.extend(data)
                    n_jets += len(data["jet_pt"])
                    for flag in schema.FLAVOUR_FLAGS:
                        counts[flag] += int(np.sum(data[flag]))
    finally:
        _generator.cache_clear()  # the in-process Pythia instance (jobs=1) is not kept after the call
    return GenerateSummary(out, process, events, n_jets, time.perf_counter() - start, counts)


def _branch_types(data):
    types = {}
    for name, value in data.items():
        types[name] = value.dtype if isinstance(value, np.ndarray) else value.type
    return types
