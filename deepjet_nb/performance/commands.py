"""What the evaluation commands share around the core (:mod:`deepjet_nb.performance`): reading prediction
files, naming taggers, holding the output directory, and notes on the comparisons left out."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._args import paths as as_paths
from .._atomic import remove_stale
from .._lock import output_lock
from ..errors import ArgumentError, InputFileError
from ..predict import PROB_PREFIX, TREE
from ..rootio import open_tree


class SkippedTaskWarning(UserWarning):
    """A comparison was left out of the evaluation: the tagger has no score for it, or the jets lack its
    signal or its background class."""


def read_prediction_arrays(path, required: Sequence[str], *,
                           optional: Sequence[str] | Callable[[list[str]], Sequence[str]] = (),
                           probabilities: bool = True, hint: str = "") -> tuple[dict, str]:
    """The branches of a prediction file (tree ``tree``): every ``prob_is<Class>`` (with ``probabilities``),
    then ``required``, then those of ``optional`` (names, or a function of the file's branch names giving
    them) the file has. Returns ``(arrays, "path:tree")``. Raises
    :class:`InputFileError` naming the file and branch when the file cannot be read, holds no jets, lacks the
    ``prob_is*`` branches or a required branch (``hint`` says what such a file holds)."""
    source = f"{Path(path)}:{TREE}"
    with open_tree(Path(path), TREE) as tree:
        if tree.num_entries == 0:
            raise InputFileError(f"{source}: no jets (an empty prediction file: predict found no selected jets "
                                 f"in its input); nothing to evaluate")
        keys = list(tree.keys())
        wanted = [k for k in keys if k.startswith(PROB_PREFIX)] if probabilities else []
        if probabilities and not wanted:
            raise InputFileError(f"{source}: no {PROB_PREFIX}<Class> branches")
        wanted = list(dict.fromkeys([*wanted, *required]))
        missing = [b for b in wanted if b not in keys]
        if missing:
            more = f" (and {len(missing) - 1} more: {', '.join(missing[1:4])})" if len(missing) > 1 else ""
            raise InputFileError(f"{source}: missing branch {missing[0]!r}{more}{hint}")
        optional = optional(keys) if callable(optional) else optional
        wanted += [b for b in dict.fromkeys(optional) if b in keys and b not in wanted]
        try:
            arrays = tree.arrays(wanted, library="np")
        except Exception as err:  # uproot raises decompression, interpretation and OS errors of several kinds
            raise InputFileError(f"{source}: cannot read branches ({err})") from err
    return arrays, source


def class_probabilities(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Class name → probabilities of the ``prob_is<Class>`` branches; :class:`InputFileError` naming the file
    and branch for a NaN or infinite probability."""
    probs = {}
    for key, values in arrays.items():
        if key.startswith(PROB_PREFIX):
            if not np.all(np.isfinite(values)):
                raise InputFileError(f"{source}: branch {key!r} holds NaN or infinite probabilities")
            probs[key[len(PROB_PREFIX):]] = values
    return probs


def tagger_names(paths, names: Sequence[str] | str | None, *, reserved: Sequence[str] = (),
                 what: str) -> tuple[list[Path], list[str]]:
    """The prediction files and a tagger name for each (``names``, default the file stems). Raises
    :class:`ArgumentError` for no paths, a count that differs, or names that repeat or take a ``reserved``
    one (a baseline's)."""
    paths = as_paths(paths, what, "prediction files")
    names = [names] if isinstance(names, str) else ([p.stem for p in paths] if names is None else list(names))
    if len(names) != len(paths):
        raise ArgumentError(f"{len(names)} names for {len(paths)} prediction files")
    if len(set(names)) != len(names) or set(names) & set(reserved):
        avoid = f" (and not {', '.join(map(repr, reserved))})" if reserved else ""
        raise ArgumentError(f"tagger names must be unique{avoid}: {names}")
    return paths, names


def warn_skipped(notes: Sequence[str]) -> None:
    """Each note of :func:`skipped_tasks` as a :class:`SkippedTaskWarning` (the caller's caller's line)."""
    for note in notes:
        warnings.warn(note, SkippedTaskWarning, stacklevel=3)


@contextmanager
def evaluation_output(out_dir: Path, command: str):
    """Hold ``out_dir`` for an evaluation: locked against another writer (``command`` names this one), with the
    files a killed earlier run left half-written removed from it and from its ``plots/``."""
    with output_lock(out_dir, what=command):
        remove_stale(out_dir)
        remove_stale(out_dir / "plots")
        yield out_dir


def named_paths(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Tagger names and paths of command-line arguments ``FILE`` (named by its stem) or ``NAME=FILE``; an
    argument that exists as a file is a path even when it holds ``=``."""
    names, paths = [], []
    for item in items:
        name, sep, path = item.partition("=")
        if sep and name and not _is_file(item):
            names.append(name)
            paths.append(path)
        else:
            names.append(Path(item).stem)
            paths.append(item)
    return names, paths


def _is_file(item: str) -> bool:
    """Whether ``item`` names an existing file; a name the OS cannot even look up (too long, a NUL) does not."""
    try:
        return Path(item).exists()
    except (OSError, ValueError):
        return False


def noting_skipped_tasks(command: str, call):
    """``call()``'s result; each :class:`SkippedTaskWarning` it raised becomes a ``<command>: note:`` line on
    stderr (a command's way of saying which comparisons had no jets), other warnings are shown as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedTaskWarning)
        result = call()
    for w in caught:
        if issubclass(w.category, SkippedTaskWarning):
            print(f"{command}: note: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return result
