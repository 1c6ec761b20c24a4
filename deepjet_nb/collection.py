"""Entries that are events: one row per object of a collection (NanoAOD style: ``nJet``, ``Jet_pt[nJet]``).

A data config with ``collection: nJet`` (its counter, or any per-object branch) reads events and converts each
object of the collection as one row, exactly as a file with one entry per object would be converted:

- a branch with one value per event (``PV_npvs``, ``event``) is given to each object of the event;
- a branch with one value per object (``Jet_pt``) is that object's value; its length must be the
  collection's in every event (the first event that breaks it is named);
- an object list (a padded input group) is attached to the objects through its ``link``: a parent index per
  list element (``link: PFCands_jetIdx``: the index of its object in the collection, -1 for none), or a pair
  table (``link: [JetPFCands_jetIdx, JetPFCands_pFCandsIdx]``: one entry per (object, element) pair, NanoAOD's
  pattern); an element may belong to several objects through a pair table;
- :data:`~deepjet_nb.schema.ENTRY` (the event's entry number in the file) and
  :data:`~deepjet_nb.schema.OBJECT_INDEX` (the object's index in its collection) are added, so predictions
  can be joined back to the events.

>>> import awkward as ak, numpy as np
>>> events = {"nJet": np.array([2, 1]), "Jet_pt": ak.Array([[50.0, 30.0], [40.0]]), "npv": np.array([7, 9]),
...           "PF_pt": ak.Array([[1.0, 2.0, 3.0], [4.0]]), "PF_jetIdx": ak.Array([[1, 0, -1], [0]])}
>>> rows = explode(events, "nJet", {("PF_jetIdx",): ("PF_pt",)})
>>> rows["Jet_pt"].tolist(), rows["npv"].tolist(), rows["PF_pt"].tolist(), rows["object_index"].tolist()
([50.0, 30.0, 40.0], [7, 7, 9], [[2.0], [1.0], [4.0]], [0, 1, 0])
"""

from __future__ import annotations

import numpy as np

from .errors import InputFileError
from .schema import ENTRY, OBJECT_INDEX

__all__ = ["explode", "links"]


def links(cfg) -> dict[tuple[str, ...], tuple[str, ...]]:
    """{link branches: the jagged branches they attach} of a config's padded input groups (sort keys too)."""
    out: dict[tuple[str, ...], list[str]] = {}
    for g in cfg.inputs:
        if g.jagged and g.link:
            members = out.setdefault(tuple(g.link), [])
            members += [b for b in (*g.branches, *((g.sort_by,) if g.sort_by else ())) if b not in members]
    return {link: tuple(members) for link, members in out.items()}


def explode(arrays: dict, collection: str, linked: dict, *, path="<arrays>", entry_start: int = 0) -> dict:
    """One chunk of events (branch → awkward or numpy array, one entry per event) as one row per object of
    ``collection``: branch → numpy array (one value per object) or awkward list array (an object list), plus
    ``entry`` and ``object_index``. ``linked`` is :func:`links` of the config: which branches each link
    attaches. Raises :class:`InputFileError` naming ``path``, the branch and the first event (by entry number,
    from ``entry_start``) whose lengths or indices do not fit."""
    counts = _counts(arrays, collection, path, entry_start)
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    event = np.repeat(np.arange(len(counts)), counts)
    rows = {ENTRY: event + entry_start, OBJECT_INDEX: np.arange(starts[-1]) - starts[event]}
    attached = {b for link, members in linked.items() for b in (*link, *members)}
    for name, values in arrays.items():
        if name not in attached:
            rows[name] = _per_object(values, name, counts, collection, path, entry_start)
    for link, members in linked.items():
        present = tuple(m for m in members if m in arrays)  # a pass may read some of a list's branches
        if present:
            rows.update(_attach(arrays, link, present, counts, starts, path, entry_start))
    return rows


