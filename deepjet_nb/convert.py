"""Conversion: ROOT ntuples + a data config → a converted dataset (docs/formats.md §2).

Two passes. The statistics pass reads the leading ``preprocessing.fraction`` of each file's jets for the
standardisation (mean/std per feature) and, for the per-class pT–η histograms, the flags, selection and
pT/η branches of all jets (each entry read once). The conversion pass then reads each file in chunks of
``step_size`` entries (so memory depends on the chunk size, not the file size), resamples before padding,
and streams one shard per input file, named after the file's stem, into a temporary directory that is
moved into place once complete. The manifest is rewritten (atomically) after every finished shard, so an
interrupted run resumes where it stopped; a finished shard is redone only when its source's checksum
(xxh3_128) changed.

Files are processed in parallel on local processes (``jobs``) or on a Dask distributed cluster
(``scheduler``). A file that fails is reported by name with its cause; the others finish.

Example::

    >>> from deepjet_nb.convert import convert
    >>> result = convert(["ttbar.root", "qcd.root"], "data/deepjet", "deepjet", jobs=2)  # doctest: +SKIP
    >>> result.ok, result.failed                                                          # doctest: +SKIP
    (True, {})
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from ._args import integer, number, paths as as_paths
from ._atomic import check_output, remove_stale, sha256_file
from ._lock import output_lock
from .config import DERIVED_DEFAULT, DERIVED_SPECTATORS, DataConfig, config_from_dict, load_config
from .config import evaluate_selection
from .dataset import FORMAT_VERSION, MANIFEST, SHARDS, Manifest, ShardWriter
from .errors import ArgumentError, DatasetError, DeepJetError, InputFileError, one_line
from .flavours import class_labels
from .parallel import Runner
from .rootio import cause, open_tree

DEFAULT_STEP_SIZE = 50_000  # entries per chunk: ~100 MB of DeepJet branches, fast and bounded
CHECKSUM = "xxh3_128"  # shard record key of the source checksum (see _checksum)


@dataclass
class ConversionResult:
    """What :func:`convert` did: shards written and skipped (stems), failures (file → cause), shards of an
    earlier run redone because their files did not match the manifest (stem → what was wrong), manifest."""

    out: Path
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    redone: dict[str, str] = field(default_factory=dict)
    manifest: Manifest = field(default_factory=Manifest, repr=False)

    @property
    def ok(self) -> bool:
        return not self.failed


# --- public API -----------------------------------------------------------------------------------------

def convert(inputs, out, config, *, jobs: int | None = None, scheduler=None, fraction: float | None = None,
            step_size: int = DEFAULT_STEP_SIZE, reconvert: bool = False,
            progress: bool = True) -> ConversionResult:
    """Convert ROOT ntuples ``inputs`` into a dataset directory ``out`` with data config ``config``.

    Inputs: ``inputs`` paths of ROOT files (distinct stems); ``config`` a shipped name, a YAML path, a dict or
    a :class:`DataConfig`; ``jobs`` local worker processes (default: one per file up to the CPU count; 1 runs
    in this process); ``scheduler`` a Dask scheduler address (or a ``distributed.Client``) to run on a
    cluster instead; ``fraction`` overrides ``preprocessing.fraction``; ``step_size`` entries per chunk;
    ``reconvert`` discards an existing dataset made with another config (or redoes an identical one).

    Output: a :class:`ConversionResult`. Finished shards of an earlier run with the same config, unchanged
    sources and files that match the manifest are skipped (a shard whose files do not match is redone and
    listed in ``result.redone``). Files that fail are listed in ``result.failed`` (file → cause) and leave
    no shard behind. ``out`` is locked while the conversion runs. Raises :class:`DatasetError` when ``out``
    holds a dataset converted with another config or from another list of inputs (a file not among those
    of its statistics, or a stem converted from another path; unless ``reconvert``), or when no file could be
    read; :class:`ArgumentError` for bad arguments or an unwritable ``out``; :class:`LockedError` when another
    conversion writes into ``out``.
    """
    cfg = _as_config(config)
    if fraction is not None:
        cfg = cfg.with_fraction(number(fraction, "fraction", "convert"))
    paths = as_paths(inputs, "convert", "input files")
    _check_stems(paths)
    step_size = integer(step_size, "step_size", "convert", minimum=1)
    if jobs is not None:
        integer(jobs, "jobs", "convert", minimum=1)
    out = check_output(out, directory=True, what="dataset directory")
    result = ConversionResult(out=out)
    with output_lock(out, what="deepjet-nb convert"):
        remove_stale(out)
        remove_stale(out / SHARDS)  # shards of a run killed with SIGKILL
        return _convert_locked(paths, out, cfg, jobs, scheduler, step_size, reconvert, progress, result)


def _convert_locked(paths, out, cfg, jobs, scheduler, step_size, reconvert, progress, result):
    manifest = _existing_manifest(out, cfg, reconvert)
    if manifest is not None:
        _check_inputs(manifest, paths, out)
    with Runner(jobs, scheduler, len(paths), what="convert") as runner:
        if manifest is None:
            manifest = _statistics_pass(paths, cfg, step_size, runner, progress, result)
            manifest.write(out)
        todo = []
        done = {s["name"]: s for s in manifest.shards}
        for path in paths:
            if str(path) in result.failed:
                continue
            record = done.get(path.stem)
            if record and (out / SHARDS / path.stem).is_dir() and _source_unchanged(record, path):
                problem = manifest.shard_problem(out, record)
                if problem is None:
                    result.skipped.append(path.stem)
                    continue
                result.redone[path.stem] = problem
            todo.append(path)
        tables = _weight_tables_from_manifest(manifest, cfg)
        args = (str(out / SHARDS), cfg, manifest.normalisation, tables, step_size)
        for path, ok, value in runner.map(_convert_file, todo, args, desc="converting", progress=progress,
                                          postfix=lambda r: f"{r['name']}: {r['n_jets']} jets"):
            if not ok:
                result.failed[str(path)] = value
                continue
            done[value["name"]] = value
            order = {p.stem: i for i, p in enumerate(paths)}
            manifest["shards"] = sorted(done.values(), key=lambda s: (order.get(s["name"], len(order)), s["name"]))
            manifest.write(out)
            result.converted.append(value["name"])
    result.manifest = manifest
    return result


def iter_arrays(path, config, normalisation: dict | None = None, *,
                step_size: int = DEFAULT_STEP_SIZE) -> Iterator[dict[str, np.ndarray]]:
    """Convert one ROOT file in memory, chunk by chunk, without resampling or weighting (for test data).

    Inputs: ``path`` a ROOT ntuple; ``config`` a shipped name, YAML path, dict (e.g. a manifest's
    ``"config"``) or :class:`DataConfig`; ``normalisation`` a manifest's ``"normalisation"`` (group → feature
    → {"mean", "std"}), or None for raw values (NaN/inf/defaults still replaced, nothing clipped);
    ``step_size`` entries per chunk.

    Yields, per chunk, a dict: one float32 array per input group (``(n, *shape)``, in config order),
    ``"label"`` int8 class index, ``"spectators"`` float32 ``(n, n_spectators)`` in ``config.spectators``
    order. Jets in no class (isUndefined) or failing the selection are dropped, exactly as in :func:`convert`.
    Raises :class:`InputFileError` (file, tree or branch at fault), :class:`DatasetError` when the
    normalisation lacks a feature.
    """
    cfg = _as_config(config)
    norm = _normalisation_arrays(cfg, normalisation)
    for arrays in _read_chunks(Path(path), cfg, _all_branches(cfg), step_size):
        out, _, _ = _process_chunk(arrays, cfg, norm, path)
        yield out


def convert_jets(branches, config, normalisation: dict | None = None, *,
                 source: str = "jets") -> dict[str, np.ndarray]:
    """Convert jets held in memory (no file): the input groups of every jet given, exactly as
    :func:`iter_arrays` converts them from a file (same kernels, sorting, padding and normalisation), but with
    no selection and no class: the truth flags are not needed (a service converts jets of unknown flavour).

    ``branches`` maps each branch that the input groups read (:func:`input_branches`) to one value per jet: a
    number per jet for a scalar branch (array-like ``(n,)``), a list of numbers per jet for a jagged one (a
    list of lists or an awkward array); the branches of one object list must have the same lengths. Returns
    group → float32 ``(n, *shape)`` in config order (NaN, inf and the default values are replaced as in a
    file). Raises :class:`InputFileError` naming ``source`` and the branch that is missing, not numbers, or of
    other lengths than the rest of its object list or jets.
    """
    cfg = _as_config(config)
    norm = _normalisation_arrays(cfg, normalisation)
    scalar_names, jagged_names = input_branches(cfg)
    missing = [b for b in (*scalar_names, *jagged_names) if b not in branches]
    if missing:
        raise InputFileError(f"{source}: missing branch(es) {missing}")
    arrays, n = {}, None
    for name in scalar_names:
        try:
            values = np.asarray(branches[name], dtype=np.float32)
        except (TypeError, ValueError):
            raise InputFileError(f"{source}: branch {name!r} must hold one number per jet") from None
        if values.ndim != 1:
            raise InputFileError(f"{source}: branch {name!r} must hold one number per jet, got shape "
                                 f"{values.shape}")
        arrays[name] = values
    for name in jagged_names:
        arrays[name] = _jagged_array(branches[name], name, source)
    for name, values in arrays.items():
        if n is None:
            n, first = len(values), name
        elif len(values) != n:
            raise InputFileError(f"{source}: branch {name!r} has {len(values)} jets, {first!r} has {n}")
    scalars = {name: arrays[name] for name in scalar_names}
    return _input_groups(arrays, scalars, cfg, norm, np.arange(n or 0), source)


def input_branches(config) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(scalar branches, jagged branches) that the input groups of ``config`` read, sort keys included."""
    cfg = _as_config(config)
    scalars, jagged = [], []
    for g in cfg.inputs:
        (jagged if g.jagged else scalars).extend(g.branches)
        if g.jagged and g.sort_by:
            jagged.append(g.sort_by)
    return tuple(dict.fromkeys(scalars)), tuple(dict.fromkeys(jagged))


