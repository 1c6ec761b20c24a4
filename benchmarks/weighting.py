"""Resampling, per-jet loss weights or resampling with replacement: which use of the pT–η weights trains best.

The demo's configs resample every class to the b jets' (pT, η) shape at conversion, which throws most jets
away. This benchmark compares, on datasets converted with ``weighting.apply: weight`` (every jet kept with
its weight), the three ways training can use those weights (``TrainConfig.weights``,
:func:`deepjet_nb.batches.draw_by_weight`):

- ``resample``: each training jet kept with probability weight / class maximum (what the conversion does);
- ``loss``: every training jet once, its weight multiplying its loss;
- ``replacement``: each training jet drawn ⌊w⌋ or ⌊w⌋ + 1 times (resampling with replacement).

All three validate on the same jets with the same weights. Within a use, the validation loss chooses the
recipe; across uses it does not compare alike, because rejection sampling also changes the class mixture the
network learns (every b jet is kept, about one light jet in six), and a loss rewards matching the class mixture
of the validation jets. Uses are therefore compared on ``val_beff_at_mistag_0.01``, the b efficiency at 1 %
light mistag on the validation jets, unweighted as in evaluation, which depends on the class mixture far less:
``preferred`` is the use with the highest. For each network and each use, the recipe procedure of
:mod:`deepjet_nb.recipes` picks the learning rate (``--lrs``) by the lowest validation loss, at one batch
(``--batch-size``, the demo's) and one step budget, so every use costs the same training time whatever
number of jets it keeps; the boosted trees get their grid (:data:`deepjet_nb.recipes.BDT_GRID`) per use. The
held-out test sample is never read. Finished runs in ``--out`` are reused, so an interrupted run continues.

Last line: one JSON object with, per model and use, the training draws and distinct jets, the chosen
candidate's scores, and ``preferred``: the use with the highest validation b efficiency at 1 % light mistag.

    python benchmarks/weighting.py --data runs/weighting/data --out runs/weighting/runs --seed 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

MODELS = ("deepcsv", "deepjet", "bdt")
USES = ("resample", "loss", "replacement")


def main(argv=None) -> dict:
    from deepjet_nb import recipes
    from deepjet_nb.run import open_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True,
                        help="directory holding deepcsv/ and deepjet/ converted with weighting.apply: weight")
    parser.add_argument("--out", required=True, help="where the candidates' runs go (reused on a rerun)")
    parser.add_argument("--seed", type=int, default=1, help="training seed of every candidate (default 1, the demo's)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--uses", nargs="+", choices=USES, default=list(USES))
    parser.add_argument("--batch-size", type=int, default=256, help="batch of every network candidate (the demo's)")
    parser.add_argument("--lrs", type=float, nargs="+", default=list(recipes.LEARNING_RATES),
                        help="DeepCSV's learning rates")
    parser.add_argument("--deepjet-lrs", type=float, nargs="+", default=list(recipes.LEARNING_RATES))
    parser.add_argument("--step-budget", type=int, default=recipes.STEP_BUDGET, help="DeepCSV's optimizer steps")
    parser.add_argument("--deepjet-step-budget", type=int, default=recipes.STEP_BUDGET)
    args = parser.parse_args(argv)

    data, out = Path(args.data), Path(args.out)
    results, start = {}, time.perf_counter()
    for model in args.models:
        dataset = data / ("deepcsv" if model == "bdt" else model)
        results[model] = {}
        for use in args.uses:
            t0 = time.perf_counter()
            n_draws = recipes.train_jets(dataset, seed=args.seed, weights=use)
            where = out / model / use
            if model == "bdt":
                choice = recipes.choose_bdt(dataset, where, seed=args.seed, weights=use)
                chosen_run = where / recipes.bdt_candidate_id(choice["chosen"])
            else:
                lrs, budget = (args.deepjet_lrs, args.deepjet_step_budget) if model == "deepjet" else \
                    (args.lrs, args.step_budget)
                choice = recipes.choose(model, dataset, where, seed=args.seed, weights=use,
                                        grid=recipes.candidates(model, n_draws, learning_rates=lrs,
                                                                batch_size=args.batch_size, step_budget=budget),
                                        log=lambda line, use=use: print(f"{use}: {line}", flush=True))
                chosen_run = where / recipes.candidate_id(choice["chosen"])
            n_distinct = open_run(chosen_run).split()["train"]["unique_jets"]  # draws repeat jets
            best = min(choice["candidates"], key=lambda c: c[recipes.SCORE])
            results[model][use] = {"train_draws": n_draws, "train_distinct_jets": n_distinct,
                                   "chosen": choice["chosen"], recipes.SCORE: round(best[recipes.SCORE], 5),
                                   "val_beff_at_mistag_0.01": best["val_beff_at_mistag_0.01"],
                                   "candidates": choice["candidates"], "wall_s": round(time.perf_counter() - t0, 1)}
            print(f"{model} {use}: {n_draws} draws of {n_distinct} jets, {recipes.SCORE} "
                  f"{best[recipes.SCORE]:.4f}, val b-eff @ 1 % {best['val_beff_at_mistag_0.01']:.4f}", flush=True)
        results[model]["preferred"] = max(args.uses, key=lambda u: results[model][u]["val_beff_at_mistag_0.01"])
    line = {"seed": args.seed, "batch_size": args.batch_size, "step_budget": args.step_budget,
            "deepjet_step_budget": args.deepjet_step_budget, "models": results,
            "wall_s": round(time.perf_counter() - start, 1)}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
