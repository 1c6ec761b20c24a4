"""Checks of library arguments: the wrong type or an out-of-range value is one :class:`ArgumentError` naming
the function and the argument, never a ``TypeError`` from deep inside (or a silently truncated value).

>>> integer(3, "jobs", "convert", minimum=1)
3
>>> integer("2", "jobs", "convert")
Traceback (most recent call last):
...
deepjet_nb.errors.ArgumentError: convert: jobs must be an integer, got '2'
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path

from .errors import ArgumentError

__all__ = ["integer", "number", "paths"]


def integer(value, name: str, what: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (Python or numpy integer, not bool, not a float such as 2.5) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{what}: {name} must be an integer, got {value!r}")
    return _bounded(int(value), name, what, minimum, maximum)


def number(value, name: str, what: str, *, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False) -> float:
    """``value`` as a finite float (int or float, not bool) within the bounds (``positive``: > 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ArgumentError(f"{what}: {name} must be a finite number, got {value!r}")
    value = float(value)
    if positive and not value > 0:
        raise ArgumentError(f"{what}: {name} must be > 0, got {value:g}")
    return _bounded(value, name, what, minimum, maximum)


def paths(inputs, what: str, name: str = "inputs") -> list[Path]:
    """Input paths as a list: one path (``str`` or path-like) or an iterable of them. Raises
    :class:`ArgumentError` for none or for an item that is not a path (a single string is one path, never a
    sequence of one-character names)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not isinstance(inputs, Iterable) or isinstance(inputs, (bytes, dict)):
        raise ArgumentError(f"{what}: {name} must be a path or a list of paths, got {type(inputs).__name__}")
    out = []
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)) or not os.fspath(item):
            raise ArgumentError(f"{what}: {name} must be paths, got {item!r}")
        out.append(Path(item))
    if not out:
        raise ArgumentError(f"{what}: no {name} given")
    return out


def _bounded(value, name, what, minimum, maximum):
    if minimum is not None and value < minimum:
        raise ArgumentError(f"{what}: {name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"{what}: {name} must be <= {maximum}, got {value!r}")
    return value
