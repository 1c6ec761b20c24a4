"""Reading a converted dataset (docs/formats.md §2): numpy arrays per group, whole or shard by shard.

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
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import DatasetError

MANIFEST = "manifest.json"
SHARDS = "shards"
FORMAT_VERSION = 1
_PER_JET = ("label", "weight", "spectators")


class Dataset:
    """A converted dataset directory. Attributes come from the manifest; arrays load on request.

    Attributes: ``path``, ``manifest`` (dict), ``classes`` (list), ``inputs`` (group → {"shape",
    "features"}, model input order), ``spectators`` (list of names), ``shard_names`` (list, input order),
    ``normalisation`` (group → feature → {"mean", "std"}), ``n_jets``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise DatasetError(f"{self.path}: not a converted dataset (no {MANIFEST})")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except ValueError as err:
            raise DatasetError(f"{manifest_path}: not valid JSON ({err})") from None
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise DatasetError(f"{manifest_path}: format_version {version!r}, this reader knows {FORMAT_VERSION}")
        for key in ("classes", "inputs", "spectators", "normalisation", "shards"):
            if key not in self.manifest:
                raise DatasetError(f"{manifest_path}: missing key {key!r}")

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def inputs(self) -> dict[str, dict]:
        return dict(self.manifest["inputs"])

    @property
    def spectators(self) -> list[str]:
        return list(self.manifest["spectators"])

    @property
    def normalisation(self) -> dict:
        return self.manifest["normalisation"]

    @property
    def shard_names(self) -> list[str]:
        return [s["name"] for s in self.manifest["shards"]]

    @property
    def n_jets(self) -> int:
        return int(sum(s["n_jets"] for s in self.manifest["shards"]))

    @property
    def config(self):
        """The data config the dataset was made with, as a validated :class:`~deepjet_nb.config.DataConfig`."""
        from .config import config_from_dict

        return config_from_dict(self.manifest["config"], source=str(self.path / MANIFEST))

    def shard(self, name: str, *, mmap: bool = False) -> dict[str, np.ndarray]:
        """Arrays of one shard: each input group, ``label``, ``weight``, ``spectators``.

        ``mmap=True`` maps the files read-only instead of reading them. Raises :class:`DatasetError` for an
        unknown shard or a missing/inconsistent file.
        """
        if name not in self.shard_names:
            raise DatasetError(f"{self.path}: no shard {name!r} (shards: {', '.join(self.shard_names)})")
        directory = self.path / SHARDS / name
        arrays = {}
        for key in (*self.manifest["inputs"], *_PER_JET):
            file = directory / f"{key}.npy"
            if not file.is_file():
                raise DatasetError(f"{file}: missing (the shard is incomplete; reconvert it)")
            arrays[key] = np.load(file, mmap_mode="r" if mmap else None)
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

    def __repr__(self):
        groups = ", ".join(f"{k}{tuple(v['shape'])}" for k, v in self.inputs.items())
        return (f"<Dataset {str(self.path)!r}: {self.n_jets} jets in {len(self.shard_names)} shard(s); "
                f"inputs {groups}; classes {self.classes}>")


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open a converted dataset directory (reads only the manifest). Raises :class:`DatasetError`."""
    return Dataset(path)
