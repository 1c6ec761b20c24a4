"""Opening ROOT inputs with errors that name the file, tree and branch at fault."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
from collections.abc import Iterable
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
    path = input_path(path)
    with _open_file(path) as file:
        tree = _tree(file, path, treename)
        _check_branches(tree, path, treename, branches, ntuple)
        yield tree


def is_url(path) -> bool:
    """Whether ``path`` is a URL (``root://``, ``https://``, any fsspec protocol) rather than a local path."""
    return "://" in str(path)


class URL(str):
    """A remote input file: the URL string, with the few :class:`~pathlib.Path` attributes that conversion and
    prediction use (``name``, ``stem``, ``suffix``, ``resolve()``), so local and remote inputs go one way."""

    @property
    def name(self) -> str:
        return self.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    def resolve(self) -> URL:
        return self

    def is_file(self) -> bool:  # the server says when it is not (at open)
        return True

    def is_dir(self) -> bool:  # converted datasets are local directories
        return False


# XRootD client settings for root:// inputs: give up on a server that is gone within about half a minute
# instead of the client's default of ten (5 retries of 120 s). Each can be set with its environment variable
# (XRD_CONNECTIONWINDOW, XRD_CONNECTIONRETRY, XRD_REQUESTTIMEOUT), as for any XRootD client.
# A stream that failed may be retried after StreamErrorWindow s (default 1800): a rerun in the same notebook
# kernel after a server came back must not wait half an hour.
XROOTD_SETTINGS = {"ConnectionWindow": 15, "ConnectionRetry": 2, "RequestTimeout": 300, "StreamErrorWindow": 10}


def xrootd_settings(path) -> None:
    """Apply :data:`XROOTD_SETTINGS` (or their ``XRD_*`` environment values) before reading ``root://`` from
    ``path``; nothing for other paths or without the XRootD client."""
    if not _is_xrootd(path):
        return
    if "tensorflow" in sys.modules and "XRootD.client" not in sys.modules:
        # Loading XRootD's library after TensorFlow's crashes the process (deepjet_nb._tf_startup).
        raise InputFileError(f"{path}: the XRootD client cannot be loaded after TensorFlow in the same process (a "
                             f"clash of their native libraries crashes it): import deepjet_nb before TensorFlow or "
                             f"Keras (it then loads XRootD first), e.g. restart the kernel and import deepjet_nb first",
                             path=str(path))
    try:
        from XRootD import client
    except ImportError:  # uproot says what is missing when it opens the URL
        return
    for key, default in XROOTD_SETTINGS.items():
        value = os.environ.get(f"XRD_{key.upper()}", "")
        client.EnvPutInt(key, int(value) if value.strip().isdigit() else default)


def _is_xrootd(path) -> bool:
    return str(path).startswith(("root://", "roots://"))


def _source_options(path) -> dict:
    """uproot.open options for ``path``: root:// is read with uproot's XRootD source (the XRootD client
    directly, with :data:`XROOTD_SETTINGS`), other URLs through fsspec."""
    if not _is_xrootd(path):
        return {}
    import uproot.source.xrootd

    xrootd_settings(path)
    return {"handler": uproot.source.xrootd.XRootDSource}


def input_path(path):
    """``path`` as a :class:`URL` for a URL, else as a :class:`~pathlib.Path`."""
    return URL(path) if is_url(path) else Path(path)


def input_files(inputs, what: str, name: str = "input files") -> list:
    """Input ROOT files as a list of :class:`~pathlib.Path` and :class:`URL`: one path or URL, or an iterable
    of them; glob patterns (``data/*.root``, ``root://host//store/*.root``) expanded in sorted order.

    Raises :class:`~deepjet_nb.errors.ArgumentError` naming ``what`` for no input, an item that is not a path,
    or a pattern that matches nothing (a plain path that does not exist is reported when it is opened).
    """
    from .errors import ArgumentError

    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    if not isinstance(items, Iterable) or isinstance(items, (bytes, dict)):
        raise ArgumentError(f"{what}: {name} must be a path or a list of paths, got {type(inputs).__name__}")
    out = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)) or not os.fspath(item):
            raise ArgumentError(f"{what}: {name} must be paths, got {item!r}")
        text = os.fspath(item)
        if not glob.has_magic(text):
            out.append(input_path(text))
            continue
        matches = _glob_url(text) if is_url(text) else [Path(m) for m in sorted(glob.glob(text))]
        if not matches:
            raise ArgumentError(f"{what}: no file matches {text!r}")
        out.extend(matches)
    if not out:
        raise ArgumentError(f"{what}: no {name} given")
    return out


def _glob_url(pattern) -> list[URL]:
    """The files of a URL pattern, in sorted order; the pattern may be in the file name only (a server lists
    one directory per request)."""
    import fnmatch

    import fsspec

    directory, leaf = pattern.rsplit("/", 1)
    if glob.has_magic(directory):
        from .errors import ArgumentError

        raise ArgumentError(f"{pattern}: in a URL only the file name may hold a pattern (* ? [])")
    xrootd_settings(pattern)
    try:
        fs, path = fsspec.core.url_to_fs(f"{directory}/")
        names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path or "/", detail=False)]
        fs.invalidate_cache()  # fsspec-xrootd caches "//name" entries that later opens of "/name" miss
    except Exception as err:  # a missing server, protocol or permission: one line naming the pattern
        raise InputFileError(f"{pattern}: cannot list the directory ({cause(err, pattern)})", path=pattern) from None
    return [URL(f"{directory}/{name}") for name in sorted(fnmatch.filter(names, leaf))]


