"""Random generators seeded by a number and a name (a shard, a file stem): the same name draws the same numbers
whichever other names exist, in whatever order, on whichever worker."""

from __future__ import annotations

import hashlib

import numpy as np


def named_rng(seed: int, name: str, *more: int) -> np.random.Generator:
    """A generator seeded by ``(seed, 64 bits of sha256(name), *more)``."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"), *more])
