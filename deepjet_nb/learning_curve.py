"""Learning curves: a tagger's efficiency at 1 % mistag against its number of training jets, next to the BDT.

Each tagger trains on shares of its dataset's training jets (``train_fraction``: the validation jets stay the
whole dataset's) with the demo's recipe procedure at each share (:mod:`deepjet_nb.recipes`: recipe scaled to
that many jets, learning rate chosen on the validation split only), then every seed; each point is scored on
held-out test files (bootstrap and seed errors) and against the reference on the same share (paired
bootstrap). Runs are ordinary run directories under ``out/runs/``, reused when finished (docs/reference.md,
"Learning curves"; command line: ``benchmarks/learning_curve.py``)::

    from deepjet_nb.learning_curve import learning_curve, plot_learning_curve
    result = learning_curve({"deepcsv": "data/deepcsv", "deepjet": "data/deepjet", "bdt_deepcsv": "data/deepcsv"},
                            ["test.root"], "runs/learning_curve")     # also out/learning_curve.json
    plot_learning_curve(result)   # b-eff vs training jets, and the difference to the BDT below
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._args import integer, number
from .batches import check_train_fraction
from .errors import ArgumentError, RunError

__all__ = ["LEARNERS", "FAMILIES", "FRACTIONS", "MISTAG", "RESULT_FILE", "learning_curve", "crossing_point",
           "datasets_in", "plot_learning_curve"]

MISTAG = 0.01
FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1.0)
RESULT_FILE = "learning_curve.json"


class Learner(NamedTuple):
    """How a tagger trains: ``model`` a built-in network (None: the BDT of :mod:`deepjet_nb.bdt`), ``config``
    the data config of its dataset, ``family`` its :data:`FAMILIES` entry, ``options`` Trainer keywords."""

    model: str | None
    config: str
    family: str
    options: dict | None = None


class Family(NamedTuple):
    """Taggers scored alike: the ``task`` of their prediction files and their default ``reference``."""

    task: str
    reference: str


LEARNERS = {
    "deepcsv": Learner("deepcsv", "deepcsv", "flavour"),
    "deepjet": Learner("deepjet", "deepjet", "flavour"),
    "bdt_deepcsv": Learner(None, "deepcsv", "flavour"),
    # the fat-jet datasets are small: read once and shuffled across all files
    "pcnn": Learner("pcnn", "fatjet", "boosted", {"in_memory": True}),
    "bdt_substructure": Learner(None, "fatjet_substructure", "boosted"),
}
FAMILIES = {"flavour": Family("b_vs_udsg", "bdt_deepcsv"), "boosted": Family("top_vs_qcd", "bdt_substructure")}


def learning_curve(datasets: Mapping[str, str], test_files, out, *, fractions: Sequence[float] = FRACTIONS,
                   seeds: Sequence[int] = (1, 2), reference: str | None = None, choose_lr: bool = True,
                   lr: Mapping[str, float] | None = None, grid: Mapping | None = None, bdt_grid: Mapping | None = None,
                   scale: Mapping | None = None, n_boot: int | None = None, weights: str = "loss", log=print,
                   **options) -> dict:
    """Train every tagger of ``datasets`` (:data:`LEARNERS` name → converted dataset) on each share of
    ``fractions`` of its training jets with every seed, predict on ``test_files`` (one list, or family → list)
    and score it against ``reference`` (default: its family's, :data:`FAMILIES`) on the same share.

    ``choose_lr``: choose the learning rate (and batch: :func:`deepjet_nb.recipes.candidates` with ``grid``
    keywords; the BDT: ``bdt_grid``) at every share on the validation split with the first seed; a tagger in
    ``lr`` keeps that value, as does every one without ``choose_lr`` (default: the CMS recipe's, the BDT's).
    ``scale``: keywords of :func:`~deepjet_nb.recipes.scale_recipe` (``max_epochs``, ...) for every network,
    or tagger → keywords (e.g. ``{"deepjet": {"max_epochs": 5}}``: DeepJet is the slow one); ``n_boot``:
    bootstrap replicas; ``weights``: how every tagger, the BDT too, uses the jets' pT–η weights
    (:func:`deepjet_nb.batches.draw_by_weight`); ``options``: keywords of every network's
    :class:`~deepjet_nb.train.Trainer`.

    Returns (and writes to ``out/learning_curve.json``) ``{"mistag", "fractions", "seeds", "points",
    "crossings"}``: per tagger and share ``eff`` (mean over seeds of the efficiency at :data:`MISTAG`),
    ``eff_err`` (first seed's bootstrap), ``eff_seed_std``, ``diff`` (mean over seeds of tagger − reference of
    the same seed), ``diff_err`` (first seed's paired bootstrap), ``diff_seed_std``, ``n_train``, ``recipe``,
    ``runs``, ``predictions``; per tagger the :func:`crossing_point` of its differences (``n_train``, None when
    they keep their sign) and ``ahead_at_largest``. Raises :class:`ArgumentError` for an unknown tagger, bad
    shares, seeds or learning rates, missing test files.
    """
    from ._jsonio import write_json

    tests = _test_files(test_files, {LEARNERS[t].family for t in _checked_taggers(datasets)})
    seeds = _checked_seeds(seeds)
    fractions = sorted({check_train_fraction(f, "learning_curve") for f in fractions})
    references = _references(reference)
    settings = {"choose_lr": bool(choose_lr), "lr": _checked_lr(lr), "grid": dict(grid or {}),
                "bdt_grid": dict(bdt_grid) if bdt_grid else None, "scale": _checked_scale(scale),
                "options": {**options, "weights": _checked_weights(weights)}, "log": log}
    out = Path(out)
    points = [_point(tagger, str(data), fraction, seeds, out, tests[LEARNERS[tagger].family], settings)
              for tagger, data in datasets.items() for fraction in fractions]
    _score(points, references, {} if n_boot is None else {"n_boot": integer(n_boot, "n_boot", "learning_curve")})
    result = {"mistag": MISTAG, "fractions": fractions, "seeds": seeds, "points": points,
              "crossings": _crossings(points)}
    write_json(out / RESULT_FILE, result)
    return result


def crossing_point(n_train: Sequence[float], differences: Sequence[float | None]) -> float | None:
    """The number of training jets at which ``differences`` (tagger − reference at each ``n_train``) first
    changes sign, interpolated linearly in log(n_train) between the two points around it; None when the
    defined differences keep one sign (or there are fewer than two).

    >>> crossing_point([1000, 4000], [-0.02, 0.02])
    2000.0
    """
    pairs = sorted((n, d) for n, d in zip(n_train, differences) if d is not None)
    for (n0, d0), (n1, d1) in zip(pairs, pairs[1:]):
        if d0 != 0 and d0 * d1 <= 0:
            share = d0 / (d0 - d1)
            return float(round(math.exp(math.log(n0) + share * (math.log(n1) - math.log(n0))), 6))
    return None


def datasets_in(directory, taggers: Sequence[str]) -> dict[str, str]:
    """``{tagger: directory/<config>}``: the converted dataset each tagger of ``taggers`` trains on, in a
    directory holding one dataset per data config (``deepcsv/``, ``deepjet/``, ``fatjet/`` …)."""
    _checked_taggers(taggers)
    return {t: str(Path(directory) / LEARNERS[t].config) for t in taggers}


def plot_learning_curve(result: dict, **kwargs):
    """The figure of :class:`deepjet_nb.plots.learning.LearningCurvePlot` for a :func:`learning_curve` result."""
    from .plots.learning import LearningCurvePlot

    return LearningCurvePlot(result, **kwargs).draw()


# ---------------------------------------------------------------------------------------------------------
# training one point


def _point(tagger, data, fraction, seeds, out, test_files, settings) -> dict:
    """Train (or reuse) ``tagger`` at ``fraction`` with every seed and predict on the test files."""
    from .recipes import train_jets

    learner = LEARNERS[tagger]
    where = out / "runs" / tagger / f"fraction={fraction:g}"
    n_train = train_jets(data, seed=seeds[0], train_fraction=fraction, weights=settings["options"]["weights"])
    recipe, runs = _recipe(tagger, data, fraction, n_train, seeds[0], where, settings)
    for seed in seeds:
        if seed not in runs:
            runs[seed] = where / f"seed={seed}"
            _train(learner, data, runs[seed], seed, fraction, recipe, settings)
    predictions = [_predict(learner, runs[seed], test_files,
                            out / "predictions" / tagger / f"fraction={fraction:g}_seed={seed}.root")
                   for seed in seeds]
    settings["log"](f"{tagger} at {fraction:g} ({n_train} training jets): {recipe}")
    return {"tagger": tagger, "family": learner.family, "task": FAMILIES[learner.family].task,
            "fraction": fraction, "n_train": n_train, "recipe": recipe, "seeds": seeds,
            "runs": [str(runs[s]) for s in seeds], "predictions": [str(p) for p in predictions]}


def _recipe(tagger, data, fraction, n_train, seed, where, settings) -> tuple[dict, dict]:
    """The recipe at this share, and the runs it already trained: ``{seed: run directory}`` (the chosen
    candidate is the first seed's run)."""
    from . import recipes
    from .bdt import DEFAULTS
    from .train_config import RECIPES

    learner, given = LEARNERS[tagger], settings["lr"].get(tagger)
    search = settings["choose_lr"] and given is None
    if learner.model is None and not search:
        return {"learning_rate": given or DEFAULTS["learning_rate"]}, {}
    if learner.model is None:
        chosen = recipes.choose_bdt(data, where / "choose", seed=seed, grid=settings["bdt_grid"],
                                    train_fraction=fraction, weights=settings["options"]["weights"])["chosen"]
        return chosen, {seed: where / "choose" / recipes.bdt_candidate_id(chosen)}
    if search:
        grid = recipes.candidates(learner.model, n_train, **settings["grid"], **settings["scale"](tagger))
        chosen = recipes.choose(learner.model, data, where / "choose", seed=seed, grid=grid, log=settings["log"],
                                train_fraction=fraction, **(learner.options or {}), **settings["options"])["chosen"]
        return chosen, {seed: where / "choose" / recipes.candidate_id(chosen)}
    recipe = {**recipes.scale_recipe(learner.model, n_train, **settings["scale"](tagger)),
              "lr": given or RECIPES[learner.model]["lr"]}
    if recipe["freeze_input_bn_after"]:
        recipe["lr_after_freeze"] = recipe["lr"]  # as the recipe search's candidates do
    return recipe, {}


def _train(learner, data, run_dir, seed, fraction, recipe, settings) -> None:
    """Train one seed into ``run_dir`` unless a finished run is there (an interrupted one is continued)."""
    from .bdt import train_bdt
    from .run import Run

    run = Run(run_dir)
    if learner.model is None and not run.exists:  # a BDT run is written only when finished
        train_bdt(data, run_dir, seed=seed, train_fraction=fraction, weights=settings["options"]["weights"], **recipe)
    elif learner.model is None and any(run.train_config()["hyper"].get(k) != v for k, v in recipe.items()):
        raise RunError(f"{run_dir}: holds a BDT run with {run.train_config()['hyper']}, not {recipe}; remove it or "
                       f"use another output directory")  # as the Trainer refuses to resume a changed recipe
    elif learner.model is not None:  # a finished run is loaded, not trained; one with fewer epochs continues
        import keras

        from .train import Trainer

        Trainer(learner.model, data, run_dir, resume="auto", dashboard="off", seed=seed, train_fraction=fraction,
                **recipe, **(learner.options or {}), **settings["options"]).fit()
        keras.backend.clear_session()  # Keras keeps the graphs of every model built in the process otherwise


def _predict(learner, run_dir, test_files, path: Path) -> Path:
    from .bdt import predict_bdt
    from .predict import predict

    if path.is_file() and path.stat().st_mtime_ns >= _trained_at(run_dir):
        return path
    if learner.model is None:
        return predict_bdt(run_dir, test_files, path, progress=False)
    # the best checkpoint: the recipe search scores its candidates by their best validation loss
    return predict(run_dir, test_files, path, which="best", progress=False)


def _trained_at(run_dir) -> int:
    """When the run's newest model file was written: a prediction older than that (a run continued with more
    epochs) is made again."""
    return max((p.stat().st_mtime_ns for p in Path(run_dir).rglob("*") if p.suffix in (".keras", ".joblib")),
               default=0)


# ---------------------------------------------------------------------------------------------------------
# scoring


def _score(points: list[dict], references: dict, boot: dict) -> None:
    """Add the efficiencies, seed spreads and differences to the reference to every point (in place)."""
    from .performance import difference, seed_spread, task_metrics

    read, key = _reader(), f"{MISTAG:g}"
    by_key = {(p["tagger"], p["fraction"]): p for p in points}
    for point in points:
        task, taggers = point["task"], read(point)
        replicas = [boot] + [{"n_boot": 0}] * (len(taggers) - 1)  # the first seed's bootstrap errors only
        entries = [task_metrics(t, task, (MISTAG,), **r) for t, r in zip(taggers, replicas)]
        spread = seed_spread(taggers, tasks=[task], mistags=(MISTAG,))[task] if len(taggers) > 1 else None
        point.update(eff_seeds=[e["eff_at_mistag"][key] for e in entries], eff_err=entries[0]["eff_at_mistag_err"][key],
                     eff_seed_std=spread["eff_at_mistag_seed_std"][key] if spread else None)
        point["eff"] = _mean(point["eff_seeds"])
        reference = by_key.get((references[point["family"]], point["fraction"]))
        point["reference"] = reference["tagger"] if reference and reference is not point else None
        diffs = [difference(t, r, task, (MISTAG,), **b) for t, r, b in zip(taggers, read(reference), replicas)] \
            if point["reference"] else []
        values = [d["eff_at_mistag"][key] for d in diffs]
        point.update(diff_seeds=values, diff=_mean(values), diff_seed_std=_std(values),
                     diff_err=diffs[0]["eff_at_mistag_err"][key] if diffs else None)


def _reader():
    """``read(point)``: the taggers of a point's prediction files (one per seed), each file read once."""
    from .boosted import read_fat_jets
    from .evaluate import read_predictions

    cache = {}

    def read_one(point, i, path):
        if path not in cache:
            name = f"{point['tagger']}_seed{point['seeds'][i]}"
            cache[path] = read_fat_jets(path, name=name, tasks=[point["task"]]) if point["family"] == "boosted" \
                else read_predictions(path, name=name)
        return cache[path]

    return lambda point: [read_one(point, i, path) for i, path in enumerate(point["predictions"])]


def _crossings(points: list[dict]) -> dict:
    out = {}
    for tagger in dict.fromkeys(p["tagger"] for p in points if p["reference"]):
        mine = sorted((p for p in points if p["tagger"] == tagger), key=lambda p: p["n_train"])
        defined = [p["diff"] for p in mine if p["diff"] is not None]
        out[tagger] = {"reference": mine[0]["reference"],
                       "n_train": crossing_point([p["n_train"] for p in mine], [p["diff"] for p in mine]),
                       "ahead_at_largest": bool(defined[-1] > 0) if defined else None}
    return out


def _mean(values):
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _std(values):  # over seeds, ddof 1 as deepjet_nb.performance.seed_spread
    defined = [v for v in values if v is not None]
    return float(np.std(defined, ddof=1)) if len(defined) > 1 else None


# ---------------------------------------------------------------------------------------------------------
# arguments


def _checked_taggers(taggers) -> list[str]:
    for tagger in taggers:
        if tagger not in LEARNERS:
            raise ArgumentError(f"learning_curve: unknown tagger {tagger!r}", key=tagger, choices=list(LEARNERS))
    if not taggers:
        raise ArgumentError("learning_curve: no taggers given")
    return list(taggers)


def _checked_seeds(seeds) -> list[int]:
    seeds = [integer(s, "seeds", "learning_curve") for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ArgumentError(f"learning_curve: seeds must be distinct and at least one, got {seeds}", key="seeds")
    return seeds


def _checked_lr(lr) -> dict:
    lr = dict(lr or {})
    if lr:
        _checked_taggers(lr)
    return {t: number(v, f"lr[{t!r}]", "learning_curve", positive=True) for t, v in lr.items()}


def _checked_weights(weights) -> str:
    from .batches import WEIGHT_USES

    if weights not in WEIGHT_USES:
        raise ArgumentError(f"learning_curve: weights must be one of {WEIGHT_USES}, got {weights!r}", key="weights")
    return weights


def _checked_scale(scale):
    """``tagger -> scale_recipe keywords`` from keywords for all or a mapping tagger → keywords."""
    scale = dict(scale or {})
    if not set(scale) & set(LEARNERS):
        return lambda tagger: scale
    _checked_taggers(scale)
    return lambda tagger: dict(scale.get(tagger) or {})


def _references(reference) -> dict[str, str]:
    """The reference tagger of each family: its default, or ``reference`` for the family of that tagger."""
    chosen = {} if reference is None else {LEARNERS[_checked_taggers([reference])[0]].family: reference}
    return {name: chosen.get(name, family.reference) for name, family in FAMILIES.items()}


def _test_files(test_files, families) -> dict[str, list]:
    """The test files of each family: one list for all, or a mapping family → files."""
    from .rootio import input_files

    given = test_files if isinstance(test_files, Mapping) else {f: test_files for f in families}
    missing = sorted(set(families) - set(given))
    if missing:
        raise ArgumentError(f"learning_curve: no test_files for {missing}", key=missing[0], choices=list(given))
    return {f: input_files(given[f], "learning_curve", f"test_files[{f!r}]") for f in families}
