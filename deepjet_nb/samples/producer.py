"""From Pythia events to a ROOT ntuple: blocks of events, worker processes, atomic output.

One block runner and writer serve every sample kind (:data:`PRODUCTS`): the AK4 DeepNTuples jets made here,
and the DeepAK8 fat jets and event-level entries of :mod:`.fatjets`; the process chooses the kind and with it
the schema (tree, branches, counters, truth flags) of :mod:`deepjet_nb.schema`.

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
from . import clustering, features, fatjets, kernel_cache, pileup as pileup_library, truth
from .pythia import EVENT_LABEL, FATJET_PROCESSES, PROCESSES, EventGenerator, block_seed

BLOCK_EVENTS = 100  # events per block: the unit of seeding, parallelism and progress
MAX_EVENTS = 10**8  # far beyond what a laptop or a batch job generates (days of CPU); bounds the block list
MAX_PILEUP = 200.0  # HL-LHC design pileup; memory grows with it (1e6 took 12 GB for 10 events)
JET_PT_MIN = 20.0
JET_ETA_MAX = 2.5
JET_R = 0.4
GEN_MATCH_DR = 0.4
WARMUP_EVENTS = 5  # events that call every kernel of a sample kind (each kind makes entries from 5)

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
    entry: str = "jet"  # what one entry is: a jet, a fat jet or an event (``jets`` counts entries)

    def __str__(self):
        lines = [f"{self.path}: {self.jets} {self.entry}s from {self.events} {self.process} events in "
                 f"{self.seconds:.1f} s"]
        width = max(len(k) for k in self.flavour_counts) if self.flavour_counts else 0
        for name, count in self.flavour_counts.items():
            lines.append(f"  {name:<{width}}  {count:7d}  {count / max(self.jets, 1):6.1%}")
        return "\n".join(lines)


def _cluster(px, py, pz, e, counts, ptmin, radius=JET_R):
    """anti-kT jets of each event (R = 0.4 unless ``radius``): :func:`.clustering.cluster`."""
    return clustering.cluster(px, py, pz, e, counts, ptmin, radius)


_eta_phi_pt = clustering.eta_phi_pt
_offsets = clustering.offsets_of


def process_block(generator: EventGenerator, n_events: int, seed: int, pileup: float,
                  library: pileup_library.Library | None = None) -> dict:
    """Generate and reconstruct one block of events; returns the block's branches (numpy / awkward).

    With ``pileup`` > 0, Poisson(``pileup``) minimum-bias events of ``library`` (default: the cached
    :func:`~deepjet_nb.samples.pileup.load_library`) are overlaid on each event."""
    batch, cand, cand_offsets, pv_reco, npv = clustering.simulate_events(generator, n_events, seed, pileup, library)
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
    return schema.DEEPNTUPLES.cast(out)


def reconstruct_jets(cand, cand_offsets, pv_reco, n_events, *, radius: float = JET_R, pt_min: float = JET_PT_MIN,
                     eta_max: float = JET_ETA_MAX):
    """anti-kT jets of the candidates that survive charged-hadron subtraction (all candidates stay available to
    the features), selected in pT and eta: ``(p4, eta, phi, jet_event, jet_offsets, const_offsets,
    const_index)``, constituent indices local to each event among all its candidates. The defaults are the AK4
    jets of this producer; :mod:`.fatjets` passes R = 0.8 and its cuts (:func:`.clustering.reconstruct_jets`)."""
    return clustering.reconstruct_jets(cand, cand_offsets, pv_reco, n_events, radius=radius, pt_min=pt_min,
                                       eta_max=eta_max)


def _matched_gen_pt(batch, eta, phi, jet_event):
    """pT of the nearest generator-level jet (visible final-state particles) within Delta R < 0.4, else 0."""
    gp4, gen_offsets, _, _ = clustering.gen_jets(batch, JET_R, 10.0)
    geta, gphi, gpt = _eta_phi_pt(gp4)
    match = clustering.match_nearest(eta, phi, jet_event, geta, gphi, gen_offsets, GEN_MATCH_DR)
    return np.where(match >= 0, gpt[np.maximum(match, 0)], 0.0) if len(gpt) else np.zeros(len(eta))


# What a sample holds, chosen from the process (and ``event_level``): its schema and the function that makes
# one block's branches, ``func(generator, n_events, seed, pileup, options)``.
@dataclass(frozen=True)
class Product:
    schema: schema.Schema
    block: object
    description: str


def _ak4_block(generator, n_events, seed, pileup, options):
    return process_block(generator, n_events, seed, pileup)


PRODUCTS = {
    "jets": Product(schema.DEEPNTUPLES, _ak4_block, "anti-kT R = 0.4 jets, pT > 20 GeV, |eta| < 2.5"),
    "fatjets": Product(schema.DEEPAK8, fatjets.fatjet_block, "anti-kT R = 0.8 jets, |eta| < 2.4"),
    "events": Product(schema.EVENTS, fatjets.event_block, "events passing the event-level preselection"),
}


def product_of(process: str, event_level: bool = False) -> str:
    """The kind of sample ``process`` makes: ``events`` with ``event_level`` (processes of
    :data:`~.pythia.EVENT_LABEL` only), ``fatjets`` for the boosted processes (:data:`~.pythia.FATJET_PROCESSES`),
    else ``jets`` (AK4, DeepNTuples)."""
    if event_level:
        if process not in EVENT_LABEL:
            raise ArgumentError(f"--event-level needs a ttbar or QCD process ({', '.join(EVENT_LABEL)}), "
                                f"got {process!r}")
        return "events"
    return "fatjets" if process in FATJET_PROCESSES else "jets"


def generate_block(block: int, events: int, process: str, pthat_min, pileup: float, seed: int,
                   product: str = "jets", options: tuple = ()):
    """Runner worker: ``(n_events, branches)`` of block ``block`` of an ``events``-event sample of kind
    ``product`` (:data:`PRODUCTS`), seeded from (``seed``, ``block``) only, so any process or machine gives the
    same content. ``options`` are the product's own settings (the fat-jet pT threshold, the event label)."""
    n_events = min(BLOCK_EVENTS, events - block * BLOCK_EVENTS)
    return n_events, PRODUCTS[product].block(_generator(process, pthat_min), n_events, block_seed(seed, block),
                                             pileup, options)


