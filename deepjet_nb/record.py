"""The numbers a notebook run produced, in one JSON file: what tests, parameter scans and batch jobs read back.

Every notebook of the project ends by recording its figures with :func:`record`: ``out_dir/summary.json``
unless its ``summary`` parameter names another file. The file is strict JSON (a NaN is written as null).

>>> from deepjet_nb.record import record, read
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


class Numbers(dict):
    """The numbers as written: a plain dict, which a notebook shows one name per line, nested mappings indented
    and floats to 4 significant digits (the file keeps every digit)."""

    def _repr_pretty_(self, printer, cycle):
        printer.text("\n".join(_lines(self)) if not cycle else "{...}")


def record(numbers: Mapping, out_dir: str | os.PathLike | None = None,
           path: str | os.PathLike | None = None) -> Numbers:
    """Write ``numbers`` (a mapping of names to numbers, strings, lists or mappings) to the summary file and
    return them as written (so a notebook cell shows them, readably: :class:`Numbers`)."""
    strict = to_strict(dict(numbers))
    write_json(summary_path(out_dir, path), strict)
    return Numbers(strict)


def read(where: str | os.PathLike) -> dict:
    """The summary of a run: ``where`` is the JSON file or the ``out_dir`` holding ``summary.json``."""
    path = Path(where)
    if path.is_dir():
        path = path / SUMMARY
    return json.loads(path.read_text())


def _lines(numbers: Mapping, indent: str = "") -> list[str]:
    lines = []
    for name, value in numbers.items():
        if isinstance(value, Mapping) and value:
            lines += [f"{indent}{name}:", *_lines(value, indent + "    ")]
        else:
            lines.append(f"{indent}{name}: {_shown(value)}")
    return lines


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(map(_shown, value)) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return "None" if value is None else str(value)
