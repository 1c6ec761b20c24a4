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
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from ._atomic import atomic_path, write_text_atomic
from .config import DERIVED_DEFAULT, DERIVED_SPECTATORS, DataConfig, config_from_dict, load_config
from .config import evaluate_selection
from .dataset import FORMAT_VERSION, MANIFEST, SHARDS
from .errors import ArgumentError, DatasetError, DeepJetError, InputFileError
from .rootio import open_tree

DEFAULT_STEP_SIZE = 50_000  # entries per chunk: ~100 MB of DeepJet branches, fast and bounded
CHECKSUM = "xxh3_128"  # shard record key of the source checksum (see _checksum)


@dataclass
class ConversionResult:
    """What :func:`convert` did: shards written and skipped (stems), failures (file → cause), manifest."""

    out: Path
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict, repr=False)

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

    Output: a :class:`ConversionResult`. Finished shards of an earlier run with the same config and
    unchanged sources are skipped. Files that fail are listed in ``result.failed`` (file → cause) and leave
    no shard behind. Raises :class:`DatasetError` when ``out`` holds a dataset converted with another config
    (and ``reconvert`` is false) or when no file could be read, :class:`ArgumentError` for bad arguments.
    """
    cfg = _as_config(config)
    if fraction is not None:
        cfg = cfg.with_fraction(float(fraction))
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ArgumentError("convert: no input files given")
    _check_stems(paths)
    if step_size < 1:
        raise ArgumentError(f"convert: step_size must be >= 1, got {step_size}")
    out = Path(out)
    result = ConversionResult(out=out)
    manifest = _existing_manifest(out, cfg, reconvert)

    with _Runner(jobs, scheduler, len(paths)) as runner:
        if manifest is None:
            manifest = _statistics_pass(paths, cfg, step_size, runner, progress, result)
            _write_manifest(out, manifest)
        todo = []
        done = {s["name"]: s for s in manifest["shards"]}
        for path in paths:
            if str(path) in result.failed:
                continue
            record = done.get(path.stem)
            if record and (out / SHARDS / path.stem).is_dir() and _source_unchanged(record, path):
                result.skipped.append(path.stem)
            else:
                todo.append(path)
        tables = _weight_tables_from_manifest(manifest, cfg)
        args = (str(out / SHARDS), cfg, manifest["normalisation"], tables, step_size)
        for path, ok, value in runner.map(_convert_file, todo, args, "converting", progress):
            if not ok:
                result.failed[str(path)] = value
                continue
            done[value["name"]] = value
            order = {p.stem: i for i, p in enumerate(paths)}
            manifest["shards"] = sorted(done.values(), key=lambda s: (order.get(s["name"], len(order)), s["name"]))
            _write_manifest(out, manifest)
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


def class_labels(flags: dict[str, np.ndarray], config: DataConfig) -> np.ndarray:
    """Class index (int8) per jet from raw truth flags: the class whose flags sum to > 0, else -1.

    ``flags`` maps flag name → array; ``config.classes`` defines each class as a sum of flags. This is the
    one place where flags become classes (conversion, prediction and evaluation all go through it).
    """
    n = len(next(iter(flags.values())))
    label = np.full(n, -1, dtype=np.int8)
    for index, names in enumerate(config.classes.values()):
        total = np.zeros(n, dtype=np.int64)
        for name in names:
            total += np.asarray(flags[name]).astype(np.int64)
        label[(total > 0) & (label < 0)] = index
    return label


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
    for path, ok, value in runner.map(_file_statistics, paths, (cfg, step_size), "statistics", progress):
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
        causes = "; ".join(result.failed.values())
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
    return {
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
        "shards": [],
    }


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

    with _objects_before_frozen(), open_tree(path, cfg.tree, _all_branches(cfg)) as tree:  # opened once
        if tree.num_entries == 0:
            raise InputFileError(f"{path}: tree {cfg.tree!r} has no entries")
        stop = max(1, math.ceil(cfg.preprocessing.fraction * tree.num_entries))
        for arrays in _iterate(tree, path, cfg, inputs, step_size, entry_stop=stop):
            scalars = _scalars(arrays, cfg, input_scalars)
            label = class_labels(scalars, cfg)
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
                label = class_labels(scalars, cfg)
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
    n_jets = 0
    with _objects_before_frozen(), atomic_path(Path(shards_dir) / stem, directory=True) as tmp, \
            contextlib.ExitStack() as stack:
        writers = {g.name: stack.enter_context(_NpyAppender(tmp / f"{g.name}.npy", np.float32, g.shape))
                   for g in cfg.inputs}
        writers["label"] = stack.enter_context(_NpyAppender(tmp / "label.npy", np.int8, ()))
        writers["weight"] = stack.enter_context(_NpyAppender(tmp / "weight.npy", np.float32, ()))
        writers["spectators"] = stack.enter_context(
            _NpyAppender(tmp / "spectators.npy", np.float32, (len(cfg.spectators),)))
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
                weight = lookup_2d(pt, eta, label, tables["pt_edges"], tables["eta_edges"], tables["weights"])
            else:
                weight = np.ones(len(label), dtype=np.float32)
            out["weight"] = weight
            for name, writer in writers.items():
                writer.append(out[name])
            n_jets += len(weight)
        stack.close()  # headers written before the directory moves into place
    return {"name": stem, "source": str(path.resolve()), CHECKSUM: checksum, "n_jets": n_jets}


# --- chunk processing (shared by convert, iter_arrays and the statistics pass) ---------------------------

def _process_chunk(arrays, cfg, norm, path, resample=None):
    """One chunk → (dict of output arrays for kept jets, weighting pT, weighting η of kept jets).

    Kept jets: those in a class and passing the selection, then, with ``resample(pt, eta, label)`` given, the
    ones among them at the indices it returns (resampling before padding saves work on rejected jets).
    """
    from .kernels.padding import nth_largest, pad_sorted
    from .kernels.stats import standardise

    pre = cfg.preprocessing
    w = cfg.weighting
    excluded = np.asarray(pre.default_values, dtype=np.float64)
    scalars = _scalars(arrays, cfg)
    label = class_labels(scalars, cfg)
    jets = np.flatnonzero(_keep(scalars, cfg, label))
    if resample is not None:
        jets = jets[resample(scalars[w.pt_branch][jets], scalars[w.eta_branch][jets], label[jets])]
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
    out["label"] = label[jets]
    spectators = np.empty((len(jets), len(cfg.spectators)), dtype=np.float32)
    for i, name in enumerate(cfg.spectators):
        if name in DERIVED_SPECTATORS:
            branch, n = DERIVED_SPECTATORS[name]
            offsets, values = _jagged_values(arrays, (branch,), path=path)
            spectators[:, i] = nth_largest(offsets, values[0], n, DERIVED_DEFAULT)[jets]
        else:
            spectators[:, i] = scalars[name][jets]
    out["spectators"] = spectators
    return out, scalars[w.pt_branch][jets], scalars[w.eta_branch][jets]


def _scalars(arrays, cfg, names=None):
    names = cfg.scalar_branches() if names is None else names
    return {name: np.asarray(arrays[name]).astype(np.float32, copy=False) for name in names}


def _keep(scalars, cfg, label=None):
    label = class_labels(scalars, cfg) if label is None else label
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
    with open_tree(path, cfg.tree, branches) as tree:
        yield from _iterate(tree, path, cfg, branches, step_size, entry_stop)


def _iterate(tree, path, cfg, branches, step_size, entry_stop=None, entry_start=None):
    try:
        for arrays in tree.iterate(list(branches), step_size=step_size, entry_start=entry_start,
                                   entry_stop=entry_stop, library="ak", how=dict):
            yield arrays
    except (DeepJetError, GeneratorExit):
        raise
    except Exception as err:  # decompression / deserialisation errors of a truncated or corrupt file
        raise InputFileError(f"{path}: cannot read tree {cfg.tree!r} ({type(err).__name__}: {err})") from None


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


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_unchanged(record, path):
    """Whether ``path`` still has the checksum its shard record holds (sha256 in datasets written before
    xxh3_128 became the checksum; they resume too)."""
    if CHECKSUM in record:
        return record[CHECKSUM] == _checksum(path)
    if "sha256" in record:
        return record["sha256"] == _sha256(path)
    return False


# --- output ---------------------------------------------------------------------------------------------

class _NpyAppender:
    """A .npy file written chunk by chunk: fixed-size header rewritten with the final length on close.

    The result is a plain NPY 1.0 file (``numpy.load(path, mmap_mode="r")`` works), written without holding
    the whole array in memory.
    """

    HEADER_BYTES = 128  # 64-byte aligned like numpy's own headers; room for shapes up to ~10^20 jets

    def __init__(self, path, dtype, inner_shape):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.inner_shape = tuple(inner_shape)
        self.n = 0
        self.file = open(self.path, "wb")
        self.file.write(self._header())

    def append(self, array):
        array = np.ascontiguousarray(array, dtype=self.dtype)
        if array.shape[1:] != self.inner_shape:
            raise AssertionError(f"{self.path}: chunk shape {array.shape[1:]} != {self.inner_shape}")
        if array.size:
            self.file.write(memoryview(array.reshape(-1)).cast("B"))
        self.n += len(array)

    def close(self):
        if self.file.closed:
            return
        self.file.seek(0)
        self.file.write(self._header())
        self.file.close()

    def _header(self):
        shape = (self.n, *self.inner_shape)
        text = f"{{'descr': {self.dtype.str!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
        prefix = b"\x93NUMPY\x01\x00"
        body = text.ljust(self.HEADER_BYTES - len(prefix) - 2 - 1) + "\n"
        return prefix + len(body).to_bytes(2, "little") + body.encode("latin1")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _write_manifest(out, manifest):
    write_text_atomic(Path(out) / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def _existing_manifest(out, cfg, reconvert):
    """The manifest to resume from, or None to start afresh (after clearing a refused-or-reconvert one)."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        old_hash = manifest["config_hash"]
    except (ValueError, KeyError) as err:
        raise DatasetError(f"{path}: unreadable manifest ({err}); remove the directory to reconvert") from None
    if old_hash != cfg.hash and not reconvert:
        raise DatasetError(f"{out}: converted with another config ({manifest.get('config_name')!r}, hash "
                           f"{old_hash[:12]} != {cfg.hash[:12]}); pass reconvert=True (--reconvert) to redo it")
    if reconvert:
        shutil.rmtree(out / SHARDS, ignore_errors=True)
        path.unlink()
        return None
    return manifest


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


