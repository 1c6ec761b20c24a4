"""Opening ROOT inputs with errors that name the file, tree and branch at fault."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from . import schema
from .errors import InputFileError


@contextlib.contextmanager
def open_tree(path, treename: str, branches=(), ntuple: schema.Schema = schema.DEEPNTUPLES):
    """Context manager yielding the tree ``treename`` of ``path`` (a TTree or an RNTuple) after checking that
    ``branches`` exist and fit their entries in the ``ntuple`` schema.

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
        raise InputFileError(f"{path}: not a readable ROOT file ({cause(err, path)})") from None
    with file:
        try:
            tree = file[treename]
        except Exception as err:
            raise InputFileError(f"{path}: no tree {treename!r} ({cause(err, path)})") from None
        # uproot reads TTrees and RNTuples (ROOT's successor format) through the same interface
        if not isinstance(tree, (uproot.TTree, uproot.behaviors.RNTuple.RNTuple)):
            raise InputFileError(f"{path}: {treename!r} is a {type(tree).__name__}, not a TTree or RNTuple")
        missing = [b for b in branches if b not in tree]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputFileError(f"{path}: tree {treename!r} has no branch {missing[0]!r}{more}")
        for name in branches:
            problem = _schema_problem(name, tree[name], ntuple)
            if problem:
                raise InputFileError(f"{path}: tree {treename!r}: {problem}")
        yield tree


def cause(err: Exception, path) -> str:
    """``"ErrorType: message"`` of an uproot error on one line, without the file name that uproot repeats
    ("in file X", "for file path X"): the caller's message names the file once."""
    text = re.sub(rf"\s*(?:in file|for file path)\s+{re.escape(str(path))}", "", str(err))
    text = re.sub(r"\s*in object \S+", "", text)
    return f"{type(err).__name__}: {' '.join(text.split())}"


def _schema_problem(name, branch, ntuple) -> str | None:
    """How a TTree branch or RNTuple field departs from its entry in the schema ``ntuple`` (kind of values,
    one per entry or a list), read from its type without reading data; None when it fits or is not a schema
    branch."""
    if name not in ntuple.all_branches:
        return None
    layout = _layout(branch)
    if layout is None:
        return f"branch {name!r} has type {getattr(branch, 'typename', '?')!r}; the schema has numbers"
    return ntuple.branch_problem(name, *layout)


def _layout(branch):
    """(jagged, numpy dtype) of a branch of numbers or of lists of numbers; None for anything else."""
    import numpy as np

    if hasattr(branch, "interpretation"):  # TTree branch
        from uproot.interpretation.jagged import AsJagged
        from uproot.interpretation.numerical import AsDtype

        interpretation = branch.interpretation
        jagged = isinstance(interpretation, AsJagged)
        content = interpretation.content if jagged else interpretation
        if isinstance(content, AsDtype) and content.to_dtype.shape == ():
            return jagged, content.to_dtype
        return None
    import awkward as ak  # RNTuple field: its awkward form

    form = branch.to_akform()
    if isinstance(form, tuple):  # (a record of this one field, its name) in uproot 5
        form = form[0]
    if isinstance(form, ak.forms.RecordForm) and len(form.contents) == 1:
        form = form.contents[0]
    jagged = isinstance(form, (ak.forms.ListOffsetForm, ak.forms.ListForm))
    content = form.content if jagged else form
    if isinstance(content, ak.forms.NumpyForm) and not content.inner_shape:
        return jagged, np.dtype(content.primitive)
    return None