def _counts(arrays, collection, path, entry_start) -> np.ndarray:
    """Objects per event: the counter's values, or the lengths of a per-object branch."""
    values = arrays[collection]
    if _ndim(values) == 1:
        counts = np.asarray(values).astype(np.int64)
        if np.any(counts < 0):
            first = int(np.flatnonzero(counts < 0)[0])
            raise InputFileError(f"{path}: collection counter {collection!r} is negative in entry "
                                 f"{entry_start + first}", path=path, key=collection)
        return counts
    return _offsets(values)[1]


def _per_object(values, name, counts, collection, path, entry_start):
    if _ndim(values) == 1:  # one value per event: each object of the event has it
        return np.repeat(np.asarray(values), counts)
    offsets, lengths, content = _flat(values)
    if not np.array_equal(lengths, counts):
        first = int(np.flatnonzero(lengths != counts)[0])
        raise InputFileError(f"{path}: branch {name!r} has {lengths[first]} values in entry {entry_start + first} "
                             f"and the collection {collection!r} {counts[first]} objects: a branch of the "
                             "collection holds one value per object (an object list needs a link)",
                             path=path, key=name)
    return content


def _attach(arrays, link, members, counts, starts, path, entry_start) -> dict:
    """The ``members`` (jagged per event) regrouped per object through ``link``: a parent index per element, or
    a pair table (object index, element index)."""
    import awkward as ak

    member_offsets, member_lengths, _ = _flat(arrays[members[0]])
    if len(link) == 1:
        _, link_lengths, parent = _flat(arrays[link[0]])
        _same_lengths(link[0], link_lengths, members[0], member_lengths, path, entry_start)
        event = np.repeat(np.arange(len(counts)), link_lengths)
        parent = parent.astype(np.int64)
        element = np.arange(len(parent))
    else:
        _, pair_lengths, parent = _flat(arrays[link[0]])
        _, other_lengths, element = _flat(arrays[link[1]])
        _same_lengths(link[1], other_lengths, link[0], pair_lengths, path, entry_start)
        event = np.repeat(np.arange(len(counts)), pair_lengths)
        parent, element = parent.astype(np.int64), element.astype(np.int64)
        _check_range(element, member_lengths[event], event, link[1], f"elements of {members[0]!r}", path, entry_start)
        element = member_offsets[event] + element
    keep = parent >= 0  # -1: an element of no object
    _check_range(parent[keep], counts[event[keep]], event[keep], link[0], "objects of the collection", path,
                 entry_start)
    row = starts[event[keep]] + parent[keep]
    order = np.argsort(row, kind="stable")
    offsets = np.zeros(starts[-1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=starts[-1]), out=offsets[1:])
    taken = element[keep][order]
    out = {}
    for name in members:
        _, lengths, content = _flat(arrays[name])
        _same_lengths(name, lengths, members[0], member_lengths, path, entry_start)
        layout = ak.contents.ListOffsetArray(ak.index.Index64(offsets), ak.contents.NumpyArray(content[taken]))
        out[name] = ak.Array(layout)
    return out


def _check_range(index, size, event, name, what, path, entry_start):
    bad = (index < 0) | (index >= size)
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise InputFileError(f"{path}: branch {name!r} holds index {index[first]} in entry "
                             f"{entry_start + int(event[first])}, which has {size[first]} {what}", path=path,
                             key=name)


def _same_lengths(name, lengths, other, other_lengths, path, entry_start):
    if not np.array_equal(lengths, other_lengths):
        first = int(np.flatnonzero(lengths != other_lengths)[0])
        raise InputFileError(f"{path}: branch {name!r} has {lengths[first]} values in entry {entry_start + first}, "
                             f"{other!r} has {other_lengths[first]}: they are one list", path=path, key=name)


def _flat(values):
    """(offsets int64 from 0, lengths, content numpy) of an awkward list array."""
    import awkward as ak

    offsets, lengths = _offsets(values)
    return offsets, lengths, ak.to_numpy(ak.flatten(values, axis=1))


def _offsets(values):
    import awkward as ak

    lengths = np.asarray(ak.num(values, axis=1), dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, lengths


def _ndim(values) -> int:
    return values.ndim if hasattr(values, "ndim") else np.ndim(values)