@contextlib.contextmanager
def open_bytes(path):
    """A binary file object reading the local file or URL ``path`` (for checksums)."""
    if not is_url(path):
        with open(path, "rb") as f:
            yield f
        return
    try:
        handle = _XRootDReader(path) if _is_xrootd(path) else _fsspec_open(path)
    except Exception as err:
        raise InputFileError(f"{path}: cannot open ({cause(err, path)})", path=path) from None
    try:
        yield handle
    finally:
        handle.close()


def _fsspec_open(path):
    import fsspec

    return fsspec.open(str(path), "rb").open()


class _XRootDReader:
    """The few file methods :func:`open_bytes` callers use (``seek``, ``read``, ``readinto``, ``close``) on an
    XRootD file; read errors raise OSError naming the URL."""

    def __init__(self, url):
        from XRootD import client

        xrootd_settings(url)
        self.url, self.position = str(url), 0
        self.file = client.File()
        status, _ = self.file.open(self.url)
        if not status.ok:
            raise OSError(f"XRootD error: {status.message}")

    def seek(self, offset, whence=0):
        self.position = offset
        return offset

    def read(self, size=-1):
        if size is None or size < 0:
            status, info = self.file.stat()
            size = max(0, (info.size if status.ok else 0) - self.position)
        status, data = self.file.read(self.position, size)
        if not status.ok:
            raise OSError(f"{self.url}: XRootD read error: {status.message}")
        self.position += len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self):
        if self.file.is_open():
            self.file.close()


@contextlib.contextmanager
def _open_file(path):
    """The open uproot file at ``path`` (a local file or a URL); errors name it."""
    import uproot

    if not is_url(path):
        try:
            size = path.stat().st_size
        except OSError as err:
            raise InputFileError(f"{path}: no such file ({err.strerror})", path=path) from None
        if not path.is_file():
            raise InputFileError(f"{path}: not a file", path=path)
        if size == 0:
            raise InputFileError(f"{path}: empty file (0 bytes)", path=path)
    try:
        file = uproot.open(path, **_source_options(path))
    except Exception as err:  # uproot raises many kinds for a corrupt file; all mean "not readable"
        what = "cannot open" if is_url(path) else "not a readable ROOT file"
        raise InputFileError(f"{path}: {what} ({cause(err, path)})", path=path) from None
    with file:
        yield file


def trees(file) -> list[str]:
    """Paths of the TTrees and RNTuples in an open uproot ``file`` (``dir/tree``, without cycle numbers)."""
    kinds = ("TTree", "ROOT::RNTuple", "ROOT::Experimental::RNTuple")
    names = (name.rsplit(";", 1)[0] for name, kind in file.classnames().items() if kind in kinds)
    return list(dict.fromkeys(names))


def _tree(file, path, treename):
    import uproot

    try:
        tree = file[treename]
    except Exception as err:
        message = f"{path}: no tree {treename!r} ({cause(err, path)})"
        available = trees(file)
        if isinstance(err, KeyError) or "not found" in str(err):
            message = f"{path}: no tree {treename!r}" if available else f"{path}: no tree {treename!r}; no trees"
        raise InputFileError(message, path=path, key=treename, choices=available) from None
    # uproot reads TTrees and RNTuples (ROOT's successor format) through the same interface
    if not isinstance(tree, (uproot.TTree, uproot.behaviors.RNTuple.RNTuple)):
        raise InputFileError(f"{path}: {treename!r} is a {type(tree).__name__}, not a TTree or RNTuple",
                             path=path, key=treename, choices=trees(file))
    return tree


def _check_branches(tree, path, treename, branches, ntuple):
    missing = [b for b in branches if b not in tree]
    if missing:
        available = tree.keys()
        more = f"; {len(missing) - 1} more missing: {', '.join(map(repr, missing[1:4]))}" if len(missing) > 1 else ""
        more += ", ..." if len(missing) > 4 else ""
        raise InputFileError(f"{path}: tree {treename!r} has no branch {missing[0]!r}", path=path,
                             key=missing[0], choices=available, hint=more)
    for name in branches:
        problem = _schema_problem(name, tree[name], ntuple)
        if problem:
            raise InputFileError(f"{path}: tree {treename!r}: {problem}", path=path, key=name)


def count_entries(path, treename: str) -> int:
    """Number of entries of the tree ``treename`` in ``path``; 0 when it cannot be read. For progress-bar totals
    only: a bad file is reported by the reading that needs it, with the message of :func:`open_tree`."""
    try:
        import uproot

        with uproot.open(path, **_source_options(path)) as f:
            return int(f[treename].num_entries)
    except Exception:
        return 0


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