def _jagged_array(values, name, source):
    """One jagged branch as an awkward list array (float32 content): from an awkward array or lists of numbers."""
    import awkward as ak

    if isinstance(values, ak.Array):
        if values.ndim != 2:
            raise InputFileError(f"{source}: branch {name!r} must hold a list of numbers per jet")
        return values
    try:
        lengths = np.fromiter((len(v) for v in values), dtype=np.int64)
        content = np.fromiter((x for v in values for x in v), dtype=np.float32, count=int(lengths.sum()))
    except (TypeError, ValueError):
        raise InputFileError(f"{source}: branch {name!r} must hold a list of numbers per jet") from None
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    layout = ak.contents.ListOffsetArray(ak.index.Index64(offsets), ak.contents.NumpyArray(content))
    return ak.Array(layout)


def derived_spectator(name: str, arrays, path="<arrays>") -> np.ndarray:
    """A derived spectator of every jet in ``arrays`` (branch → awkward array, e.g. ``tree.arrays()``).

    ``name`` is a key of :data:`deepjet_nb.config.DERIVED_SPECTATORS`, e.g. ``trackCounting_sip3dSig2``, the
    track-counting b tagger: the second-highest 3D impact-parameter significance among the jet's selected
    tracks, -10 for jets with fewer than two. Returns float32 (n_jets,).
    """
    from .kernels.padding import nth_largest

    branch, n = DERIVED_SPECTATORS[name]
    offsets, values = _jagged_values(arrays, (branch,), path=path)
    return nth_largest(offsets, values[0], n, DERIVED_DEFAULT)


