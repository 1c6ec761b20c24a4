"""The per-chunk jet transform: ROOT ntuple chunks, or jets held in memory, → the arrays a network takes.

This is the one code path that conversion (:mod:`deepjet_nb.convert`, the dataset job around it), prediction
(:mod:`deepjet_nb.predict`), the deployed :class:`~deepjet_nb.predictor.Predictor`, the equivalence check of an
export and the model server share, so a jet gives the same numbers wherever it goes::

    read a chunk of step_size entries (read_chunks)
      → class labels and the data config's selection (keep_mask)
      → input groups: object lists sorted, truncated and padded; features standardised (transform_chunk)
      → spectators, derived ones included (derived_spectator)

Example::

    >>> from deepjet_nb.jets import iter_arrays
    >>> chunk = next(iter_arrays("ttbar.root", "deepjet"))          # doctest: +SKIP
    >>> chunk["cpf"].shape, chunk["label"].shape                     # doctest: +SKIP
    ((1523, 25, 16), (1523,))

Importing this module is cheap: uproot, awkward and the numba kernels load on first use.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .config import DERIVED_DEFAULT, DERIVED_SPECTATORS, DataConfig, config_from_dict, evaluate_selection
from .config import load_config
from .errors import DatasetError, DeepJetError, InputFileError
from .flavours import class_labels
from .collection import explode, links
from .rootio import cause, input_path, open_tree

__all__ = ["DEFAULT_STEP_SIZE", "iter_arrays", "convert_jets", "input_branches", "derived_spectator",
           "transform_chunk", "read_chunks", "iterate_tree", "all_branches", "scalar_arrays", "keep_mask",
           "jagged_values", "normalisation_arrays", "as_config"]

DEFAULT_STEP_SIZE = 50_000  # entries per chunk: ~100 MB of DeepJet branches, fast and bounded


# --- jets of a file, jets in memory ---------------------------------------------------------------------

def iter_arrays(path, config, normalisation: dict | None = None, *,
                step_size: int = DEFAULT_STEP_SIZE) -> Iterator[dict[str, np.ndarray]]:
    """Convert one ROOT file in memory, chunk by chunk, without resampling or weighting (for test data).

    Inputs: ``path`` a ROOT ntuple; ``config`` a shipped name, YAML path, dict (e.g. a manifest's
    ``"config"``) or :class:`DataConfig`; ``normalisation`` a manifest's ``"normalisation"`` (group → feature
    → {"mean", "std"}), or None for raw values (NaN/inf/defaults still replaced, nothing clipped);
    ``step_size`` entries per chunk.

    Yields, per chunk, a dict: one float32 array per input group (``(n, *shape)``, in config order),
    ``"label"`` int8 class index, ``"spectators"`` float32 ``(n, n_spectators)`` in ``config.spectators``
    order. Jets in no class (isUndefined) or failing the selection are dropped, exactly as in
    :func:`deepjet_nb.convert.convert`.
    Raises :class:`InputFileError` (file, tree or branch at fault), :class:`DatasetError` when the
    normalisation lacks a feature.
    """
    cfg = as_config(config)
    norm = normalisation_arrays(cfg, normalisation)
    for arrays in read_chunks(input_path(path), cfg, all_branches(cfg), step_size):
        out, _, _ = transform_chunk(arrays, cfg, norm, path)
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
    cfg = as_config(config)
    norm = normalisation_arrays(cfg, normalisation)
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
    cfg = as_config(config)
    scalars, jagged = [], []
    for g in cfg.inputs:
        (jagged if g.jagged else scalars).extend(g.branches)
        if g.jagged and g.sort_by:
            jagged.append(g.sort_by)
    return tuple(dict.fromkeys(scalars)), tuple(dict.fromkeys(jagged))


def derived_spectator(name: str, arrays, path="<arrays>") -> np.ndarray:
    """A derived spectator of every jet in ``arrays`` (branch → awkward array, e.g. ``tree.arrays()``).

    ``name`` is a key of :data:`deepjet_nb.config.DERIVED_SPECTATORS`, e.g. ``trackCounting_sip3dSig2``, the
    track-counting b tagger: the second-highest 3D impact-parameter significance among the jet's selected
    tracks, -10 for jets with fewer than two. Returns float32 (n_jets,).
    """
    from .kernels.padding import nth_largest

    branch, n = DERIVED_SPECTATORS[name]
    offsets, values = jagged_values(arrays, (branch,), path=path)
    return nth_largest(offsets, values[0], n, DERIVED_DEFAULT)


# --- the transform of one chunk (shared by files, jets in memory and the conversion's passes) -------------

def transform_chunk(arrays, cfg, norm, path, resample=None):
    """One chunk (branch → awkward array, from :func:`read_chunks`) → (dict of output arrays for kept jets,
    weighting pT, weighting η of kept jets); ``norm`` is :func:`normalisation_arrays` of the config.

    Kept jets: those in a class and passing the selection, then, with ``resample(pt, eta, label)`` given, the
    ones among them at the indices it returns (resampling before padding saves work on rejected jets).
    """
    w = cfg.weighting
    scalars = scalar_arrays(arrays, cfg)
    label = class_labels(scalars, cfg.classes)
    jets = np.flatnonzero(keep_mask(scalars, cfg, label))
    if resample is not None:
        jets = jets[resample(scalars[w.pt_branch][jets], scalars[w.eta_branch][jets], label[jets])]
    out = _input_groups(arrays, scalars, cfg, norm, jets, path)
    out["label"] = label[jets]
    spectators = np.empty((len(jets), len(cfg.spectators)), dtype=np.float32)
    for i, name in enumerate(cfg.spectators):
        if name in DERIVED_SPECTATORS:
            spectators[:, i] = derived_spectator(name, arrays, path)[jets]
        else:  # the entry and object index of objects of events are made by reading, not scalars of the file
            spectators[:, i] = (scalars[name] if name in scalars else np.asarray(arrays[name]))[jets]
    out["spectators"] = spectators
    return out, scalars[w.pt_branch][jets], scalars[w.eta_branch][jets]


def scalar_arrays(arrays, cfg, names=None):
    """branch → float32 numpy array (one number per entry) of the scalar branches ``names`` (default: all the
    config's scalar branches) of a chunk."""
    names = cfg.scalar_branches() if names is None else names
    return {name: np.asarray(arrays[name]).astype(np.float32, copy=False) for name in names}


def keep_mask(scalars, cfg, label=None):
    """Boolean mask of the entries that are in a class (``label`` >= 0, computed when not given) and pass the
    config's selection: the entries that conversion and prediction keep."""
    label = class_labels(scalars, cfg.classes) if label is None else label
    keep = label >= 0
    if cfg.selection:
        keep &= evaluate_selection(cfg.selection, scalars, cfg.source)
    return keep


def jagged_values(arrays, branches, path):
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
            raise InputFileError(_length_mismatch(path, name, offs, branches[0], offsets), path=path, key=name)
        rows.append(content.astype(np.float32, copy=False))
    return offsets, np.stack(rows)


def _length_mismatch(path, name, offsets, first, first_offsets) -> str:
    """Where two branches of one object list first differ in length: the entry (of the chunk) and both
    lengths; the branches of an object list hold one value per object."""
    lengths, first_lengths = np.diff(offsets), np.diff(first_offsets)
    if len(lengths) != len(first_lengths):
        return f"{path}: branch {name!r} has {len(lengths)} entries, {first!r} has {len(first_lengths)}"
    entry = int(np.flatnonzero(lengths != first_lengths)[0])
    return (f"{path}: branch {name!r} has other list lengths than {first!r} (one object list: one value per "
            f"object): {lengths[entry]} against {first_lengths[entry]} in entry {entry} of the chunk")


def normalisation_arrays(cfg, normalisation):
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


# --- reading --------------------------------------------------------------------------------------------

def all_branches(cfg):
    """Every branch the conversion of ``cfg`` reads: scalar branches, then jagged ones."""
    return cfg.scalar_branches() + cfg.jagged_branches()


def read_chunks(path, cfg, branches, step_size, entry_stop=None):
    """Chunks (dict branch → awkward array) of ``step_size`` entries; read errors name the file."""
    with open_tree(path, cfg.tree, branches, cfg.ntuple) as tree:
        yield from iterate_tree(tree, path, cfg, branches, step_size, entry_stop)


def iterate_tree(tree, path, cfg, branches, step_size, entry_stop=None, entry_start=None):
    """Chunks of an opened ``tree`` (see :func:`read_chunks`) between ``entry_start`` and ``entry_stop``; a
    read error becomes an :class:`InputFileError` naming ``path`` and the tree."""
    collection = cfg.ntuple.collection
    if collection:  # entries are events: read what attaches the objects too, then one row per object
        linked = links(cfg)
        branches = [b for b in branches if b not in cfg.ntuple.generated]
        branches = list(dict.fromkeys([*branches, collection, *(b for link in linked for b in link)]))
    try:
        for arrays, report in tree.iterate(list(branches), step_size=step_size, entry_start=entry_start,
                                           entry_stop=entry_stop, library="ak", how=dict, report=True):
            if collection:
                arrays = explode(arrays, collection, linked, path=path, entry_start=report.tree_entry_start)
            yield arrays
    except (DeepJetError, GeneratorExit):
        raise
    except Exception as err:  # decompression / deserialisation errors of a truncated or corrupt file
        raise InputFileError(f"{path}: cannot read tree {cfg.tree!r} ({cause(err, path)})") from None


def as_config(config) -> DataConfig:
    """A :class:`DataConfig` from a shipped name, a YAML path, a dict (a manifest's ``"config"``) or a config."""
    if isinstance(config, DataConfig):
        return config
    if isinstance(config, dict):
        return config_from_dict(config, source="<manifest config>")
    return load_config(config)


# --- private ----------------------------------------------------------------------------------------------

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
            offsets, values = jagged_values(arrays, g.branches, path=path)
            if g.sort_by is None:
                key = np.empty(0, dtype=np.float32)
            elif g.sort_by in g.branches:
                key = values[g.branches.index(g.sort_by)]
            else:
                key = jagged_values(arrays, (g.sort_by,), path=path)[1][0]
            out[g.name] = pad_sorted(offsets, values, key, jets, g.max_length, g.descending,
                                     np.float32(g.pad_value), mean, std, excluded, pre.replace_with, clip)
        else:
            values = np.stack([scalars[b][jets] for b in g.branches])
            out[g.name] = np.ascontiguousarray(standardise(values, mean, std, excluded, pre.replace_with, clip).T)
    return out


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
