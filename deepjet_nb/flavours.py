"""Flavours, training classes and discriminants (docs/reference.md §2): the one place where truth flags become
flavours or classes, and class probabilities become CMS discriminants.

- Truth flavour of a jet, from the raw hadron-based flags of the ntuple: b, c, udsg (:data:`FLAVOUR_GROUPS`);
  isUndefined jets take part in no comparison.
- Training classes are sums of raw flags, defined by a data config (``classes: {B: [isB], ...}``);
  :func:`class_labels` turns flags into class indices, :func:`class_flavours` tells the flavour of each class.
- Discriminants (:func:`discriminants`): ``b`` = sum of the b classes, ``CvsL`` = P(c)/(P(c)+P(udsg)),
  ``CvsB`` = P(c)/(P(c)+b). Comparisons (:data:`TASKS`): b vs udsg, b vs c, c vs udsg, c vs b.

Conversion, training, prediction, evaluation, plots and widgets all use these definitions.

>>> import numpy as np
>>> from deepjet_nb.flavours import discriminants
>>> d = discriminants({"B": np.array([0.7]), "C": np.array([0.2]), "UDSG": np.array([0.1])})
>>> round(float(d["b"][0]), 2), round(float(d["CvsL"][0]), 2)
(0.7, 0.67)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ArgumentError
from .schema import FLAVOUR_FLAGS

__all__ = [
    "FLAVOUR_GROUPS", "FLAVOUR_CODES", "FLAVOUR_NAMES", "UNDEFINED", "CLASS_FLAVOURS", "Task", "TASKS",
    "flavour_masks", "truth_flavour", "class_labels", "class_flavours", "discriminants",
]

# The raw flags that make up each evaluation flavour: the sum of a group's flags is 1 for a jet of the group.
FLAVOUR_GROUPS = {
    "b": ("isB", "isBB", "isGBB", "isLeptonicB", "isLeptonicB_C"),
    "c": ("isC", "isCC", "isGCC"),
    "udsg": ("isUD", "isS", "isG"),
}
assert {f for flags in FLAVOUR_GROUPS.values() for f in flags} | {"isUndefined"} == set(FLAVOUR_FLAGS)

# Integer codes of the flavours, like the CMS hadron flavour (5 b, 4 c, 0 light); -1 = undefined.
FLAVOUR_CODES = {"b": 5, "c": 4, "udsg": 0}
FLAVOUR_NAMES = {code: name for name, code in FLAVOUR_CODES.items()}
UNDEFINED = -1

# Flavour of the training classes of the shipped configs (DeepJet and DeepCSV class names), used when a class
# set does not say (e.g. prediction files of another tool).
CLASS_FLAVOURS = {
    "B": "b", "BB": "b", "LeptB": "b",
    "C": "c",
    "UDS": "udsg", "G": "udsg", "UDSG": "udsg",
}


@dataclass(frozen=True)
class Task:
    """One comparison: signal flavour, background flavour, and the discriminant that separates them."""

    signal: str
    background: str
    discriminant: str


TASKS = {
    "b_vs_udsg": Task("b", "udsg", "b"),
    "b_vs_c": Task("b", "c", "b"),
    "c_vs_udsg": Task("c", "udsg", "CvsL"),
    "c_vs_b": Task("c", "b", "CvsB"),
}


def flavour_classes(class_names) -> bool:
    """Whether training classes of these names are jet flavours (:data:`CLASS_FLAVOURS`, a b class among
    them): then a config of one's own is evaluated, validated and exported by flavour, like DeepNTuples."""
    names = list(class_names or ())
    return bool(names) and all(n in CLASS_FLAVOURS for n in names) and any(CLASS_FLAVOURS[n] == "b" for n in names)


def task(name: str) -> Task:
    """The :class:`Task` called ``name``; raises :class:`ArgumentError` listing the known ones."""
    if name not in TASKS:
        raise ArgumentError(f"unknown task {name!r}; one of {list(TASKS)}")
    return TASKS[name]


def flavour_masks(flags) -> dict[str, np.ndarray]:
    """Boolean masks {"b", "c", "udsg"} from the raw flavour flags of ``flags`` (anything indexable by branch
    name: a dict of numpy arrays, an awkward record array, ...). Undefined jets are in none."""
    return {group: np.sum([np.asarray(flags[f]) for f in names], axis=0) > 0
            for group, names in FLAVOUR_GROUPS.items()}


def truth_flavour(flags: Mapping[str, np.ndarray], *, source: str = "flags") -> np.ndarray:
    """Evaluation flavour of each jet from the raw flavour flags.

    Input: mapping flag name → (n,) 0/1 array holding at least the flags of :data:`FLAVOUR_GROUPS`.
    Returns int8 (n,): 5 b, 4 c, 0 udsg, -1 for jets with none of these flags (isUndefined).
    Raises :class:`ArgumentError` naming ``source`` and the flag when a flag is missing or has another
    length, and when a jet carries flags of two flavours.
    """
    out = seen = None
    for flavour, names in FLAVOUR_GROUPS.items():
        for name in names:
            if name not in flags:
                raise ArgumentError(f"{source}: missing flavour flag branch {name!r}")
            flag = np.asarray(flags[name]) != 0
            if out is None:
                out = np.full(len(flag), UNDEFINED, dtype=np.int8)
                seen = np.zeros(len(flag), dtype=np.int8)
            if len(flag) != len(out):
                raise ArgumentError(f"{source}: flag {name!r} has {len(flag)} entries, expected {len(out)}")
            out[flag] = FLAVOUR_CODES[flavour]
            seen += flag
    if np.any(seen > 1):
        bad = int(np.flatnonzero(seen > 1)[0])
        raise ArgumentError(f"{source}: jet {bad} has more than one flavour flag set")
    return out


