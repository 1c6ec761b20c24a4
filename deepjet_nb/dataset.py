"""The converted-dataset format (docs/formats.md §2), read and write: a manifest plus one shard of ``.npy``
arrays per input file.

Example::

    >>> from deepjet_nb.dataset import open_dataset
    >>> ds = open_dataset("data/deepjet")                       # doctest: +SKIP
    >>> ds.classes, ds.inputs["cpf"]["shape"], ds.n_jets        # doctest: +SKIP
    (['B', 'BB', 'LeptB', 'C', 'UDS', 'G'], [25, 16], 1234)
    >>> arrays = ds.load()                                      # doctest: +SKIP
    >>> arrays["cpf"].shape, arrays["label"].dtype              # doctest: +SKIP
    ((1234, 25, 16), dtype('int8'))
    >>> for name, shard in ds.iter_shards(mmap=True): ...       # doctest: +SKIP

The shards are plain ``.npy`` files; ``numpy.load(path, mmap_mode="r")`` reads them without this package.
Writing (the converter's side): :class:`ShardWriter` streams one shard into place chunk by chunk, and
:meth:`Manifest.write` replaces ``manifest.json`` atomically.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import xxhash

from ._atomic import atomic_path
from ._jsonio import read_object, write_json
from .errors import DatasetError
from .names import DATASET_ARRAYS, identifier_problem

MANIFEST = "manifest.json"
SHARDS = "shards"
FORMAT_VERSION = 1
PER_JET = DATASET_ARRAYS  # arrays of every shard besides the input groups
# Shard record key: array key → xxh3_128 (hex, the ``xxhash`` package) of the array's data bytes as written,
# i.e. the file's bytes after its .npy header (the header is checked field by field).
ARRAY_CHECKSUMS = "xxh3_128_arrays"
# Manifest key: source path → xxh3_128 of the source's bytes when the statistics were computed from it.
SOURCE_CHECKSUMS = "source_checksums"
_BLOCK = 1 << 22  # bytes read at a time when hashing a file
_REQUIRED = ("classes", "inputs", "spectators", "normalisation", "shards")


class Manifest(dict):
    """The content of a ``manifest.json`` (a dict, JSON-ready) with named accessors for what callers use.

    Keys are those of docs/formats.md §2. Build one with :meth:`read` (validated) or from a dict.
    """

    @classmethod
    def read(cls, path: str | os.PathLike, *, error=DatasetError) -> Manifest:
        """Read and check ``path`` (a ``manifest.json``); raises ``error`` naming the file when it is missing,
        not JSON, not an object, of another format version, or lacks a required key."""
        path = Path(path)
        if not path.is_file():
            raise error(f"{path.parent}: not a converted dataset (no {MANIFEST})")
        raw = read_object(path, error=error, what="manifest")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise error(f"{path}: format_version {version!r}, this reader knows {FORMAT_VERSION}")
        for key in _REQUIRED:
            if key not in raw:
                raise error(f"{path}: missing key {key!r}")
        problem = _layout_problem(raw)
        if problem:
            raise error(f"{path}: {problem}")
        return cls(raw)

    def write(self, directory: str | os.PathLike) -> None:
        """Write ``directory/manifest.json`` atomically (strict JSON)."""
        write_json(Path(directory) / MANIFEST, self)

    @property
    def classes(self) -> list[str]:
        return list(self["classes"])

    @property
    def inputs(self) -> dict[str, dict]:
        """Input group → ``{"shape": [...], "features": [...]}`` in model-input order."""
        return dict(self["inputs"])

    @property
    def spectators(self) -> list[str]:
        return list(self["spectators"])

    @property
    def normalisation(self) -> dict:
        return self["normalisation"]

    @property
    def shards(self) -> list[dict]:
        """Shard records: ``{"name", "source", <checksum>, "n_jets"}``, in input order."""
        return list(self["shards"])

    @property
    def shard_names(self) -> list[str]:
        return [s["name"] for s in self["shards"]]

    @property
    def source_checksums(self) -> dict[str, str]:
        """Source path → xxh3_128 of its bytes when the statistics were computed ({} in older manifests)."""
        return dict(self.get(SOURCE_CHECKSUMS) or {})

    def shard_problem(self, directory: str | os.PathLike, record: Mapping, *, content: bool = False) -> str | None:
        """What is wrong with the files of shard ``record`` in dataset ``directory`` (a missing file, a
        truncated or resized one, another number of rows or shape than this manifest says), or None when they
        match. Reads only the ``.npy`` headers and file sizes; with ``content`` also every array's bytes, compared
        with the record's content checksums (records of datasets converted before they existed have none)."""
        shard_dir = Path(directory) / SHARDS / record["name"]
        checksums = record.get(ARRAY_CHECKSUMS) or {}
        for key, (dtype, shape) in self.shard_layout(int(record["n_jets"])).items():
            file = shard_dir / f"{key}.npy"
            problem, offset = _npy_problem(file, dtype, shape)
            if problem is None and content and key in checksums:
                problem = _content_problem(file, offset, checksums[key])
            if problem:
                return problem
        return None

    def shard_layout(self, n_jets: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """Array key → (dtype, shape) of the files of a shard of ``n_jets`` jets, input groups first."""
        layout = {g: (np.dtype(np.float32), (n_jets, *map(int, spec["shape"]))) for g, spec in self["inputs"].items()}
        layout.update(label=(np.dtype(np.int8), (n_jets,)), weight=(np.dtype(np.float32), (n_jets,)),
                      spectators=(np.dtype(np.float32), (n_jets, len(self["spectators"]))))
        return layout

    @property
    def n_jets(self) -> int:
        return int(sum(s["n_jets"] for s in self["shards"]))

    @property
    def config_hash(self) -> str:
        return str(self.get("config_hash", ""))

    @property
    def config(self):
        """The data config the dataset was made with, as a validated :class:`~deepjet_nb.config.DataConfig`."""
        from .config import config_from_dict

        return config_from_dict(self["config"], source=MANIFEST)

    @property
    def class_flavours(self) -> dict[str, str] | None:
        """Flavour of each class from the data config's flags (None when the config does not say)."""
        from .flavours import class_flavours

        classes = (self.get("config") or {}).get("classes")
        return class_flavours(classes) if isinstance(classes, Mapping) else None


class ManifestView:
    """Accessors shared by everything that carries a :class:`Manifest` (a dataset, a run directory)."""

    manifest: Manifest

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def inputs(self) -> dict[str, dict]:
        return self.manifest.inputs

    @property
    def spectators(self) -> list[str]:
        return self.manifest.spectators

    @property
    def normalisation(self) -> dict:
        return self.manifest.normalisation


class Dataset(ManifestView):
    """A converted dataset directory. Attributes come from the manifest; arrays load on request.

    Attributes: ``path``, ``manifest`` (:class:`Manifest`), ``classes``, ``inputs`` (group → {"shape",
    "features"}, model input order), ``spectators``, ``shard_names`` (input order), ``normalisation``
    (group → feature → {"mean", "std"}), ``n_jets``, ``config`` (the data config).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = Manifest.read(self.path / MANIFEST)

    @property
    def shard_names(self) -> list[str]:
        return self.manifest.shard_names

    @property
    def n_jets(self) -> int:
        return self.manifest.n_jets

    @property
    def config(self):
        return self.manifest.config

    def verify(self, *, content: bool = True) -> None:
        """Check every shard's files against the manifest: rows, shapes and sizes from the headers, and with
        ``content`` (the default) every array's bytes against the content checksums the converter recorded (one
        read of the dataset, at memory speed when it is cached). Raises :class:`DatasetError` naming the first
        file that does not match (a rerun of the conversion redoes it)."""
        for problem in self.problems(content=content):
            raise DatasetError(f"{problem}; rerun the conversion to redo the shard (deepjet-nb convert)",
                               path=self.path)

    def problems(self, *, content: bool = True) -> Iterator[str]:
        """What is wrong with each shard that does not match the manifest (see :meth:`verify`), shard by shard."""
        for record in self.manifest.shards:
            problem = self.manifest.shard_problem(self.path, record, content=content)
            if problem:
                yield problem

    def check_values(self, name: str, arrays: Mapping[str, np.ndarray], rows: np.ndarray | None = None) -> None:
        """Refuse arrays of shard ``name`` that training cannot use: NaN or ±inf in an input group or the
        weights, or a label that is not a class index. ``rows`` gives the shard row of each array row when the
        arrays hold a selection of the shard. Raises :class:`DatasetError` naming the file, the row and (for an
        input group) the feature; the converter never writes such values, so the shard changed after it.

        Cheap: one vectorised sum per array (NaN and inf survive a sum); the row is searched only when it fails.
        """
        for key, array in arrays.items():
            if key in self.inputs or key == "weight":
                row, what = _first_non_finite(array, self.inputs.get(key, {}).get("features"))
            elif key == "label":
                row, what = _first_out_of_range(array, len(self.classes))
            else:
                continue
            if row is not None:
                shard_row = int(rows[row]) if rows is not None else row
                raise DatasetError(f"{self.path / SHARDS / name / (key + '.npy')}: row {shard_row}: {what}; the "
                                   f"converter does not write this, so the file changed after conversion (check "
                                   f"it with deepjet-nb verify {self.path})", path=self.path / SHARDS / name)

    def shard_jets(self) -> dict[str, int]:
        """Number of jets of each shard, in input order."""
        return {s["name"]: int(s["n_jets"]) for s in self.manifest.shards}

    def shard(self, name: str, *, mmap: bool = False) -> dict[str, np.ndarray]:
        """Arrays of one shard: each input group, ``label``, ``weight``, ``spectators``.

        ``mmap=True`` maps the files read-only instead of reading them. Raises :class:`DatasetError` for an
        unknown shard or a missing/inconsistent file.
        """
        if name not in self.shard_names:
            raise DatasetError(f"{self.path}: no shard {name!r} (shards: {', '.join(self.shard_names)})")
        directory = self.path / SHARDS / name
        arrays = {}
        for key in (*self.manifest.inputs, *PER_JET):
            file = directory / f"{key}.npy"
            if not file.is_file():
                raise DatasetError(f"{file}: missing (the shard is incomplete; reconvert it)")
            try:
                arrays[key] = np.load(file, mmap_mode="r" if mmap else None)
            except (ValueError, OSError) as err:
                raise DatasetError(f"{file}: not a readable .npy file ({err}); reconvert the shard") from None
        n = len(arrays["label"])
        for key, array in arrays.items():
            if len(array) != n:
                raise DatasetError(f"{directory / (key + '.npy')}: {len(array)} rows, label.npy has {n}")
        return arrays

    def iter_shards(self, *, mmap: bool = True) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Yield ``(name, arrays)`` shard by shard (memory-mapped by default): for data larger than memory."""
        for name in self.shard_names:
            yield name, self.shard(name, mmap=mmap)

    def load(self, shards: list[str] | None = None, mmap: bool = False) -> dict[str, np.ndarray]:
        """All (or the named) shards concatenated: dict of group arrays, ``label``, ``weight``, ``spectators``.

        For small data. With one shard and ``mmap=True`` the arrays stay memory-mapped; several shards are
        concatenated into memory.
        """
        names = self.shard_names if shards is None else list(shards)
        if not names:
            raise DatasetError(f"{self.path}: no shards to load")
        parts = [self.shard(n, mmap=mmap) for n in names]
        if len(parts) == 1:
            return parts[0]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def spectator(self, name: str, shards: list[str] | None = None) -> np.ndarray:
        """One spectator column (e.g. ``"jet_pt"``) of all (or the named) shards, in shard order."""
        if name not in self.spectators:
            raise DatasetError(f"{self.path}: no spectator {name!r} (spectators: {self.spectators})")
        column = self.spectators.index(name)
        names = self.shard_names if shards is None else list(shards)
        return np.concatenate([np.asarray(self.shard(n, mmap=True)["spectators"][:, column]) for n in names])

    def __repr__(self):
        groups = ", ".join(f"{k}{tuple(v['shape'])}" for k, v in self.inputs.items())
        return (f"<Dataset {str(self.path)!r}: {self.n_jets} jets in {len(self.shard_names)} shard(s); "
                f"inputs {groups}; classes {self.classes}>")


