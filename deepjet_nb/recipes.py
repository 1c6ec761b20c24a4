"""Training recipes scaled to the sample, and one procedure that chooses them for every tagger alike.

The CMS recipes (docs/reference.md §4) were made for millions of jets: DeepCSV's batch of 10,000 gives a
sample of 64k training jets 6 steps per epoch. Comparing taggers trained with unequal effort measures the
effort, not the taggers, so here every network gets the same rule and the same search:

- :func:`scale_recipe`: the batch is the largest power of two that gives an epoch at least
  :data:`MIN_STEPS_PER_EPOCH` steps (between :data:`MIN_BATCH` and the CMS batch), and the epoch cap gives
  every tagger the same budget of :data:`STEP_BUDGET` steps; Adam, the plateau schedule (lr halved after
  ``lr_patience`` epochs without a lower validation loss) and early stopping (``patience``) for all. DeepJet
  keeps its input batch norms frozen after epoch 1 (part of the architecture's recipe) but not CMS's drop of
  the learning rate to 1e-4 there, which came after an epoch of millions of jets: the plateau schedule decides
  when the rate goes down, as for the other taggers.
- :func:`choose`: trains each candidate of the same grid (learning rate × batch, :func:`candidates`) with one
  seed on the training split, scores it by its best validation loss (the quantity early stopping and the best
  checkpoint use), and picks the lowest. Only the validation split is looked at; the test sample never. Each
  candidate is an ordinary run directory, so a rerun reuses finished candidates and continues an interrupted
  one.
- :func:`choose_bdt`: the same for the gradient-boosted-tree reference (:mod:`deepjet_nb.bdt`): a grid of
  learning rate × leaves, early stopping on the same validation split, scored by the same validation loss.

``benchmarks/recipes.py`` runs the whole procedure on the demo's converted datasets and prints the chosen
recipes; the demo trains with what it printed (``deepjet_nb/demo.py``, ``DEMO_RECIPES``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from .errors import ArgumentError, DeepJetError

__all__ = ["MIN_STEPS_PER_EPOCH", "MIN_BATCH", "STEP_BUDGET", "LEARNING_RATES", "BATCH_FACTORS", "BDT_GRID",
           "scale_recipe", "candidates", "candidate_id", "bdt_candidate_id", "choose", "choose_bdt", "train_jets"]

MIN_STEPS_PER_EPOCH = 100
MIN_BATCH = 64
STEP_BUDGET = 6000        # most optimizer steps a training may take (early stopping usually ends it sooner)
MAX_EPOCHS = 60
PATIENCE = 8              # early stopping: epochs without a lower validation loss
LR_PATIENCE = 3           # plateau schedule: epochs without a lower validation loss before the lr is halved
LEARNING_RATES = (3e-4, 1e-3, 3e-3)
BATCH_FACTORS = (1, 0.5)  # the scaled batch, and half of it (twice the steps)
BDT_GRID = {"learning_rate": (0.05, 0.1, 0.2), "max_leaf_nodes": (31, 63)}
SCORE = "best_val_loss"   # a candidate's score: the lowest validation loss of its run


def scale_recipe(model: str, n_train: int, *, min_steps: int = MIN_STEPS_PER_EPOCH,
                 step_budget: int = STEP_BUDGET, max_epochs: int = MAX_EPOCHS) -> dict:
    """The training recipe of ``model`` for ``n_train`` training jets: :class:`~deepjet_nb.train.TrainConfig`
    fields (``batch_size``, ``epochs``, ``patience``, ``lr_patience``, ``freeze_input_bn_after``, and
    ``lr_after_freeze`` for a model that freezes; the learning rate is left to :func:`choose`).

    ``batch_size``: the largest power of two with at least ``min_steps`` steps per epoch, clipped to
    [:data:`MIN_BATCH`, the CMS batch of the model]; ``epochs``: ``step_budget`` steps at that batch, at most
    ``max_epochs``. Raises :class:`ArgumentError` for an unknown model or a non-positive number of jets.

    >>> scale_recipe("deepcsv", 64_000)["batch_size"], scale_recipe("deepcsv", 64_000)["epochs"]
    (512, 48)
    """
    from .train import RECIPES

    if model not in RECIPES:
        raise ArgumentError(f"scale_recipe: unknown model {model!r} (known: {sorted(RECIPES)})")
    if not isinstance(n_train, int) or n_train < 1:
        raise ArgumentError(f"scale_recipe: n_train must be a positive number of jets, got {n_train!r}")
    cms = RECIPES[model]
    batch = 2 ** max(0, math.floor(math.log2(max(n_train / min_steps, 1))))
    batch = int(min(max(batch, MIN_BATCH), cms["batch_size"]))
    steps = math.ceil(n_train / batch)
    recipe = {"batch_size": batch, "epochs": int(min(max_epochs, max(1, math.ceil(step_budget / steps)))),
              "patience": PATIENCE, "lr_patience": LR_PATIENCE,
              "freeze_input_bn_after": cms["freeze_input_bn_after"]}
    return recipe


def candidates(model: str, n_train: int, *, learning_rates=LEARNING_RATES, batch_factors=BATCH_FACTORS,
               batch_size: int | None = None, **scale) -> list[dict]:
    """The search grid of ``model`` for ``n_train`` training jets: :func:`scale_recipe` with each learning rate
    of ``learning_rates`` and each batch ``factor × scaled batch`` (at least :data:`MIN_BATCH`, a power of two
    as the scaled one is); the epoch cap follows the batch so that every candidate has the same step budget.
    ``batch_size`` fixes the batch instead (``batch_factors`` are then not used), e.g. to compare samples of
    different sizes at the same cost per step. A model that freezes its input batch norms keeps the learning
    rate after the freeze (``lr_after_freeze = lr``). Returns a list of recipe dicts with ``lr``."""
    base = scale_recipe(model, n_train, **scale)
    batches = [int(batch_size)] if batch_size else \
        sorted({max(MIN_BATCH, int(base["batch_size"] * f)) for f in batch_factors}, reverse=True)
    out = []
    for batch in batches:
        steps = math.ceil(n_train / batch)
        epochs = int(min(scale.get("max_epochs", MAX_EPOCHS),
                         max(1, math.ceil(scale.get("step_budget", STEP_BUDGET) / steps))))
        for lr in learning_rates:
            recipe = {**base, "batch_size": batch, "epochs": epochs, "lr": float(lr)}
            if recipe["freeze_input_bn_after"]:
                recipe["lr_after_freeze"] = float(lr)
            out.append(recipe)
    return out


def train_jets(data, *, val_fraction: float = 0.2, seed: int = 0, train_fraction: float = 1.0,
               weights: str = "loss") -> int:
    """How many jets of the converted dataset ``data`` train (the rest validate), as the Trainer splits them
    (``train_fraction``: the share of them a learning-curve point keeps; ``weights``: how they use their
    weights, a jet drawn twice counting twice)."""
    from .dataset import open_dataset
    from .batches import draw_by_weight, split_jets

    dataset = open_dataset(data)
    train, _ = split_jets(dataset.shard_jets(), val_fraction, seed, train_fraction)
    train = draw_by_weight(dataset, train, weights, seed)
    return int(sum(len(idx) for idx in train.values()))


def choose(model: str, data, out, *, seed: int = 0, grid: list[dict] | None = None, log=print, **options) -> dict:
    """Choose the recipe of ``model`` on the converted dataset ``data`` by the validation split only.

    Trains every candidate (``grid``, default :func:`candidates` for the dataset's training jets) with ``seed``
    into its own run directory ``out/<id>`` (:func:`candidate_id`; a finished run of an earlier call is reused,
    an interrupted one continued), and picks the lowest best validation loss. ``log`` gets one line per
    candidate; ``options`` go to every candidate's :class:`~deepjet_nb.train.Trainer` alike (e.g.
    ``in_memory=True`` for a small dataset). Returns ``{"model", "n_train", "seed", "chosen": recipe, "candidates": [recipe +
    {"best_val_loss", "best_epoch", "val_beff_at_mistag_0.01" (at the best epoch), "epochs_run",
    "stop_reason", "train_s", "epoch_s", "cpu_s" (CPU seconds of this process for the candidate: 0 when it was
    reused)}]}``.
    """
    from .train import Trainer

    n_train = train_jets(data, seed=seed, train_fraction=options.get("train_fraction", 1.0),
                         weights=options.get("weights", "loss"))
    grid = grid if grid is not None else candidates(model, n_train)
    if not grid:
        raise ArgumentError("choose: an empty grid")
    scored = []
    for candidate in grid:
        directory = Path(out) / candidate_id(candidate)
        trainer = Trainer(model, data, directory, resume="auto", dashboard="off", seed=seed, **options, **candidate)
        cpu = time.process_time()
        history = trainer.fit()
        # CPU seconds say what the wall time would be on free cores when other jobs share the machine
        scored.append({**candidate, **_score(history), "stop_reason": trainer.stop_reason or "finished",
                       "cpu_s": round(time.process_time() - cpu, 1)})
        log(f"{model} {candidate_id(candidate)}: {SCORE} {scored[-1][SCORE]:.4f} (epoch "
            f"{scored[-1]['best_epoch']}/{len(history)}, {scored[-1]['epoch_s']:.1f} s per epoch)")
        _release(trainer)
    chosen = min(scored, key=lambda c: c[SCORE])
    return {"model": model, "n_train": n_train, "seed": seed, "chosen": {k: chosen[k] for k in grid[0]},
            "candidates": scored}


def candidate_id(recipe: dict) -> str:
    """A directory name for a candidate: its learning rate and batch (``lr=0.001_batch=512``)."""
    return f"lr={recipe['lr']:g}_batch={recipe['batch_size']}"


def bdt_candidate_id(hyper: dict) -> str:
    """A directory name for a BDT candidate: its hyper-parameters (``learning_rate=0.1_max_leaf_nodes=31``)."""
    return "_".join(f"{k}={v:g}" for k, v in hyper.items())


def _score(history: list[dict]) -> dict:
    """The lowest validation loss of a run and what its epoch had; the mean epoch time."""
    if not history or "val_loss" not in history[0]:
        raise DeepJetError("choose: a candidate has no validation loss (val_fraction 0?)")
    best = min(history, key=lambda r: r["val_loss"])
    times = [r["time_s"] for r in history]
    return {SCORE: best["val_loss"], "best_epoch": best["epoch"],
            "val_beff_at_mistag_0.01": best.get("val_beff_at_mistag_0.01"), "epochs_run": len(history),
            "train_s": round(sum(times), 1), "epoch_s": round(sum(times) / len(times), 2)}


def _release(trainer) -> None:
    """Free the candidate's model before the next one is built (Keras keeps graphs of every model otherwise)."""
    import keras

    trainer.model = None
    keras.backend.clear_session()