def weight_tables(histograms: np.ndarray, mode: str, reference: int | None) -> np.ndarray:
    """Per-class pT–η weight tables from per-class histograms (n_classes, n_pt, n_eta).

    ``mode="reference"``: weight = reference density / class density (each class follows the reference);
    ``"flat"``: uniform density / class density; ``"none"``: all ones. Bins a class does not populate get 0.
    With per-jet weights, the sum of a class's weights is about its number of jets.
    """
    hist = np.asarray(histograms, dtype=np.float64)
    if mode == "none":
        return np.ones_like(hist)
    totals = hist.sum(axis=(1, 2), keepdims=True)
    density = np.divide(hist, totals, out=np.zeros_like(hist), where=totals > 0)
    if mode == "reference":
        target = np.broadcast_to(density[reference], hist.shape)
    else:
        target = np.full(hist.shape, 1.0 / hist[0].size)
    return np.divide(target, density, out=np.zeros_like(hist), where=density > 0)


def keep_probabilities(weights: np.ndarray) -> np.ndarray:
    """Rejection-sampling keep probability per class and bin: weights scaled to a maximum of 1 per class."""
    peak = weights.max(axis=(1, 2), keepdims=True)
    return np.divide(weights, peak, out=np.zeros_like(weights), where=peak > 0)