def _layout_problem(raw: dict) -> str | None:
    """What makes a manifest's content unusable (a key of the wrong kind), or None."""
    def names(value):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    if not names(raw["classes"]) or not raw["classes"]:
        return "'classes' must be a non-empty list of names"
    if not names(raw["spectators"]):
        return "'spectators' must be a list of names"
    inputs = raw["inputs"]
    if not isinstance(inputs, dict) or not inputs:
        return "'inputs' must map input groups to {\"shape\", \"features\"}"
    for group, spec in inputs.items():
        if identifier_problem(group) or group in DATASET_ARRAYS:
            return f"inputs: {group!r} cannot name an input group (an identifier other than {DATASET_ARRAYS})"
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d > 0 for d in shape)):
            return f"inputs.{group}: 'shape' must be a list of positive integers"
    if not isinstance(raw["normalisation"], dict):
        return "'normalisation' must be an object"
    if not isinstance(raw["shards"], list):
        return "'shards' must be a list"
    for i, record in enumerate(raw["shards"]):
        if not (isinstance(record, dict) and isinstance(record.get("name"), str)
                and isinstance(record.get("n_jets"), int) and record["n_jets"] >= 0):
            return f"shards[{i}] must be an object with a 'name' and a number of jets 'n_jets'"
        if record["name"] in ("", ".", "..") or "/" in record["name"] or os.sep in record["name"]:
            return f"shards[{i}]: {record['name']!r} cannot name a shard directory"
    if "weighting" in raw and not isinstance(raw["weighting"], dict):
        return "'weighting' must be an object"
    return None


