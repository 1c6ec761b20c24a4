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

from .errors import ArgumentError, RunError

DEFAULT_DIR = Path("runs") / "tutorials" / "samples"
PROCESSES = ("ttbar", "qcd")
WEIGHTINGS = ("weight", "resample")


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


def dataset(config: str = "deepjet", events: int = 1500, seed: int = 1, *, weighting: str = "weight",
            directory: str | os.PathLike = DEFAULT_DIR, jobs: int = 1, progress: bool = True):
    """The example samples (:func:`samples`) converted with the data config ``config`` (a shipped name),
    made now unless already done; returns the opened :class:`~deepjet_nb.dataset.Dataset`.

    ``weighting``: how the pT–η reweighting to the b-jet reference is applied. ``"weight"`` (the tutorials'
    default) keeps every jet with a per-jet loss weight; ``"resample"`` (the shipped configs' setting) keeps a
    seeded random share of each class, which on samples this small leaves about a third of the jets and too few
    light jets to measure a 1 % mistag rate. The DeepCSV and DeepJet datasets made with ``"weight"`` hold the
    same jets, so their validation jets are the same too.
    """
    from .config import load_config
    from .convert import convert
    from .dataset import open_dataset

    if weighting not in WEIGHTINGS:
        raise ArgumentError(f"dataset: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    inputs = samples(events, seed, directory=directory, jobs=jobs, progress=progress)
    cfg = load_config(config).with_weighting(apply=weighting)
    suffix = "_weighted" if weighting == "weight" else ""
    out = Path(directory) / f"{Path(str(config)).stem}_{events}ev_seed{seed}{suffix}"
    result = convert(inputs, out, cfg, jobs=jobs, progress=progress)
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


# The tutorials' training recipes, chosen for the example dataset (1500 events per process, seed 1, every jet
# kept with its weight: about 7,400 training jets) by the validation-only procedure of deepjet_nb.recipes that
# chose the demo's, with a step budget that keeps each tutorial within a few minutes on two cores:
#   python benchmarks/recipes.py --data DIR --out runs/tutorial_recipes --seed 1 --models deepcsv deepjet \
#       --step-budget 3000
# (DIR holding deepcsv/ and deepjet/: the datasets tutorial_samples.dataset makes). Rerun it when the example
# samples change and paste the "demo_recipes" it prints last.
# Chosen on 2026-12-06 (7,357 training jets; best validation loss of the three learning rates 3e-4, 1e-3, 3e-3:
# DeepCSV 0.5821 / 0.5834 / 0.5793, DeepJet 1.0269 / 0.9978 / 0.9920; batch 64 for both, the smallest the
# scaling rule allows). Early stopping ended DeepCSV after 11 epochs (best 3, under a second each) and DeepJet
# after 26 (best 18, 6-7 s each with other jobs running).
RECIPES = {
    "deepcsv": {"batch_size": 64, "epochs": 27, "patience": 8, "lr_patience": 3, "freeze_input_bn_after": None,
                "lr": 0.003},
    "deepjet": {"batch_size": 64, "epochs": 27, "patience": 8, "lr_patience": 3, "freeze_input_bn_after": 1,
                "lr": 0.003, "lr_after_freeze": 0.003},
}


def recipe(model: str, **overrides) -> dict:
    """The tutorial recipe of ``model`` (:data:`RECIPES`) as ``Trainer`` keywords, with ``overrides`` that are
    not None (e.g. ``epochs=2`` for a quick look) taking precedence."""
    if model not in RECIPES:
        raise ArgumentError(f"recipe: no tutorial recipe for {model!r} (known: {sorted(RECIPES)})")
    return {**RECIPES[model], **{k: v for k, v in overrides.items() if v is not None}}