# --- execution: in process, local processes, or Dask ----------------------------------------------------

def _guarded(func, path, *args):
    """Run a worker; return (True, value) or (False, cause) so one bad file never stops the others."""
    try:
        return True, func(path, *args)
    except DeepJetError as err:
        return False, str(err)
    except Exception as err:
        return False, f"{path}: {type(err).__name__}: {err}"


class _Runner:
    """Maps a worker over files in this process (jobs=1), on local processes, or on a Dask cluster."""

    def __init__(self, jobs, scheduler, n_files):
        if jobs is not None and jobs < 1:
            raise ArgumentError(f"convert: jobs must be >= 1, got {jobs}")
        self.jobs = jobs or min(n_files, os.cpu_count() or 1)
        self.scheduler = scheduler
        self.pool = None
        self.client = None
        self.own_client = False

    def __enter__(self):
        if self.scheduler is not None:
            from distributed import Client

            if isinstance(self.scheduler, Client):
                self.client = self.scheduler
            else:
                try:
                    self.client = Client(self.scheduler, timeout="20s")
                except (OSError, TimeoutError) as err:
                    raise ArgumentError(f"convert: cannot reach Dask scheduler {self.scheduler!r}: {err}") from None
                self.own_client = True
        elif self.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: safe in notebooks and with numba/uproot threads (fork is not).
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.own_client:
            self.client.close()

    def map(self, func, paths, args, desc, progress):
        """Yield (path, ok, value) as files finish, with a tqdm.auto bar over files."""
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc=desc, unit="file", disable=not progress or not paths,
                   file=sys.stderr)
        try:
            for path, (ok, value) in self._results(func, paths, args):
                bar.update(1)
                if ok and isinstance(value, dict) and "n_jets" in value:
                    bar.set_postfix_str(f"{value['name']}: {value['n_jets']} jets")
                yield path, ok, value
        finally:
            bar.close()

    def _results(self, func, paths, args):
        if self.client is not None:
            from distributed import as_completed

            futures = {self.client.submit(_guarded, func, str(p), *args, pure=False): p for p in paths}
            for future in as_completed(futures):
                yield futures[future], future.result()
        elif self.pool is not None:
            from concurrent.futures import as_completed

            futures = {self.pool.submit(_guarded, func, str(p), *args): p for p in paths}
            for future in as_completed(futures):
                yield futures[future], future.result()
        else:
            for p in paths:
                yield p, _guarded(func, str(p), *args)


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
    n_jets = sum(s["n_jets"] for s in result.manifest.get("shards", []))
    print(f"{result.out}: {len(result.converted)} shard(s) converted, {len(result.skipped)} skipped, "
          f"{len(result.failed)} failed; {n_jets} jets in the dataset")
    for path, cause in result.failed.items():
        print(f"deepjet-nb convert: failed: {path}: {cause}", file=sys.stderr)
    return 0 if result.ok else 1