def _npy_problem(file: Path, dtype: np.dtype, shape: tuple) -> tuple[str | None, int]:
    """(what is wrong with the .npy header or size of ``file`` for an array of ``dtype`` and ``shape`` or None,
    offset of its data)."""
    try:
        with open(file, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            have_shape, _, have_dtype = read_header(f)
            offset = f.tell()
        size = file.stat().st_size
    except FileNotFoundError:
        return f"{file}: missing", 0
    except (OSError, ValueError) as err:
        return f"{file}: not a readable .npy file ({' '.join(str(err).split())})", 0
    if tuple(have_shape) != shape or have_dtype != dtype:
        return f"{file}: {have_dtype}{list(have_shape)}, the manifest says {dtype}{list(shape)}", offset
    expected = offset + dtype.itemsize * int(np.prod(shape))
    if size != expected:
        return f"{file}: {size} bytes, {expected} expected (truncated?)", offset
    return None, offset


def _content_problem(file: Path, offset: int, checksum: str) -> str | None:
    """What differs between the data bytes of ``file`` (from ``offset``) and their recorded checksum, or None."""
    try:
        have = file_checksum(file, offset)
    except OSError as err:
        return f"{file}: cannot read ({err.strerror})"
    if have != checksum:
        return f"{file}: content differs from the conversion (xxh3_128 {have[:12]}…, recorded {checksum[:12]}…)"
    return None


def file_checksum(path: str | os.PathLike, offset: int = 0) -> str:
    """xxh3_128 hex digest of the bytes of ``path`` from ``offset`` on, read in blocks (bounded memory). A
    fast hash that detects changed or corrupted bytes; not a security hash."""
    digest = xxhash.xxh3_128()
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    from .rootio import open_bytes  # a local file or a URL (root://, fsspec)

    with open_bytes(path) as f:
        f.seek(offset)
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _first_non_finite(array: np.ndarray, features=None) -> tuple[int | None, str]:
    """(first row of ``array`` holding NaN or ±inf, what and where) or (None, "")."""
    if array.size == 0:
        return None, ""
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(array, axis=None)
    if np.isfinite(total):  # the fast path: a NaN or an inf would have made the sum non-finite
        return None, ""
    bad = ~np.isfinite(array.reshape(len(array), -1))
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:  # the sum overflowed: every value is finite
        return None, ""
    row = int(rows[0])
    value = array.reshape(len(array), -1)[row][bad[row]][0]
    if features and array.ndim > 1:
        column = int(np.flatnonzero(bad[row])[0]) % array.shape[-1]
        return row, f"{value} in feature {features[column]!r}"
    return row, f"{value}"


def _first_out_of_range(label: np.ndarray, n_classes: int) -> tuple[int | None, str]:
    """(first row whose label is not a class index 0..n_classes-1, what) or (None, "")."""
    if label.size == 0 or (label.min() >= 0 and label.max() < n_classes):
        return None, ""
    row = int(np.flatnonzero((label < 0) | (label >= n_classes))[0])
    return row, f"label {int(label[row])} is not a class index (0 to {n_classes - 1})"


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open a converted dataset directory (reads only the manifest). Raises :class:`DatasetError`."""
    return Dataset(path)


# --- writing --------------------------------------------------------------------------------------------

class ShardWriter:
    """Writes one shard, chunk by chunk, into ``shards_dir/<name>/``; the directory appears only when complete.

    ``groups`` maps each input group to its per-jet shape (e.g. ``{"cpf": (25, 16)}``); ``n_spectators`` is
    the number of spectator columns. Use as a context manager; :meth:`append` takes a dict holding every group,
    ``label``, ``weight`` and ``spectators`` for the same jets. On an exception nothing is left behind.
    """

    def __init__(self, shards_dir: str | os.PathLike, name: str, groups: Mapping[str, tuple], n_spectators: int):
        self.destination = Path(shards_dir) / name
        self._layout = {**{g: (np.float32, tuple(shape)) for g, shape in groups.items()},
                        "label": (np.int8, ()), "weight": (np.float32, ()),
                        "spectators": (np.float32, (int(n_spectators),))}
        self.n_jets = 0
        self.checksums: dict[str, str] = {}  # array key → xxh3_128 of its data bytes, once the shard is complete

    def __enter__(self) -> ShardWriter:
        self._stack = contextlib.ExitStack()
        self._stack.__enter__()
        try:
            tmp = self._stack.enter_context(atomic_path(self.destination, directory=True))
            self._appenders = {key: self._stack.enter_context(_NpyAppender(tmp / f"{key}.npy", dtype, shape))
                               for key, (dtype, shape) in self._layout.items()}
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        return self

    def append(self, arrays: Mapping[str, np.ndarray]) -> None:
        n = len(arrays["label"])
        for key, appender in self._appenders.items():
            if len(arrays[key]) != n:
                raise AssertionError(f"{self.destination}: {key} has {len(arrays[key])} rows, label has {n}")
            appender.append(arrays[key])
        self.n_jets += n

    def __exit__(self, *exc):
        # the appenders close (headers final) before the directory moves into place
        self.checksums = {key: appender.digest.hexdigest() for key, appender in self._appenders.items()}
        return self._stack.__exit__(*exc)


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
        self.digest = xxhash.xxh3_128()  # of the data bytes as they are written: no second read to checksum them
        self.file = open(self.path, "wb")
        self.file.write(self._header())

    def append(self, array):
        array = np.ascontiguousarray(array, dtype=self.dtype)
        if array.shape[1:] != self.inner_shape:
            raise AssertionError(f"{self.path}: chunk shape {array.shape[1:]} != {self.inner_shape}")
        if array.size:
            data = memoryview(array.reshape(-1)).cast("B")
            self.file.write(data)
            self.digest.update(data)
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
