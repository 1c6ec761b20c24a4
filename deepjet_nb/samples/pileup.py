"""Pile-up from Pythia 8 minimum-bias events: a library generated once, overlaid on every hard event.

Overlaying µ ≈ 30 freshly generated minimum-bias events on each hard event would cost more than the hard
events themselves, so, like CMS's pre-mixed pile-up, the overlay draws from a finite library: ``LIBRARY_EVENTS``
inelastic events (Pythia ``SoftQCD:inelastic``, 13 TeV, the generator settings of the hard events), generated
once and cached on disk. Each pile-up interaction of a hard event takes a random library event, rotated by a
random azimuth, mirrored in z with probability 1/2, and moved to its own vertex (x, y ~ N(0, 10 µm), z ~
N(0, 4 cm): the beam spot). Its particles keep their production points relative to that vertex, so K⁰S, Λ and
other decays of pile-up particles are displaced as in the minimum-bias event itself; they then go through the
same detector model as the hard event's particles (:mod:`deepjet_nb.samples.detector`).

Only what the detector can see is kept: final-state charged particles with pT > 0.8 GeV and |η| < 2.6 (tracks
need 1 GeV), neutral particles with E > 0.8 GeV and |η| < 3.1 (calorimeter thresholds 1 and 2 GeV). A library
event also records how many charged particles it has with pT > 0.2 GeV in |η| < 2.5, the tracks CMS's
primary-vertex finder uses: a pile-up vertex counts in ``npv`` when at least 4 of them are reconstructed (each
with the prompt-track efficiency), CMS's vertex quality ndof > 4 (docs/reference.md §5).

The library's content depends only on (``events``, ``seed``) and the Pythia version, so it is cached under
``$DEEPJET_NB_CACHE`` (default ``~/.cache/deepjet-nb``) as ``minbias-<events>ev-seed<seed>.npz``: written once
atomically, read by every worker and every later sample. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._atomic import atomic_path

LIBRARY_EVENTS = 5000  # each used ~30 times per 1000 hard events at mu = 30; rotations make the overlays differ
LIBRARY_SEED = 20_160_000
CHARGED_PT_MIN, CHARGED_ETA_MAX = 0.8, 2.6
NEUTRAL_E_MIN, NEUTRAL_ETA_MAX = 0.8, 3.1
VERTEX_TRACK_PT_MIN, VERTEX_TRACK_ETA_MAX = 0.2, 2.5
FORMAT_VERSION = 1
_BLOCK = 500  # library events per Pythia batch


@dataclass(frozen=True)
class Library:
    """Minimum-bias events as flat arrays (numba-ready, float64 / int32)."""

    offsets: np.ndarray  # int64 (n_events + 1,)
    pid: np.ndarray  # int32
    charge: np.ndarray  # float64
    p4: np.ndarray  # (4, n) px, py, pz, e in GeV
    vertex: np.ndarray  # (3, n) production point relative to the interaction, mm
    vertex_tracks: np.ndarray  # int32 (n_events,): charged particles usable by the primary-vertex finder

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def empty(cls) -> Library:
        """No library: the kernels' signature for samples without pile-up."""
        return cls(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0), np.zeros((4, 0)), np.zeros((3, 0)),
                   np.zeros(0, np.int32))


def cache_dir() -> Path:
    return Path(os.environ.get("DEEPJET_NB_CACHE") or Path.home() / ".cache" / "deepjet-nb")


def library_path(events: int = LIBRARY_EVENTS, seed: int = LIBRARY_SEED) -> Path:
    return cache_dir() / f"minbias-{events}ev-seed{seed}.npz"


def ensure_library(events: int = LIBRARY_EVENTS, seed: int = LIBRARY_SEED, *, progress: bool = False) -> Path:
    """The library file, generated first if it is not in the cache (about 8 ms per event on one core)."""
    path = library_path(events, seed)
    if _readable(path, events):
        return path
    arrays = _generate(events, seed, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, format_version=FORMAT_VERSION, pythia=_pythia_version(), **arrays)
    return path


@functools.lru_cache(maxsize=2)
def load_library(events: int = LIBRARY_EVENTS, seed: int = LIBRARY_SEED) -> Library:
    """The library (made first where the cache lacks it; a worker keeps the one it loaded)."""
    with np.load(ensure_library(events, seed)) as data:
        return Library(**{name: np.ascontiguousarray(data[name]) for name in
                          ("offsets", "pid", "charge", "p4", "vertex", "vertex_tracks")})


def _readable(path: Path, events: int) -> bool:
    try:
        with np.load(path) as data:
            return (int(data["format_version"]) == FORMAT_VERSION and str(data["pythia"]) == _pythia_version()
                    and len(data["offsets"]) == events + 1)
    except (OSError, KeyError, ValueError):
        return False  # absent, truncated or from another version: made again


def _pythia_version() -> str:
    from importlib.metadata import version

    return version("pythia8mc")


def _generate(events: int, seed: int, progress: bool) -> dict:
    from tqdm.auto import tqdm

    from .pythia import EventGenerator, block_seed

    generator = EventGenerator("minbias")
    parts = []
    with tqdm(total=events, desc="pile-up library (minimum bias)", unit="event", disable=not progress) as bar:
        for block, start in enumerate(range(0, events, _BLOCK)):
            n = min(_BLOCK, events - start)
            parts.append(_visible(generator.generate(n, block_seed(seed, block))))
            bar.update(n)
    counts = np.concatenate([p["counts"] for p in parts])
    offsets = np.zeros(events + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return {"offsets": offsets, **{key: np.concatenate([p[key] for p in parts], axis=-1)
                                   for key in ("pid", "charge", "p4", "vertex", "vertex_tracks")}}


def _visible(batch) -> dict:
    """What the detector can see of each event, with production points relative to the interaction."""
    event = np.repeat(np.arange(batch.n_events), np.diff(batch.offsets))
    origin = batch.offsets[:-1] + 1  # Pythia's entry 1: the incoming beam particle, at the interaction point
    pt = np.hypot(batch.px, batch.py)
    eta = np.arcsinh(batch.pz / np.maximum(pt, 1e-12))
    final = (batch.status > 0) & ~np.isin(np.abs(batch.pid), (12, 14, 16))
    charged = batch.charge != 0
    keep = final & np.where(charged, (pt > CHARGED_PT_MIN) & (np.abs(eta) < CHARGED_ETA_MAX),
                            (batch.e > NEUTRAL_E_MIN) & (np.abs(eta) < NEUTRAL_ETA_MAX))
    usable = final & charged & (pt > VERTEX_TRACK_PT_MIN) & (np.abs(eta) < VERTEX_TRACK_ETA_MAX)
    ev = event[keep]
    return {
        "counts": np.bincount(ev, minlength=batch.n_events),
        "pid": batch.pid[keep].astype(np.int32),
        "charge": batch.charge[keep].astype(np.float64),
        "p4": np.stack([batch.px[keep], batch.py[keep], batch.pz[keep], batch.e[keep]]),
        "vertex": np.stack([batch.vx[keep] - batch.vx[origin][ev], batch.vy[keep] - batch.vy[origin][ev],
                            batch.vz[keep] - batch.vz[origin][ev]]),
        "vertex_tracks": np.bincount(event[usable], minlength=batch.n_events).astype(np.int32),
    }
