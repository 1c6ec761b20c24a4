"""Conversion: ROOT ntuples + a data config → a converted dataset (docs/formats.md §2).

Two passes. The statistics pass reads the leading ``preprocessing.fraction`` of each file's jets for the
standardisation (mean/std per feature) and, for the per-class pT–η histograms, the flags, selection and
pT/η branches of all jets (each entry read once). The conversion pass then reads each file in chunks of
``step_size`` entries (so memory depends on the chunk size, not the file size), resamples before padding,
and streams one shard per input file, named after the file's stem, into a temporary directory that is
moved into place once complete. The manifest is rewritten (atomically) after every finished shard, so an
interrupted run resumes where it stopped. The manifest records the xxh3_128 checksum of every input (when
its statistics were computed) and of every shard array (as written): a rerun redoes a shard whose bytes
differ and refuses an input whose bytes changed (its statistics would be stale; ``reconvert`` recomputes
them; docs/integrity.md). Each chunk goes through :mod:`deepjet_nb.jets`, the jet transform that prediction, the
deployed model and the server share.

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
import math
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._args import integer, number
from ._atomic import check_output, remove_stale, sha256_file
from ._lock import output_lock
from ._seeding import named_rng
from .dataset import ARRAY_CHECKSUMS, FORMAT_VERSION, MANIFEST, SHARDS, SOURCE_CHECKSUMS, Manifest, ShardWriter
from .dataset import file_checksum
from .errors import ArgumentError, DatasetError, one_line
from .flavours import class_labels
from .jets import (DEFAULT_STEP_SIZE, all_branches, as_config, iterate_tree, jagged_values, keep_mask,
                   normalisation_arrays, read_chunks, scalar_arrays, transform_chunk)
# Re-exported: code written against deepjet_nb.convert imports the public names of the jet transform from here.
from .jets import convert_jets, derived_spectator, input_branches, iter_arrays
from .parallel import Runner
from .rootio import input_files, input_path, open_tree

__all__ = ["convert", "ConversionResult", "weight_tables", "keep_probabilities", "register_cli", "DEFAULT_STEP_SIZE",
           "iter_arrays", "convert_jets", "input_branches", "derived_spectator"]

CHECKSUM = "xxh3_128"  # shard record key of the source checksum (dataset.file_checksum)


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

    Inputs: ``inputs`` ROOT files (distinct stems): paths, glob patterns, ``root://`` or fsspec URLs;
    ``config`` a shipped name, a YAML path, a dict or a :class:`DataConfig`; ``jobs`` local worker processes
    (default: one per file up to the CPU count; 1 runs in this process); ``scheduler`` a Dask scheduler
    address (or a ``distributed.Client``) to run on a cluster instead; ``fraction`` overrides ``preprocessing.fraction``; ``step_size`` entries per chunk;
    ``reconvert`` discards an existing dataset made with another config (or redoes an identical one).

    Output: a :class:`ConversionResult`. Finished shards of an earlier run with the same config whose files
    match the manifest, content checksums included, are skipped (a shard whose files do not match is redone
    and listed in ``result.redone``). Files that fail are listed in ``result.failed`` (file → cause) and leave
    no shard behind. ``out`` is locked while the conversion runs. Raises :class:`DatasetError` when ``out``
    holds a dataset converted with another config or from another list of inputs (a file not among those
    of its statistics, or a stem converted from another path), or from an input whose bytes changed since
    (unless ``reconvert``), or when no file could be read; :class:`ArgumentError` for bad arguments or an
    unwritable ``out``; :class:`LockedError` when another conversion writes into ``out``.
    """
    cfg = as_config(config)
    if fraction is not None:
        cfg = cfg.with_fraction(number(fraction, "fraction", "convert"))
    paths = input_files(inputs, "convert")
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
        _refuse_changed_sources(manifest, paths, out)
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
            if record and (out / SHARDS / path.stem).is_dir():
                problem = manifest.shard_problem(out, record, content=True)
                if problem is None:
                    result.skipped.append(path.stem)
                    continue
                result.redone[path.stem] = problem
            todo.append(path)
        tables = _weight_tables_from_manifest(manifest, cfg)
        args = (str(out / SHARDS), cfg, manifest.normalisation, tables, step_size)
        for path, ok, value in runner.map(_convert_file, todo, args, desc="converting", progress=progress,
                                          postfix=lambda r: f"{r['name']}: {r['n_jets']} jets"):
            if ok and value[CHECKSUM] != manifest.source_checksums.get(value["source"], value[CHECKSUM]):
                shutil.rmtree(out / SHARDS / value["name"], ignore_errors=True)
                ok, value = False, ("changed while the dataset was converted (its statistics come from the "
                                    "earlier content); rerun the conversion with reconvert=True (--reconvert)")
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
        # their content then: a rerun refuses an input that changed since (see _refuse_changed_sources)
        SOURCE_CHECKSUMS: {str(p.resolve()): finished[p]["checksum"] for p in paths if p in finished},
        "shards": [],
    })


