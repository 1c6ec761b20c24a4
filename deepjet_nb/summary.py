"""The numbers a notebook run produced, in one JSON file: what tests, parameter scans and batch jobs read back.

Every notebook of the project ends by recording its figures with :func:`record`: ``out_dir/summary.json``
unless its ``summary`` parameter names another file. The file is strict JSON (a NaN is written as null).

>>> from deepjet_nb.summary import record, read
>>> numbers = record({"auc": 0.94, "epochs": 8}, out_dir="runs/x")        # doctest: +SKIP
>>> read("runs/x")["auc"]                                                 # doctest: +SKIP
0.94
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ._jsonio import to_strict, write_json
from .errors import ArgumentError

SUMMARY = "summary.json"


def summary_path(out_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None) -> Path:
    """Where the summary goes: ``path`` if given, else ``out_dir/summary.json``."""
    if path:
        return Path(path)
    if out_dir is None:
        raise ArgumentError("record: give out_dir or path")
    return Path(out_dir) / SUMMARY


def record(numbers: Mapping, out_dir: str | os.PathLike | None = None,
           path: str | os.PathLike | None = None) -> dict:
    """Write ``numbers`` (a mapping of names to numbers, strings, lists or mappings) to the summary file and
    return them as written (so a notebook cell shows them)."""
    strict = to_strict(dict(numbers))
    write_json(summary_path(out_dir, path), strict)
    return strict


def read(where: str | os.PathLike) -> dict:
    """The summary of a run: ``where`` is the JSON file or the ``out_dir`` holding ``summary.json``."""
    path = Path(where)
    if path.is_dir():
        path = path / SUMMARY
    return json.loads(path.read_text())
