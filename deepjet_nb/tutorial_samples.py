"""The tutorials' sample cache: small generated samples and converted datasets, made once, then reused.

Generating the tt̄ and QCD samples of a tutorial takes a minute or two. The tutorials (and anyone else) ask
this module for them by size and seed; the files are made once under a shared directory and found there the
next time, by the same or another notebook. A converted dataset of them is made and reused the same way.

>>> from deepjet_nb import tutorial_samples
>>> ttbar, qcd = tutorial_samples.samples(events=1500, seed=1)             # doctest: +SKIP
>>> dataset = tutorial_samples.dataset("deepcsv", events=1500, seed=1)     # doctest: +SKIP

Every file is written atomically, so an interrupted generation is simply redone.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import RunError

DEFAULT_DIR = Path("runs") / "tutorials" / "samples"
PROCESSES = ("ttbar", "qcd")


def sample_path(process: str, events: int, seed: int, directory: str | os.PathLike = DEFAULT_DIR) -> Path:
    """Where the example sample of ``process`` with ``events`` events and ``seed`` lives."""
    return Path(directory) / f"{process}_{events}ev_seed{seed}.root"


def samples(events: int = 1500, seed: int = 1, *, processes=PROCESSES, directory: str | os.PathLike = DEFAULT_DIR,
            jobs: int = 1, progress: bool = True) -> list[Path]:
    """Paths of one sample per process (``events`` events each; process ``i`` seeded with ``seed + i``),
    generated now if they do not exist yet. Raises what :func:`deepjet_nb.samples.generate` raises."""
    from .samples import generate

    paths = []
    for i, process in enumerate(processes):
        path = sample_path(process, events, seed + i, directory)
        if not path.is_file():
            generate(process, events, path, seed=seed + i, jobs=jobs, progress=progress)
        paths.append(path)
    return paths


def dataset(config: str = "deepjet", events: int = 1500, seed: int = 1, *,
            directory: str | os.PathLike = DEFAULT_DIR, jobs: int = 1, progress: bool = True):
    """The example samples (:func:`samples`) converted with the data config ``config`` (a shipped name),
    made now unless already done; returns the opened :class:`~deepjet_nb.dataset.Dataset`."""
    from .convert import convert
    from .dataset import open_dataset

    inputs = samples(events, seed, directory=directory, jobs=jobs, progress=progress)
    out = Path(directory) / f"{Path(str(config)).stem}_{events}ev_seed{seed}"
    result = convert(inputs, out, config, jobs=jobs, progress=progress)
    if not result.ok:
        raise RuntimeError(f"{out}: conversion failed: {result.failed}")
    return open_dataset(out)


def finished_run(path: str | os.PathLike, *, made_by: str):
    """The finished training run in ``path``, or :class:`RunError` saying which notebook or command makes it.

    ``made_by`` names it, e.g. ``"tutorials/03_train_deepcsv.ipynb"``. Checked before any slow work starts.
    """
    from .run import MODEL, Run

    run = Run(path)
    if not run.file(MODEL).is_file():
        raise RunError(f"{run.path}: no trained model here ({run.status()}); run {made_by} first, it writes "
                       f"this run directory")
    return run
