"""Strict JSON for every file this package writes: readable by any JSON parser (no NaN or Infinity).

Non-finite numbers become ``null``; numpy scalars and arrays become plain numbers and lists. Files are written
atomically (:mod:`deepjet_nb._atomic`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import numpy as np

from ._atomic import write_text_atomic


def to_strict(obj):
    """``obj`` with numpy types made plain and non-finite floats replaced by None (recursively)."""
    if isinstance(obj, Mapping):
        return {str(k): to_strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_strict(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def dumps(obj, *, indent: int | None = 1) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_strict`), ending in a newline."""
    return json.dumps(to_strict(obj), indent=indent, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj, *, indent: int | None = 1) -> None:
    """Write ``obj`` as strict JSON to ``path`` atomically."""
    write_text_atomic(path, dumps(obj, indent=indent))


def read_object(path: str | os.PathLike, *, error=ValueError, what: str = "file") -> dict:
    """The JSON object in ``path``; raises ``error`` naming the file when it is missing, not JSON or not an
    object (``what`` says what the file should have been, e.g. "converted dataset")."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    try:
        obj = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise error(f"{path}: must be a JSON object, got {type(obj).__name__}")
    return obj
