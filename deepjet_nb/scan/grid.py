"""Grids of a parameter scan (:mod:`deepjet_nb.scan`): parsing ``KEY=V1,V2`` items, reading a notebook's
parameters, typing values like the notebook's defaults, expanding the grid into points, and spelling values."""

from __future__ import annotations

import ast
import difflib
import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from .._jsonio import to_strict
from ..errors import ArgumentError, one_line

SEED = "seed"
RESERVED = ("out_dir", "summary")  # set by the scan for every point
OUT = "out"                 # the notebook's out_dir, relative to the point directory (its working directory)
NOTEBOOKS = Path(__file__).resolve().parent.parent.parent / "notebooks"  # shipped pipeline notebooks (source checkout)
_ID_CHARS = re.compile(r"[^A-Za-z0-9._+=-]")


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["lr=1e-3,3e-3", "batch_size=256"]`` → ``{"lr": ["1e-3", "3e-3"], "batch_size": ["256"]}``.

    Values are split at commas outside brackets and quotes, so ``files=["a.root","b.root"],["c.root"]`` has two
    values. Raises :class:`ArgumentError` naming the item for a missing ``=``, an empty value or a key given
    twice.
    """
    grid = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ArgumentError(f"scan: grid item {item!r} is not KEY=VALUE[,VALUE...]")
        if key in grid:
            raise ArgumentError(f"scan: grid key {key!r} given twice")
        values = _split_values(text)
        if not values or any(not v for v in values):
            raise ArgumentError(f"scan: grid item {item!r} has an empty value")
        grid[key] = values
    return grid


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, object]:
    """The parameters of ``notebook`` (its cell tagged ``parameters``) and their default values.

    A default that is not a Python literal (an expression) is returned as its source text. Raises
    :class:`ArgumentError` when the notebook is missing or has no parameters cell.
    """
    import nbformat
    from papermill.translators import PythonTranslator

    path = resolve_notebook(notebook)
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as err:  # nbformat raises JSON, validation and OS errors of several kinds
        raise ArgumentError(f"{path}: not a readable notebook: {type(err).__name__}: {one_line(err)}") from None
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ArgumentError(f"{path}: no cell tagged 'parameters'; a scanned notebook needs one")
    # The points run in a Python kernel: read the cell as papermill's Python translator does.
    return {p.name: _literal(p.default) for p in PythonTranslator.inspect(cells[0])}


def typed_grid(notebook: str | os.PathLike, grid: Mapping[str, Sequence], *, seeds: int | None = None,
               parameters: Mapping[str, object] | None = None) -> dict[str, list]:
    """``grid`` with text values parsed to the types of the notebook's defaults, checked against the notebook.

    Non-text values (from Python) are kept. With ``seeds``, a last key ``seed`` takes the values 0 … seeds-1.
    Raises :class:`ArgumentError` naming the notebook and key for an unknown parameter (with near names), a
    reserved one (``out_dir``, ``summary``), a value of the wrong type, a key both in the grid and in
    ``parameters``, or ``seeds`` without a ``seed`` parameter.
    """
    path = resolve_notebook(notebook)
    defaults = notebook_parameters(path)
    if "out_dir" not in defaults:
        raise ArgumentError(f"{path}: no parameter 'out_dir'; a scanned notebook writes its outputs there")
    fixed = dict(parameters or {})
    for key in [*grid, *fixed]:
        _check_key(path, key, defaults)
    for key in set(grid) & set(fixed):
        raise ArgumentError(f"scan: parameter {key!r} is both in the grid and fixed")
    typed = {}
    for key, values in grid.items():
        values = list(values) if not isinstance(values, (str, bytes)) else [values]
        if not values:
            raise ArgumentError(f"scan: grid key {key!r} has no values")
        typed[key] = [_typed(path, key, v, defaults[key]) for v in values]
        if len({value_key(v) for v in typed[key]}) != len(typed[key]):
            raise ArgumentError(f"scan: grid key {key!r} has a value twice: {typed[key]}")
    if seeds is not None:
        if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
            raise ArgumentError(f"scan: seeds must be an integer >= 1, got {seeds!r}")
        if SEED not in defaults:
            raise ArgumentError(f"{path}: no parameter 'seed', so seeds={seeds} cannot be scanned")
        if SEED in typed or SEED in fixed:
            raise ArgumentError("scan: give either seeds or a 'seed' value, not both")
        typed[SEED] = list(range(seeds))
    return typed


class Point:
    """One grid point: its ``parameters`` (the grid's keys, in grid order) and its directory name ``id``.

    The id spells the parameters (``lr=0.001_batch_size=256_seed=0``); when that needs characters a file name
    should not have, or is long, a short hash of the parameters is appended so ids stay unique.
    """

    def __init__(self, parameters: Mapping[str, object]):
        self.parameters = dict(parameters)
        self.id = _point_id(self.parameters)

    def __repr__(self) -> str:
        return f"Point({self.id!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Point) and value_key(self.parameters) == value_key(other.parameters)

    def __hash__(self) -> int:
        return hash(self.id)

    def label(self, keys: Sequence[str] | None = None) -> str:
        """``lr=0.001, seed=0``: the values of ``keys`` (default all), for legends and messages."""
        keys = self.parameters if keys is None else keys
        return ", ".join(f"{k}={value_text(self.parameters[k])}" for k in keys)


def expand(grid: Mapping[str, Sequence]) -> list[Point]:
    """Every combination of the grid's values, the first key varying slowest (``seed`` last when present)."""
    keys = list(grid)
    return [Point(dict(zip(keys, values))) for values in itertools.product(*(grid[k] for k in keys))]


class Plan(NamedTuple):
    """What :func:`scan` runs: the scanned ``grid`` (typed), the ``fixed`` parameters and the ``points``."""

    grid: dict[str, list]
    fixed: dict[str, object]
    points: list[Point]


def plan(notebook: str | os.PathLike, grid: Mapping[str, Sequence], *, seeds: int | None = None,
         parameters: Mapping[str, object] | None = None) -> Plan:
    """The points :func:`scan` would run, checked against the notebook; nothing runs.

    The grid is typed (:func:`typed_grid`); a key with a single value joins the fixed ``parameters`` (it names
    no point and makes no column); text values naming existing files or directories are made absolute, since
    each point's notebook runs in its own directory. Raises what :func:`typed_grid` raises.
    """
    typed = typed_grid(notebook, grid, seeds=seeds, parameters=parameters)
    fixed = {**(parameters or {}), **{k: v[0] for k, v in typed.items() if len(v) == 1 and k != SEED}}
    fixed = to_strict({k: _absolute_paths(v) for k, v in fixed.items()})
    typed = {k: [_absolute_paths(v) for v in values] for k, values in typed.items() if len(values) > 1 or k == SEED}
    return Plan(typed, fixed, expand(typed))


def resolve_notebook(notebook: str | os.PathLike) -> Path:
    """The notebook file: a path, or the name of a shipped pipeline notebook (``train`` → notebooks/train.ipynb).
    Raises :class:`ArgumentError` when neither exists."""
    path = Path(notebook)
    if path.is_file():
        return path.resolve()
    shipped = NOTEBOOKS / f"{path.name}.ipynb"
    if path.suffix != ".ipynb" and len(path.parts) == 1 and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    raise ArgumentError(f"{notebook}: no such notebook (shipped pipeline notebooks: {', '.join(names)})")


def value_key(value) -> str:
    """An exact, hashable key of a parameter value (lists and mappings too): canonical JSON."""
    return json.dumps(to_strict(value), sort_keys=True)


def value_text(value) -> str:
    """A parameter value or number as people read it: ``0.001``, ``256``, ``deepcsv``, ``None``, ``[1, 2]``."""
    if value is None:
        return "None"
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(to_strict(value))


def _split_values(text: str) -> list[str]:
    values, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    values.append("".join(current).strip())
    return values


def _literal(source):
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError):
        return source


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _typed(path, key, value, default):
    """``value`` parsed to the type of ``default`` (text values only)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError("not a boolean")
            return text.lower() in _TRUE
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
        parsed = _literal(text)
        if isinstance(default, (list, tuple, dict)) and not isinstance(parsed, type(default)):
            raise ValueError(f"not a {type(default).__name__} literal")
        return parsed
    except ValueError as err:
        raise ArgumentError(f"{path}: parameter {key!r} (default {default!r}) cannot take {value!r}: {err}") from None


def _check_key(path, key, defaults):
    if key in RESERVED:
        raise ArgumentError(f"scan: parameter {key!r} is set by the scan for each point (DIR/points/<id>/{OUT})")
    if key not in defaults:
        near = difflib.get_close_matches(key, list(defaults), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; its parameters: {', '.join(defaults)}"
        raise ArgumentError(f"{path}: no parameter {key!r}{hint}")


def _absolute_paths(value):
    """Text naming an existing file or directory, made absolute: a point's notebook runs in the point's own
    directory, where a relative path would name nothing."""
    if isinstance(value, str) and value and not os.path.isabs(value) and os.path.exists(value):
        return str(Path(value).resolve())
    where, colon, name = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if colon and where.endswith(".py") and not os.path.isabs(where) and os.path.isfile(where):
        return f"{Path(where).resolve()}:{name}"  # a model builder of the user's own, path/to/file.py:function
    if isinstance(value, list):
        return [_absolute_paths(v) for v in value]
    return value


def _point_id(parameters: Mapping) -> str:
    if not parameters:
        return "defaults"
    spelled = "_".join(f"{k}={value_text(v)}" for k, v in parameters.items())
    clean = _ID_CHARS.sub("-", spelled)
    if clean == spelled and len(clean) <= 80 and not clean.startswith("."):
        return clean
    digest = hashlib.sha256(value_key(parameters).encode()).hexdigest()[:8]
    return f"{clean.lstrip('.')[:70]}-{digest}"