# --- the two passes -------------------------------------------------------------------------------------

def _statistics_pass(paths, cfg, step_size, runner, progress, result):
    from .kernels.stats import merge_moments

    totals = {g.name: None for g in cfg.inputs}
    hist = None
    n_selected = 0
    finished = {}
    for path, ok, value in runner.map(_file_statistics, paths, (cfg, step_size), desc="statistics",
                                      progress=progress):
        if ok:
            finished[path] = value
        else:
            result.failed[str(path)] = value
    # Merged in input order, not completion order: floating-point sums then give the same bits every run.
    for value in (finished[p] for p in paths if p in finished):
        for name, moments in value["moments"].items():
            totals[name] = moments if totals[name] is None else merge_moments(*totals[name], *moments)
        hist = value["histogram"] if hist is None else hist + value["histogram"]
        n_selected += value["n_selected"]
    if hist is None:
        causes = "; ".join(one_line(c) for c in result.failed.values())
        raise DatasetError(f"{result.out}: no input file could be read: {causes}")
    if n_selected == 0:
        raise DatasetError(f"{result.out}: no jet passes the selection and class definition in any input "
                           f"(selection: {cfg.selection!r})")
    normalisation = {}
    for g in cfg.inputs:
        count, mean, m2 = totals[g.name]
        normalisation[g.name] = {}
        for i, branch in enumerate(g.branches):
            std = math.sqrt(m2[i] / count[i]) if count[i] > 1 else 0.0
            # A constant (or absent) feature carries no information; std 1 keeps it finite and unchanged.
            normalisation[g.name][branch] = {"mean": float(mean[i]) if count[i] else 0.0,
                                             "std": std if std > 0 else 1.0}
    w = cfg.weighting
    weighting = {"mode": w.mode, "apply": w.apply, "reference_class": w.reference_class, "seed": w.seed,
                 "pt_branch": w.pt_branch, "eta_branch": w.eta_branch,
                 "pt_edges": list(w.pt_edges), "eta_edges": list(w.eta_edges), "histograms": {}, "weights": {}}
    if w.pt_edges:
        ref = cfg.class_names.index(w.reference_class) if w.mode == "reference" else None
        tables = weight_tables(hist, w.mode, ref)
        weighting["histograms"] = {c: hist[i].tolist() for i, c in enumerate(cfg.class_names)}
        weighting["weights"] = {c: tables[i].tolist() for i, c in enumerate(cfg.class_names)}
    return Manifest({
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_name": cfg.name,
        "config": cfg.to_dict(),
        "config_hash": cfg.hash,
        "classes": list(cfg.class_names),
        "inputs": {g.name: {"shape": list(g.shape), "features": list(g.branches)} for g in cfg.inputs},
        "spectators": list(cfg.spectators),
        "normalisation": normalisation,
        "weighting": weighting,
        # the inputs of the statistics: a rerun may resume them, not add others (see _check_inputs)
        "sources": [str(p.resolve()) for p in paths if p in finished],
        "shards": [],
    })