def _file_statistics(path, cfg, step_size):
    """Worker: moments per input group on the leading fraction of jets, pT–η histograms on all jets.

    One read of each entry: the leading fraction with the input branches (moments and histograms together),
    the rest with only what the histograms need (flags, selection, pT, η: a small share of the file's bytes).
    """
    from .kernels.stats import feature_moments, merge_moments
    from .kernels.weights import histogram_2d

    path = input_path(path)
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

    with _objects_before_frozen(), open_tree(path, cfg.tree, all_branches(cfg), cfg.ntuple) as tree:  # opened once
        checksum = file_checksum(path)  # once the file opened: a missing or unreadable one is named by open_tree
        if tree.num_entries == 0:  # an input without jets gives a 0-row shard (docs/formats.md §2)
            return {"moments": moments, "histogram": hist, "n_selected": 0, "checksum": checksum}
        stop = max(1, math.ceil(cfg.preprocessing.fraction * tree.num_entries))
        for arrays in iterate_tree(tree, path, cfg, inputs, step_size, entry_stop=stop):
            scalars = scalar_arrays(arrays, cfg, input_scalars)
            label = class_labels(scalars, cfg.classes)
            keep = keep_mask(scalars, cfg, label)
            count(scalars, label, keep)
            for g in cfg.inputs:
                if g.jagged:
                    offsets, values = jagged_values(arrays, g.branches, path)
                    values = values[:, np.repeat(keep, np.diff(offsets))]
                else:
                    values = np.stack([scalars[b] for b in g.branches])[:, keep]
                m = feature_moments(values, excluded)
                moments[g.name] = m if g.name not in moments else merge_moments(*moments[g.name], *m)
        if stop < tree.num_entries:
            for arrays in iterate_tree(tree, path, cfg, needed, step_size, entry_start=stop):
                scalars = scalar_arrays(arrays, cfg, needed)
                label = class_labels(scalars, cfg.classes)
                count(scalars, label, keep_mask(scalars, cfg, label))
    return {"moments": moments, "histogram": hist, "n_selected": n_selected, "checksum": checksum}


def _convert_file(path, shards_dir, cfg, normalisation, tables, step_size):
    """Worker: convert one file into ``shards_dir/<stem>/`` atomically; returns its manifest record."""
    from .kernels.weights import lookup_2d, resample_indices

    path = input_path(path)
    stem = path.stem
    checksum = file_checksum(path)
    norm = normalisation_arrays(cfg, normalisation)
    w = cfg.weighting
    # Seeded per file (not per worker) so local processes and Dask give the same bytes.
    rng = named_rng(w.seed, stem)
    groups = {g.name: g.shape for g in cfg.inputs}
    with _objects_before_frozen(), ShardWriter(shards_dir, stem, groups, len(cfg.spectators)) as shard:
        resample = None
        if w.mode != "none" and tables is not None and w.apply == "resample":
            def resample(pt, eta, label):
                p = lookup_2d(pt, eta, label, tables["pt_edges"], tables["eta_edges"], tables["keep"])
                return resample_indices(p, rng.random(len(p)))
        for arrays in read_chunks(path, cfg, all_branches(cfg), step_size):
            # Resampled before padding: rejected jets cost no padding and no copy.
            out, pt, eta = transform_chunk(arrays, cfg, norm, path, resample)
            label = out["label"]
            if w.mode != "none" and tables is not None and w.apply == "weight":
                out["weight"] = lookup_2d(pt, eta, label, tables["pt_edges"], tables["eta_edges"], tables["weights"])
            else:
                out["weight"] = np.ones(len(label), dtype=np.float32)
            shard.append(out)
    n_jets = shard.n_jets
    return {"name": stem, "source": str(path.resolve()), CHECKSUM: checksum, "n_jets": n_jets,
            ARRAY_CHECKSUMS: shard.checksums}


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


def _source_unchanged(record, path):
    """Whether ``path`` still has the checksum its shard record holds (sha256 in datasets written before
    xxh3_128 became the checksum)."""
    if CHECKSUM in record:
        return record[CHECKSUM] == file_checksum(path)
    if "sha256" in record:
        return record["sha256"] == sha256_file(path)
    return True  # nothing recorded to compare with


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


def _refuse_changed_sources(manifest, paths, out):
    """Refuse a rerun with an input whose bytes changed since the statistics were computed from it: its jets
    would be standardised and weighted with the old content's statistics, which a fresh conversion would not
    do. Compared with the statistics' checksums, or (older manifests) with the shard record's."""
    expected = manifest.source_checksums
    records = {s["name"]: s for s in manifest.shards}
    for path in paths:
        source = str(path.resolve())
        if source in expected:
            changed = file_checksum(path) != expected[source]
        else:
            changed = path.stem in records and not _source_unchanged(records[path.stem], path)
        if changed:
            raise DatasetError(f"{out}: {path} changed since the dataset's statistics (normalisation and weights) "
                               f"were computed from it; pass reconvert=True (--reconvert) to recompute them and "
                               f"convert every input again, or write into another directory", path=path)


def _check_stems(paths):
    seen = {}
    for p in paths:
        if not p.stem or p.stem.startswith("."):  # "..root" has the stem ".": its shard would be shards/ itself
            raise ArgumentError(f"convert: {p}: a stem starting with '.' cannot name a shard (rename the file)")
        if p.stem in seen:
            raise ArgumentError(f"convert: {seen[p.stem]} and {p} have the same stem {p.stem!r}; "
                                "shards are named after it")
        seen[p.stem] = p


# --- command line ---------------------------------------------------------------------------------------

def register_cli(subparsers):
    """Add ``deepjet-nb convert``."""
    p = subparsers.add_parser(
        "convert", help="convert ROOT ntuples into a training dataset (shards + manifest)",
        description="Convert ROOT ntuples into a dataset directory: a statistics pass, then one shard per "
                    "input file (resumable; parallel over files). Exit code 1 if any file failed.")
    p.add_argument("files", nargs="+", metavar="FILES", help="input ROOT files (distinct stems): paths, glob patterns, root:// or fsspec URLs")
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