def compile_kernels(kind: str, process: str, pthat_min=None, options: tuple = ()) -> None:
    """Call every numba kernel a sample of ``kind`` (:data:`PRODUCTS`) uses, on ``WARMUP_EVENTS`` events of
    ``process`` without pile-up (the kernels' types are the same with it): numba compiles them and caches the
    code (:mod:`.kernel_cache`). ``options`` are the kind's own settings, as :func:`generate_block` takes them."""
    PRODUCTS[kind].block(_generator(process, pthat_min), WARMUP_EVENTS, block_seed(0, 0), 0.0, options)


@functools.lru_cache(maxsize=1)
def _generator(process, pthat_min) -> EventGenerator:
    # Pythia's set-up costs about a second; a worker keeps its instance for the blocks it runs (every block
    # reseeds it, so which blocks ran before does not matter).
    return EventGenerator(process, pthat_min)


def validate_arguments(process, events, out, jobs, pthat_min, pileup, fatjet_pt_min=None):
    if process not in PROCESSES:
        raise ArgumentError(f"unknown process {process!r}; choose one of {', '.join(PROCESSES)}")
    if isinstance(events, bool) or not isinstance(events, numbers.Integral) or events <= 0:
        raise ArgumentError(f"number of events must be a positive integer, got {events!r}")
    integer(events, "--events", "generate", maximum=MAX_EVENTS)
    integer(jobs, "--jobs", "generate", minimum=1)
    if pthat_min is not None:
        number(pthat_min, "--pthat-min", "generate", minimum=0)
    if fatjet_pt_min is not None:
        number(fatjet_pt_min, "--fatjet-pt-min", "generate", minimum=0)
    number(pileup, "--pileup", "generate", minimum=0, maximum=MAX_PILEUP)
    out = Path(out)
    if out.suffix != ".root":
        raise ArgumentError(f"output file {str(out)!r} must end in .root")
    return check_output(out, what="output file")