def _file_statistics(path, cfg, step_size):
    """Worker: moments per input group on the leading fraction of jets, pT–η histograms on all jets.

    One read of each entry: the leading fraction with the input branches (moments and histograms together),
    the rest with only what the histograms need (flags, selection, pT, η: a small share of the file's bytes).
    """
    from .kernels.stats import feature_moments, merge_moments
    from .kernels.weights import histogram_2d

    path = Path(path)
    excluded = np.asarray(cfg.preprocessing.default_values, dtype=np.float64)
    w = cfg.weighting
    n_classes = len(cfg.classes)
    edges = (np.asarray(w.pt_edges or (0.0, 1.0)), np.asarray(w.eta_edges or (0.0, 1.0)))
    hist = np.zeros((n_classes, len(edges[0]) - 1, len(edges[1]) - 1))
    n_selected = 0
    moments = {}
    needed = tuple(dict.fromkeys([*cfg.flags, *cfg.selection_branches, w.pt_branch, w.eta_branch]))
    inputs = tuple(dict.fromkeys([*needed, *(b for g in cfg.inputs for b in g.branches)]))
    scalar_names = set(cfg.scalar_branches())
    input_scalars = [b for b in inputs if b in scalar_names]

    def count(scalars, label, keep):
        nonlocal hist, n_selected
        n_selected += int(keep.sum())
        hist += histogram_2d(scalars[w.pt_branch][keep], scalars[w.eta_branch][keep], label[keep], edges[0],
                             edges[1], n_classes)

    with _objects_before_frozen(), open_tree(path, cfg.tree, _all_branches(cfg), cfg.ntuple) as tree:  # opened once
        if tree.num_entries == 0:  # an input without jets gives a 0-row shard (docs/formats.md §2)
            return {"moments": moments, "histogram": hist, "n_selected": 0}
        stop = max(1, math.ceil(cfg.preprocessing.fraction * tree.num_entries))
        for arrays in _iterate(tree, path, cfg, inputs, step_size, entry_stop=stop):
            scalars = _scalars(arrays, cfg, input_scalars)
            label = class_labels(scalars, cfg.classes)
            keep = _keep(scalars, cfg, label)
            count(scalars, label, keep)
            for g in cfg.inputs:
                if g.jagged:
                    offsets, values = _jagged_values(arrays, g.branches, path)
                    values = values[:, np.repeat(keep, np.diff(offsets))]
                else:
                    values = np.stack([scalars[b] for b in g.branches])[:, keep]
                m = feature_moments(values, excluded)
                moments[g.name] = m if g.name not in moments else merge_moments(*moments[g.name], *m)
        if stop < tree.num_entries:
            for arrays in _iterate(tree, path, cfg, needed, step_size, entry_start=stop):
                scalars = _scalars(arrays, cfg, needed)
                label = class_labels(scalars, cfg.classes)
                count(scalars, label, _keep(scalars, cfg, label))
    return {"moments": moments, "histogram": hist, "n_selected": n_selected}


def _convert_file(path, shards_dir, cfg, normalisation, tables, step_size):
    """Worker: convert one file into ``shards_dir/<stem>/`` atomically; returns its manifest record."""
    from .kernels.weights import lookup_2d, resample_indices

    path = Path(path)
    stem = path.stem
    checksum = _checksum(path)
    norm = _normalisation_arrays(cfg, normalisation)
    w = cfg.weighting
    # Seeded per file (not per worker) so local processes and Dask give the same bytes.
    rng = np.random.default_rng([w.seed, int.from_bytes(hashlib.sha256(stem.encode()).digest()[:8], "little")])
    groups = {g.name: g.shape for g in cfg.inputs}
    with _objects_before_frozen(), ShardWriter(shards_dir, stem, groups, len(cfg.spectators)) as shard:
        resample = None
        if w.mode != "none" and tables is not None and w.apply == "resample":
            def resample(pt, eta, label):
                p = lookup_2d(pt, eta, label, tables["pt_edges"], tables["eta_edges"], tables["keep"])
                return resample_indices(p, rng.random(len(p)))
        for arrays in _read_chunks(path, cfg, _all_branches(cfg), step_size):
            # Resampled before padding: rejected jets cost no padding and no copy.
            out, pt, eta = _process_chunk(arrays, cfg, norm, path, resample)
            label = out["label"]
            if w.mode != "none" and tables is not None and w.apply == "weight":
                out["weight"] = lookup_2d(pt, eta, label, tables["pt_edges"], tables["eta_edges"], tables["weights"])
            else:
                out["weight"] = np.ones(len(label), dtype=np.float32)
            shard.append(out)
    n_jets = shard.n_jets
    return {"name": stem, "source": str(path.resolve()), CHECKSUM: checksum, "n_jets": n_jets}


