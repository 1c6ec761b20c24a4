"""Names that users choose and that end up in file names or array keys: one rule for what a name may be.

Two kinds of name:

- *identifiers* (input groups, classes, spectators of a data config): ``[A-Za-z_][A-Za-z0-9_]*``, because they
  become array file names of a converted dataset, ONNX input names and branch names (``prob_is<Class>``);
  :func:`identifier_problem` says what is wrong with one, and the data config refuses it naming the key.
- *free names* (tagger names, scan parameters, metric names): anything a user types; :func:`safe_name` turns one
  into a file-name stem that stays inside its directory and within the file-system's name length.

Example::

    >>> from deepjet_nb.names import safe_name, identifier_problem
    >>> safe_name("deepjet")
    'deepjet'
    >>> safe_name("../../evil")
    '______evil_0fbfd372'
    >>> len(safe_name("x" * 300)) <= 64
    True
    >>> identifier_problem("cpf"), identifier_problem("../evil")
    (None, "'../evil' is not an identifier (letters, digits and '_', not starting with a digit)")
"""

from __future__ import annotations

import hashlib
import re

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What every shard of a converted dataset holds besides its input groups (docs/formats.md §2): an input group
# of one of these names would overwrite it.
DATASET_ARRAYS = ("label", "weight", "spectators")
MAX_STEM = 64  # well below the 255 bytes of common file systems, leaving room for prefixes and suffixes
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_HASH_CHARS = 8


def identifier_problem(name) -> str | None:
    """What makes ``name`` unusable as an identifier, or None when it is one."""
    if not isinstance(name, str) or IDENTIFIER.fullmatch(name) is None:
        return f"{name!r} is not an identifier (letters, digits and '_', not starting with a digit)"
    return None


def safe_name(name: str, *, max_length: int = MAX_STEM) -> str:
    """A file-name stem for ``name``: letters, digits, ``_`` and ``-`` kept, anything else (``/``, ``.``,
    spaces, ``=``) replaced by ``_``, a leading ``-`` too (it would read as a command-line option), at most
    ``max_length`` characters. A name that had to change ends in ``_`` + a short hash of itself, so names
    that differ only in replaced or cut characters ("a.v1", "a.v2", two long names) get different stems.
    """
    if max_length < 2 * _HASH_CHARS:
        raise ValueError(f"safe_name: max_length must be at least {2 * _HASH_CHARS}, got {max_length}")
    text = str(name)
    stem = _UNSAFE.sub("_", text)
    if stem.startswith("-"):
        stem = "_" + stem[1:]
    if stem == text and 0 < len(stem) <= max_length:
        return stem
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{stem[:max_length - _HASH_CHARS - 1]}_{digest}"