def flavour_from_classes(class_truth: Mapping[str, np.ndarray], class_flavours: Mapping[str, str]) -> np.ndarray:
    """Evaluation flavour of each jet from its class truth (``truth_is<Class>``: 0/1 per jet) and the flavour
    of each class: for files without the raw flavour flags, such as those of a layout of one's own whose
    classes are flavours (``B: [hadronFlavour == 5]``). Returns int8 codes as :func:`truth_flavour` (-1 for a
    jet of no class or of a class without flavour)."""
    out = None
    for cls, truth in class_truth.items():
        truth = np.asarray(truth) != 0
        out = np.full(len(truth), UNDEFINED, dtype=np.int8) if out is None else out
        flavour = class_flavours.get(cls)
        if flavour in FLAVOUR_CODES:
            out[truth] = FLAVOUR_CODES[flavour]
    return np.zeros(0, dtype=np.int8) if out is None else out


def class_labels(flags: Mapping[str, np.ndarray], classes: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Class index (int8) per jet from raw truth flags: the class whose flags sum to > 0, else -1.

    ``classes`` maps class name → its flags (a data config's ``classes``), in class-index order; an entry that
    is not a branch of ``flags`` is an expression over them (``hadronFlavour == 5``, :mod:`.expressions`).
    """
    from .expressions import evaluate

    n = len(next(iter(flags.values())))
    label = np.full(n, -1, dtype=np.int8)
    for index, names in enumerate(classes.values()):
        total = np.zeros(n, dtype=np.int64)
        for name in names:
            value = flags[name] if name in flags else evaluate(name, flags, what="classes")
            total += np.asarray(value).astype(np.int64)
        label[(total > 0) & (label < 0)] = index
    return label


def class_flavours(classes: Mapping[str, Sequence[str]]) -> dict[str, str] | None:
    """Flavour (b, c, udsg) of each class from the raw flags that make it up (a data config's ``classes``).

    Returns None when a class mixes flavours (or holds isUndefined): then the caller falls back on
    :data:`CLASS_FLAVOURS` or on the truth in the data.
    """
    out = {}
    for cls, flags in classes.items():
        found = [flavour for flavour, group in FLAVOUR_GROUPS.items() if set(flags) <= set(group)]
        if len(found) != 1:
            return None
        out[cls] = found[0]
    return out


def flavours_from_truth(class_truth: Mapping[str, np.ndarray], flavour: np.ndarray) -> dict[str, str]:
    """Flavour of each class from jets labelled with it: ``class_truth[cls]`` (0/1 per jet) and the jets'
    :func:`truth_flavour`. A class whose jets are all of one flavour gets it; other classes are left out."""
    out = {}
    for cls, truth in class_truth.items():
        codes = np.unique(flavour[np.asarray(truth) != 0])
        if len(codes) == 1 and codes[0] != UNDEFINED:
            out[cls] = FLAVOUR_NAMES[int(codes[0])]
    return out


def discriminants(probabilities: Mapping[str, np.ndarray],
                  class_flavours: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """CMS discriminants from class probabilities.

    Input: mapping class name (``"B"``, ``"BB"``, ...) → (n,) probabilities, and optionally the flavour
    (``"b"``, ``"c"``, ``"udsg"``) of each class; :data:`CLASS_FLAVOURS` fills in the others.
    Returns float64 arrays ``{"b": P(b classes), "CvsL": P(C)/(P(C)+P(light)), "CvsB": P(C)/(P(C)+b)}``;
    a ratio whose denominator is 0 is set to 0. Raises :class:`ArgumentError` for a class without flavour or
    when no class is b.
    """
    mapping = {**CLASS_FLAVOURS, **(class_flavours or {})}
    sums = {}
    for cls, prob in probabilities.items():
        if cls not in mapping:
            raise ArgumentError(
                f"class {cls!r} has no known flavour; pass class_flavours={{{cls!r}: 'b'|'c'|'udsg'}}"
            )
        flavour = mapping[cls]
        if flavour not in FLAVOUR_CODES:
            raise ArgumentError(f"class {cls!r}: flavour {flavour!r} is not one of {list(FLAVOUR_CODES)}")
        prob = np.asarray(prob, dtype=np.float64)
        sums[flavour] = sums[flavour] + prob if flavour in sums else prob.copy()
    if "b" not in sums:
        raise ArgumentError(f"no b class among {list(probabilities)}: cannot form the b discriminant")
    b = sums["b"]
    zeros = np.zeros_like(b)
    c = sums.get("c", zeros)
    light = sums.get("udsg", zeros)
    return {"b": b, "CvsL": _safe_ratio(c, c + light), "CvsB": _safe_ratio(c, c + b)}


def _safe_ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