# --- chunk processing (shared by convert, iter_arrays and the statistics pass) ---------------------------

def _process_chunk(arrays, cfg, norm, path, resample=None):
    """One chunk → (dict of output arrays for kept jets, weighting pT, weighting η of kept jets).

    Kept jets: those in a class and passing the selection, then, with ``resample(pt, eta, label)`` given, the
    ones among them at the indices it returns (resampling before padding saves work on rejected jets).
    """
    w = cfg.weighting
    scalars = _scalars(arrays, cfg)
    label = class_labels(scalars, cfg.classes)
    jets = np.flatnonzero(_keep(scalars, cfg, label))
    if resample is not None:
        jets = jets[resample(scalars[w.pt_branch][jets], scalars[w.eta_branch][jets], label[jets])]
    out = _input_groups(arrays, scalars, cfg, norm, jets, path)
    out["label"] = label[jets]
    spectators = np.empty((len(jets), len(cfg.spectators)), dtype=np.float32)
    for i, name in enumerate(cfg.spectators):
        if name in DERIVED_SPECTATORS:
            spectators[:, i] = derived_spectator(name, arrays, path)[jets]
        else:
            spectators[:, i] = scalars[name][jets]
    out["spectators"] = spectators
    return out, scalars[w.pt_branch][jets], scalars[w.eta_branch][jets]


def _input_groups(arrays, scalars, cfg, norm, jets, path):
    """The input groups of the jets at indices ``jets``: group → float32 ``(len(jets), *shape)``, sorted,
    truncated, padded and standardised (shared by files and by jets given in memory)."""
    from .kernels.padding import pad_sorted
    from .kernels.stats import standardise

    pre = cfg.preprocessing
    excluded = np.asarray(pre.default_values, dtype=np.float64)
    out = {}
    for g in cfg.inputs:
        mean, std, clip = norm[g.name]
        if g.jagged:
            offsets, values = _jagged_values(arrays, g.branches, path=path)
            if g.sort_by is None:
                key = np.empty(0, dtype=np.float32)
            elif g.sort_by in g.branches:
                key = values[g.branches.index(g.sort_by)]
            else:
                key = _jagged_values(arrays, (g.sort_by,), path=path)[1][0]
            out[g.name] = pad_sorted(offsets, values, key, jets, g.max_length, g.descending,
                                     np.float32(g.pad_value), mean, std, excluded, pre.replace_with, clip)
        else:
            values = np.stack([scalars[b][jets] for b in g.branches])
            out[g.name] = np.ascontiguousarray(standardise(values, mean, std, excluded, pre.replace_with, clip).T)
    return out


def _scalars(arrays, cfg, names=None):
    names = cfg.scalar_branches() if names is None else names
    return {name: np.asarray(arrays[name]).astype(np.float32, copy=False) for name in names}


def _keep(scalars, cfg, label=None):
    label = class_labels(scalars, cfg.classes) if label is None else label
    keep = label >= 0
    if cfg.selection:
        keep &= evaluate_selection(cfg.selection, scalars, cfg.source)
    return keep


