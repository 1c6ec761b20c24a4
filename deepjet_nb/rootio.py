"""Opening ROOT inputs with errors that name the file, tree and branch at fault."""

from __future__ import annotations

import contextlib
from pathlib import Path

from .errors import InputFileError


@contextlib.contextmanager
def open_tree(path, treename: str, branches=()):
    """Context manager yielding the tree ``treename`` of ``path`` (a TTree or an RNTuple) after checking that
    ``branches`` exist.

    Raises :class:`InputFileError` naming the file, and the tree or branch at fault, for a missing, empty,
    corrupt or non-ROOT file, a missing tree, an object that is not a tree, or a missing branch.
    """
    import uproot

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InputFileError(f"{path}: no such file ({err.strerror})") from None
    if not path.is_file():
        raise InputFileError(f"{path}: not a file")
    if size == 0:
        raise InputFileError(f"{path}: empty file (0 bytes)")
    try:
        file = uproot.open(path)
    except Exception as err:  # uproot raises many kinds for a corrupt file; all mean "not readable"
        raise InputFileError(f"{path}: not a readable ROOT file ({type(err).__name__}: {err})") from None
    with file:
        try:
            tree = file[treename]
        except Exception as err:
            raise InputFileError(f"{path}: no tree {treename!r} ({type(err).__name__}: {err})") from None
        # uproot reads TTrees and RNTuples (ROOT's successor format) through the same interface
        if not isinstance(tree, (uproot.TTree, uproot.behaviors.RNTuple.RNTuple)):
            raise InputFileError(f"{path}: {treename!r} is a {type(tree).__name__}, not a TTree or RNTuple")
        missing = [b for b in branches if b not in tree]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputFileError(f"{path}: tree {treename!r} has no branch {missing[0]!r}{more}")
        yield tree