def generate(process: str, events: int, out, *, seed: int = 1, jobs: int = 1, pthat_min: float | None = None,
             pileup: float = 0.0, progress: bool = True, scheduler=None, event_level: bool = False,
             fatjet_pt_min: float | None = None) -> GenerateSummary:
    """Generate ``events`` Pythia 8 events of ``process`` (:data:`~.pythia.PROCESSES`) and write them to ``out``.

    What one entry is follows from the process (:func:`product_of`): for ``ttbar`` and ``qcd`` (and any other
    non-boosted process) one anti-kT R=0.4 jet with pT > 20 GeV and |eta| < 2.5, branches of
    :data:`deepjet_nb.schema.DEEPNTUPLES`; for the boosted processes (``zprime_tt``, ``wprime_wz``,
    ``qcd_boosted``, ``hh_bbbb``) one anti-kT R=0.8 jet with pT > ``fatjet_pt_min`` (default 300 GeV) and
    |eta| < 2.4, branches of :data:`~deepjet_nb.schema.DEEPAK8` (:mod:`.fatjets`); with ``event_level`` one
    preselected event, branches of :data:`~deepjet_nb.schema.EVENTS` in tree ``events``. Events are produced in
    blocks of ``BLOCK_EVENTS``, each seeded from (``seed``, block index), over ``jobs`` worker processes (or on
    the Dask cluster of ``scheduler``, an address or a ``distributed.Client``); the same arguments give the
    same file content, whatever ran the blocks. The file appears only when complete.

    Raises :class:`~deepjet_nb.errors.ArgumentError` for an unknown process, a number of events outside
    1..``MAX_EVENTS``, pileup outside 0..``MAX_PILEUP``, ``event_level`` with a process that is neither ttbar
    nor QCD, ``fatjet_pt_min`` for a process without fat jets, or an unwritable output path.
    """
    out = validate_arguments(process, events, out, jobs, pthat_min, pileup, fatjet_pt_min)
    kind = product_of(process, event_level)
    if fatjet_pt_min is not None and kind != "fatjets":
        raise ArgumentError(f"--fatjet-pt-min applies to the fat-jet processes ({', '.join(FATJET_PROCESSES)}), "
                            f"not to {process!r}" + (" with --event-level" if event_level else ""))
    if kind == "fatjets":
        options = (fatjets.FATJET_PT_MIN if fatjet_pt_min is None else float(fatjet_pt_min),)
    elif kind == "events":
        options = (EVENT_LABEL[process],)
    else:
        options = ()
    product = PRODUCTS[kind]
    from ..parallel import Runner

    if pileup > 0:  # made once here (and cached) rather than by every worker
        pileup_library.ensure_library(progress=progress)
    if scheduler is None:  # compiled once here, not by every worker; a cluster's machines compile their own
        kernel_cache.compile_once(kind, functools.partial(compile_kernels, kind, process, pthat_min, options),
                                  progress=progress)
    start = time.perf_counter()
    events = int(events)
    n_blocks = -(-events // BLOCK_EVENTS)
    layout = product.schema
    counts = dict.fromkeys(layout.truth_flags, 0)
    counter_names = {o.record: o.counter for o in layout.object_lists}
    first = layout.scalars[0]
    n_entries = 0
    remove_stale(out.parent, out.name)  # temporaries of earlier runs killed with SIGKILL
    try:
        with Runner(min(jobs, n_blocks), scheduler, n_blocks, what="generate") as runner, atomic_path(out) as tmp:
            import uproot

            with uproot.recreate(tmp) as file:
                tree = None
                # In block order, at most 4 blocks per worker in flight: bounded memory, a reproducible file.
                for block, ok, value in runner.map(generate_block, range(n_blocks),
                                                   (events, process, pthat_min, float(pileup), seed, kind, options),
                                                   desc=f"generate {process}", progress=progress, unit="block",
                                                   ordered=True, window=4 * runner.jobs):
                    if not ok:
                        raise DeepJetError(f"generate: block {block} failed: {value}")
                    n_events, data = value
                    if tree is None:
                        tree = file.mktree(layout.tree, _branch_types(data), counter_name=counter_names.__getitem__)
                    if len(data[first]):
                        tree.extend(data)
                    n_entries += len(data[first])
                    for flag in layout.truth_flags:
                        counts[flag] += int(np.sum(data[flag]))
    finally:
        _generator.cache_clear()  # the in-process Pythia instance (jobs=1) is not kept after the call
    return GenerateSummary(out, process, events, n_entries, time.perf_counter() - start, counts, layout.entry)


def _branch_types(data):
    types = {}
    for name, value in data.items():
        types[name] = value.dtype if isinstance(value, np.ndarray) else value.type
    return types