def _jagged_values(arrays, branches, path):
    """(offsets int64 starting at 0, values float32 (n_branches, n_objects)) of jagged branches of one kind."""
    import awkward as ak

    offsets = None
    rows = []
    for name in branches:
        layout = arrays[name].layout
        if not isinstance(layout, ak.contents.ListOffsetArray):
            layout = ak.to_packed(arrays[name]).layout
        offs = np.asarray(layout.offsets.data, dtype=np.int64)
        content = layout.content.data[offs[0]:offs[-1]]
        offs = offs - offs[0]
        if offsets is None:
            offsets = offs
        elif not np.array_equal(offs, offsets):
            raise InputFileError(f"{path}: branch {name!r} has other list lengths than {branches[0]!r}")
        rows.append(content.astype(np.float32, copy=False))
    return offsets, np.stack(rows)


def _normalisation_arrays(cfg, normalisation):
    """group → (mean float64, std float64, clip) in branch order; None gives raw values (no clipping)."""
    norm = {}
    for g in cfg.inputs:
        if normalisation is None:
            norm[g.name] = (np.zeros(len(g.branches)), np.ones(len(g.branches)), 0.0)
            continue
        try:
            stats = [normalisation[g.name][b] for b in g.branches]
        except KeyError as err:
            raise DatasetError(f"normalisation has no entry {err.args[0]!r} for input group {g.name!r}") from None
        norm[g.name] = (np.array([s["mean"] for s in stats], dtype=np.float64),
                        np.array([s["std"] for s in stats], dtype=np.float64), float(cfg.preprocessing.clip))
    return norm


def _weight_tables_from_manifest(manifest, cfg):
    w = manifest["weighting"]
    if w["mode"] == "none" or not w["weights"]:
        return None
    weights = np.array([w["weights"][c] for c in cfg.class_names], dtype=np.float64)
    return {"pt_edges": np.asarray(w["pt_edges"], dtype=np.float64),
            "eta_edges": np.asarray(w["eta_edges"], dtype=np.float64),
            "weights": weights, "keep": keep_probabilities(weights)}


# --- reading --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _objects_before_frozen():
    """Keep the garbage collector's full collections off the objects that exist before a file is read.

    Reading makes many short-lived objects (per basket), so full collections run often, and each one walks
    every tracked object: numba's import alone brings ~200k, which made collecting a tenth of a conversion.
    ``gc.freeze`` sets the existing objects aside for the duration (new garbage is still collected, so memory
    stays bounded); ``gc.unfreeze`` hands them back, so nothing that was collectable stays uncollected.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _all_branches(cfg):
    return cfg.scalar_branches() + cfg.jagged_branches()


def _read_chunks(path, cfg, branches, step_size, entry_stop=None):
    """Chunks (dict branch → awkward array) of ``step_size`` entries; read errors name the file."""
    with open_tree(path, cfg.tree, branches, cfg.ntuple) as tree:
        yield from _iterate(tree, path, cfg, branches, step_size, entry_stop)


def _iterate(tree, path, cfg, branches, step_size, entry_stop=None, entry_start=None):
    try:
        for arrays in tree.iterate(list(branches), step_size=step_size, entry_start=entry_start,
                                   entry_stop=entry_stop, library="ak", how=dict):
            yield arrays
    except (DeepJetError, GeneratorExit):
        raise
    except Exception as err:  # decompression / deserialisation errors of a truncated or corrupt file
        raise InputFileError(f"{path}: cannot read tree {cfg.tree!r} ({cause(err, path)})") from None


def _checksum(path):
    """xxh3_128 hex digest of the file's bytes: detects a changed source when resuming (not a security hash;
    it runs at memory speed, where sha256 cost a visible share of a conversion)."""
    import xxhash

    digest = xxhash.xxh3_128()
    buffer = bytearray(1 << 22)
    view = memoryview(buffer)
    with open(path, "rb") as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _source_unchanged(record, path):
    """Whether ``path`` still has the checksum its shard record holds (sha256 in datasets written before
    xxh3_128 became the checksum; they resume too)."""
    if CHECKSUM in record:
        return record[CHECKSUM] == _checksum(path)
    if "sha256" in record:
        return record["sha256"] == sha256_file(path)
    return False


# --- output ---------------------------------------------------------------------------------------------

def _existing_manifest(out, cfg, reconvert):
    """The manifest to resume from, or None to start afresh (after clearing a refused-or-reconvert one)."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = Manifest.read(path)
    except DatasetError as err:
        if not reconvert:
            raise DatasetError(f"{err}; pass reconvert=True (--reconvert) to redo the dataset") from None
        manifest = Manifest(config_hash="")
    old_hash = manifest.config_hash
    if old_hash != cfg.hash and not reconvert:
        raise DatasetError(f"{out}: converted with another config ({manifest.get('config_name')!r}, hash "
                           f"{old_hash[:12]} != {cfg.hash[:12]}); pass reconvert=True (--reconvert) to redo it")
    if reconvert:
        shutil.rmtree(out / SHARDS, ignore_errors=True)
        path.unlink()
        return None
    return manifest