def choose_bdt(data, out, *, seed: int = 0, grid: dict | None = None, **options) -> dict:
    """Choose the hyper-parameters of the BDT (:mod:`deepjet_nb.bdt`) on ``data`` as :func:`choose` does for the
    networks: every combination of ``grid`` (default :data:`BDT_GRID`) trained with ``seed`` into
    ``out/<id>`` (reused when finished), early stopping on the validation split, scored by the validation loss
    of the final model; ``options`` go to every :func:`~deepjet_nb.bdt.train_bdt` alike (e.g.
    ``train_fraction``). Returns ``{"model": "bdt", "seed", "chosen", "candidates"}`` like :func:`choose`."""
    import itertools

    from .bdt import train_bdt
    from .run import Run

    grid = dict(grid or BDT_GRID)
    scored = []
    for values in itertools.product(*grid.values()):
        hyper = dict(zip(grid, values))
        directory = Path(out) / bdt_candidate_id(hyper)
        run = Run(directory)
        result = run.train_config()["result"] if run.exists else \
            train_bdt(data, directory, seed=seed, **options, **hyper)
        scored.append({**hyper, SCORE: result["val_loss"], "n_iter": result["n_iter"],
                       "val_beff_at_mistag_0.01": result["val_beff_at_mistag_0.01"], "wall_s": result["seconds"],
                       "cpu_s": result.get("cpu_s")})
    chosen = min(scored, key=lambda c: c[SCORE])
    return {"model": "bdt", "seed": seed, "chosen": {k: chosen[k] for k in grid}, "candidates": scored}

