"""What is in a ROOT file, and a starter data config for it: from an unknown ntuple to a config in one step.

:func:`inspect` opens a local file or a URL (``root://``, any fsspec URL) and reports its trees and entries, the
branches of one tree with their types, and the object lists it infers: jagged branches that share a counter
branch (``nJet`` for ``Jet_pt[nJet]``, ``npart`` for uproot's ``part_*``), or, without a counter (an RNTuple,
``std::vector`` branches), a common name prefix and equal lengths in the first entries. Its
:attr:`Inspection.starter_config` is a ``schema: custom`` data config (:mod:`deepjet_nb.config`) naming those
branches, with guesses for the classes, truth and pT/η branches to check before converting.

Example::

    >>> from deepjet_nb.inspect import inspect                           # doctest: +SKIP
    >>> info = inspect("root://eosuser.cern.ch//eos/user/me/ntuple.root")  # doctest: +SKIP
    >>> print(info.summary()); print(info.starter_yaml())               # doctest: +SKIP

``deepjet-nb inspect FILE_OR_URL`` prints the same. Errors are :class:`~deepjet_nb.errors.InputFileError`
naming the file and the tree (with the trees that are there).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from . import rootio

__all__ = ["inspect", "Inspection", "Branch", "ObjectListInfo"]

# Entries read to infer list lengths and counters: enough for a stable percentile, cheap over a network.
SAMPLE_ENTRIES = 10_000
# max_length of a starter config: this percentile of the list lengths (weaver pads to about this).
LENGTH_PERCENTILE = 95
# Branch names that hold generator-level truth (never network inputs): flags, labels, flavours, gen-level.
_TRUTH = re.compile(r"^(is[A-Z]|label)|(^|_)(gen|truth)|[Ff]lav(our|or)?($|_)|hflav|pflav", re.ASCII)
_FLAVOUR = re.compile(r"hadron_?[Ff]lav(our|or)?$|hflav$", re.ASCII)
_PT = re.compile(r"(^|_)pt$", re.IGNORECASE)
_ETA = re.compile(r"(^|_)eta$", re.IGNORECASE)


@dataclass(frozen=True)
class Branch:
    """One branch (TTree) or field (RNTuple): ``type`` as ROOT names it, ``jagged`` a list per entry,
    ``dtype`` the numpy type of its numbers (None when it does not hold numbers), ``counter`` its counter
    branch (TTree leaf-count branches; None otherwise)."""

    name: str
    type: str
    jagged: bool
    dtype: str | None
    counter: str | None = None


@dataclass(frozen=True)
class ObjectListInfo:
    """Jagged branches of equal length per entry: one kind of object (``counter`` None when inferred from the
    name prefix); ``mean_length``/``max_length``/``p95_length`` over the first entries."""

    name: str
    counter: str | None
    branches: tuple[str, ...]
    mean_length: float
    p95_length: int
    max_length: int


@dataclass
class Inspection:
    """What :func:`inspect` found in ``path`` (see the module docstring)."""

    path: str
    trees: dict[str, int]
    tree: str
    branches: list[Branch]
    object_lists: list[ObjectListInfo]
    starter_config: dict = field(repr=False, default_factory=dict)

    @property
    def entries(self) -> int:
        return self.trees[self.tree]

    def summary(self) -> str:
        """A readable report: trees, branches with types, inferred object lists."""
        lines = [f"{self.path}"]
        lines += [f"  tree {name!r}: {entries} entries" for name, entries in self.trees.items()]
        lines.append(f"branches of {self.tree!r} ({len(self.branches)}):")
        width = max((len(b.name) for b in self.branches), default=0)
        for b in self.branches:
            kind = f"list per entry, counter {b.counter}" if b.jagged and b.counter else (
                "list per entry" if b.jagged else "one per entry")
            lines.append(f"  {b.name:<{width}}  {b.type:<12} {kind}")
        lines.append(f"object lists ({len(self.object_lists)}):")
        for o in self.object_lists:
            counter = f"counter {o.counter}" if o.counter else "same lengths, no counter branch"
            lines.append(f"  {o.name}: {len(o.branches)} branches, {counter}; length mean {o.mean_length:.1f}, "
                         f"95% {o.p95_length}, max {o.max_length}")
        return "\n".join(lines)

    def starter_yaml(self) -> str:
        """:attr:`starter_config` as YAML, to save and edit (``deepjet-nb inspect --config-out``)."""
        import yaml

        class _Dumper(yaml.SafeDumper):
            pass

        def flow_lists(dumper, value):  # branch lists on one line each, as in the shipped configs
            return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)

        _Dumper.add_representer(list, flow_lists)
        header = ("# Starter data config written by deepjet-nb inspect: check the classes, truth and inputs\n"
                  "# (docs/your_own_ntuples.md), then: deepjet-nb convert FILES --config THIS.yaml --out DIR\n")
        return header + yaml.dump(self.starter_config, Dumper=_Dumper, sort_keys=False, width=110)

    def _repr_markdown_(self):  # a notebook shows the report
        return f"```\n{self.summary()}\n```"


def inspect(path, tree: str | None = None) -> Inspection:
    """Inspect the ROOT file at ``path`` (a local path or a URL): its trees, the branches of ``tree`` (default:
    the tree with the most entries), the object lists they form, and a starter data config.

    Raises :class:`~deepjet_nb.errors.InputFileError` naming the file when it cannot be opened, has no tree,
    or lacks ``tree`` (listing the trees it has).
    """
    from .errors import InputFileError

    path = rootio.input_path(path)
    with rootio._open_file(path) as file:
        counts = {name: int(file[name].num_entries) for name in rootio.trees(file)}
        if not counts:
            raise InputFileError(f"{path}: no TTree or RNTuple in the file", path=path)
        name = tree or max(counts, key=counts.get)
        handle = rootio._tree(file, path, name)
        branches = [_branch(handle, key) for key in handle.keys() if _is_leaf(handle, key)]
        lists = _object_lists(handle, branches)
    info = Inspection(path=str(path), trees=counts, tree=name, branches=branches, object_lists=lists)
    info.starter_config = starter_config(info)
    return info


def starter_config(info: Inspection) -> dict:
    """A ``schema: custom`` data config for the tree of ``info``: every numeric scalar that is not truth in one
    scalar group, each object list in a padded group, truth-looking branches under ``truth``, classes from the
    flavour or flag branches when there are some."""
    listed = {b for o in info.object_lists for b in o.branches}
    numeric = [b for b in info.branches if b.dtype is not None]
    counters = {o.counter for o in info.object_lists}
    scalars = [b.name for b in numeric if not b.jagged and b.name not in counters]
    truth = [n for n in scalars if _TRUTH.search(n)]
    inputs = {"global": {"branches": [n for n in scalars if n not in truth]}} if len(truth) < len(scalars) else {}
    for o in info.object_lists:
        branches = [b for b in o.branches if b in listed and not _TRUTH.search(b)]
        if branches:
            inputs[_group_name(o.name, inputs)] = {
                "branches": branches, "max_length": max(1, o.p95_length),
                "sort_by": next((b for b in branches if _PT.search(b)), branches[0]), "descending": True}
    classes, class_truth = _guess_classes(info, scalars, truth)
    config = {"name": _identifier(info.tree), "schema": "custom", "tree": info.tree, "classes": classes,
              "inputs": inputs or {"global": {"branches": ["REPLACE_WITH_INPUT_BRANCHES"]}}}
    other_truth = [n for n in truth if n not in class_truth]
    if other_truth:
        config["truth"] = other_truth
    pt = next((n for n in scalars if _PT.search(n)), None)
    eta = next((n for n in scalars if _ETA.search(n)), None)
    if pt and eta:
        config["weighting"] = {"mode": "none", "pt_branch": pt, "eta_branch": eta}
    return config


# --- branches and object lists -------------------------------------------------------------------------

def _is_leaf(tree, key) -> bool:
    """A branch that holds data itself (not a TTree branch that only groups sub-branches)."""
    branch = tree[key]
    return not getattr(branch, "branches", None)


def _branch(tree, key) -> Branch:
    branch = tree[key]
    layout = rootio._layout(branch)
    counter = getattr(branch, "count_branch", None)
    typename = getattr(branch, "typename", None) or (f"{layout[1]}{'[]' if layout[0] else ''}" if layout else "?")
    return Branch(name=key, type=str(typename), jagged=bool(layout and layout[0]),
                  dtype=None if layout is None else str(layout[1]),
                  counter=None if counter is None else counter.name)


def _object_lists(tree, branches) -> list[ObjectListInfo]:
    """Jagged numeric branches grouped by counter branch, or else by name prefix and equal first lengths."""
    groups: dict[tuple, list[str]] = {}
    for b in branches:
        if b.jagged and b.dtype is not None:
            key = ("counter", b.counter) if b.counter else ("prefix", b.name.split("_", 1)[0])
            groups.setdefault(key, []).append(b.name)
    stop = min(SAMPLE_ENTRIES, int(tree.num_entries))
    out = []
    for (kind, name), members in groups.items():
        lengths = _lengths(tree, members, stop)
        parts = _split_by_lengths(members, lengths)
        for part in parts:
            counts = lengths[part[0]]
            # a lone branch beside a list of its prefix is named after itself
            label = _identifier(part[0]) if len(parts) > 1 and len(part) == 1 else _list_name(
                part, name if kind == "prefix" else None)
            if any(o.name == label for o in out):  # two lists of one prefix: the second by its first branch
                label = _identifier(part[0])
            out.append(ObjectListInfo(
                name=label, counter=name if kind == "counter" else None, branches=tuple(part),
                mean_length=float(counts.mean()) if counts.size else 0.0,
                p95_length=int(math.ceil(np.percentile(counts, LENGTH_PERCENTILE))) if counts.size else 0,
                max_length=int(counts.max()) if counts.size else 0))
    return out


def _lengths(tree, members, stop) -> dict[str, np.ndarray]:
    import awkward as ak

    arrays = tree.arrays(members, entry_stop=stop, library="ak", how=dict)
    return {m: np.asarray(ak.num(arrays[m], axis=1)) for m in members}


def _split_by_lengths(members, lengths) -> list[list[str]]:
    """Members with identical per-entry lengths, in first-appearance order (one kind of object each)."""
    parts: list[list[str]] = []
    for m in members:
        for part in parts:
            if np.array_equal(lengths[part[0]], lengths[m]):
                part.append(m)
                break
        else:
            parts.append([m])
    return parts


def _list_name(members, prefix) -> str:
    """The members' common name prefix up to its last ``_`` (``part`` for part_pt, part_eta), else the given
    one."""
    common = members[0] if len(members) == 1 else _common_prefix(members)
    common = common.rsplit("_", 1)[0] if "_" in common else common
    return _identifier(common or prefix or "objects")


def _common_prefix(names) -> str:
    first, last = min(names), max(names)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _group_name(name, taken) -> str:
    candidate, n = name, 2
    while candidate in taken or candidate == "global":
        candidate, n = f"{name}{n}", n + 1
    return candidate


def _identifier(text) -> str:
    name = re.sub(r"\W+", "_", str(text)).strip("_") or "objects"
    return name if name[0].isalpha() else f"x_{name}"


# --- classes ---------------------------------------------------------------------------------------------

def _guess_classes(info, scalars, truth) -> tuple[dict, list[str]]:
    """Classes from a hadron-flavour branch (b, c, light), else one class per integer 0/1-looking flag, else
    a placeholder to edit; and the branches they read."""
    flavour = next((n for n in scalars if _FLAVOUR.search(n)), None)
    if flavour:
        return ({"B": [f"{flavour} == 5"], "C": [f"{flavour} == 4"], "UDSG": [f"{flavour} == 0"]}, [flavour])
    integer = {b.name for b in info.branches if b.dtype and np.dtype(b.dtype).kind in "iub"}
    flags = [n for n in truth if n in integer and re.search(r"^(is[A-Z]|label)", n)]
    if len(flags) >= 2:
        return {_identifier(re.sub(r"^(label_|is)", "", f)): [f] for f in flags}, flags
    return {"SIGNAL": ["REPLACE_WITH_TRUTH_EXPRESSION"], "BACKGROUND": ["REPLACE_WITH_TRUTH_EXPRESSION"]}, []


# --- command line ---------------------------------------------------------------------------------------

def register_cli(subparsers):
    """Add ``deepjet-nb inspect``."""
    p = subparsers.add_parser(
        "inspect", help="show a ROOT file's trees, branches and object lists, and a starter data config",
        description="Inspect a ROOT file (local path or root:// / fsspec URL): its trees and entries, the "
                    "branches of one tree with their types, the object lists they form, and a starter data "
                    "config (YAML) for converting it.")
    p.add_argument("file", metavar="FILE_OR_URL", help="a ROOT file or URL")
    p.add_argument("--tree", default=None, help="the tree to describe (default: the one with the most entries)")
    p.add_argument("--config-out", default=None, metavar="PATH", help="also write the starter config here")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    info = inspect(args.file, tree=args.tree)
    text = info.starter_yaml()
    print(info.summary())
    print("\nstarter data config:\n")
    print(text)
    if args.config_out:
        from ._atomic import write_text_atomic

        write_text_atomic(args.config_out, text)
    return 0