def _check_inputs(manifest, paths, out):
    """Refuse a rerun whose inputs are not those of the dataset: a stem converted from another path, or a file
    that is not among the inputs of the statistics (normalisation and weights would differ from a fresh
    conversion). Resuming with all or some of the original inputs is fine."""
    hint = "pass reconvert=True (--reconvert) to convert the new list afresh, or write into another directory"
    recorded = {s["name"]: s.get("source") for s in manifest.shards}
    for path in paths:
        source = str(path.resolve())
        if recorded.get(path.stem) not in (None, source):
            raise DatasetError(f"{out}: shard {path.stem!r} was converted from {recorded[path.stem]}, not from "
                               f"{source}; {hint}")
    sources = manifest.get("sources")
    if isinstance(sources, list):
        new = [str(p) for p in paths if str(p.resolve()) not in set(sources)]
        if new:
            more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
            raise DatasetError(f"{out}: {new[0]}{more} is not among the inputs this dataset's normalisation and "
                               f"weights were computed from (added, moved, or failed in the first run); {hint}")


def _check_stems(paths):
    seen = {}
    for p in paths:
        if p.stem in seen:
            raise ArgumentError(f"convert: {seen[p.stem]} and {p} have the same stem {p.stem!r}; "
                                "shards are named after it")
        seen[p.stem] = p


def _as_config(config):
    if isinstance(config, DataConfig):
        return config
    if isinstance(config, dict):
        return config_from_dict(config, source="<manifest config>")
    return load_config(config)


# --- command line ---------------------------------------------------------------------------------------

def register_cli(subparsers):
    """Add ``deepjet-nb convert``."""
    p = subparsers.add_parser(
        "convert", help="convert ROOT ntuples into a training dataset (shards + manifest)",
        description="Convert ROOT ntuples into a dataset directory: a statistics pass, then one shard per "
                    "input file (resumable; parallel over files). Exit code 1 if any file failed.")
    p.add_argument("files", nargs="+", metavar="FILES", help="input ROOT files (distinct stems)")
    p.add_argument("--config", required=True, metavar="NAME|PATH", help="data config: deepjet, deepcsv or a YAML path")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset directory")
    p.add_argument("--jobs", type=int, default=None, metavar="J", help="local worker processes (default: one per file up to the CPU count)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--fraction", type=float, default=None, metavar="F", help="share of jets for the statistics (overrides the config)")
    p.add_argument("--step-size", type=int, default=DEFAULT_STEP_SIZE, metavar="N", help="entries per chunk (bounds memory)")
    p.add_argument("--reconvert", action="store_true", help="discard an existing dataset made with another config")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    result = convert(args.files, args.out, args.config, jobs=args.jobs, scheduler=args.scheduler,
                     fraction=args.fraction, step_size=args.step_size, reconvert=args.reconvert,
                     progress=not args.no_progress)
    n_jets = result.manifest.n_jets
    print(f"{result.out}: {len(result.converted)} shard(s) converted, {len(result.skipped)} skipped, "
          f"{len(result.failed)} failed; {n_jets} jets in the dataset")
    for stem, problem in result.redone.items():
        print(f"deepjet-nb convert: redone shard {stem!r}: {one_line(problem)}", file=sys.stderr)
    for path, cause in result.failed.items():
        print(f"deepjet-nb convert: failed: {one_line(f'{path}: {cause}')}", file=sys.stderr)
    return 0 if result.ok else 1
