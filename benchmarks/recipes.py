"""Choose the demo's training recipes: one procedure, the validation split only, the same for every tagger.

Runs :mod:`deepjet_nb.recipes` on the demo's converted datasets (``DATA/deepcsv``, ``DATA/deepjet``): for DeepCSV
and DeepJet the recipe scaled to the number of training jets (batch with >= 100 steps per epoch, the same step
budget, plateau schedule and early stopping) with each learning rate of ``--lrs`` and each batch factor of
``--batch-factors``; for the boosted-tree reference (on the DeepCSV dataset) each learning rate × number of
leaves. Every candidate trains with ``--seed`` (the demo's first training seed, so its validation jets) and is
scored by its lowest validation loss; the lowest wins. The held-out test sample is never read. Finished
candidates in ``--out`` are reused, so an interrupted run continues.

Last line: one JSON object with ``demo_recipes`` (paste into ``DEMO_RECIPES`` of ``deepjet_nb/demo.py``),
``chosen_on`` (date, datasets, jets), and per tagger every candidate with its validation scores
(``best_val_loss``, ``val_beff_at_mistag_0.01`` at the best epoch, epochs run, seconds per epoch).

    python benchmarks/recipes.py --data runs/demo/data --out runs/recipes --seed 1
    python benchmarks/recipes.py --data runs/demo/data --out runs/recipes --models deepcsv bdt   # without DeepJet
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

MODELS = ("deepcsv", "deepjet", "bdt")


def main(argv=None) -> dict:
    from deepjet_nb import recipes
    from deepjet_nb.dataset import open_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="directory holding the converted deepcsv/ and deepjet/ datasets")
    parser.add_argument("--out", required=True, help="where the candidates' runs go (reused on a rerun)")
    parser.add_argument("--seed", type=int, default=1, help="training seed of every candidate (default 1, the demo's)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--lrs", type=float, nargs="+", default=list(recipes.LEARNING_RATES))
    parser.add_argument("--batch-factors", type=float, nargs="+", default=list(recipes.BATCH_FACTORS))
    parser.add_argument("--step-budget", type=int, default=recipes.STEP_BUDGET,
                        help=f"most optimizer steps of any network candidate (default {recipes.STEP_BUDGET})")
    args = parser.parse_args(argv)

    data, out = Path(args.data), Path(args.out)
    results, demo = {}, {}
    start = time.perf_counter()
    for model in args.models:
        dataset = data / ("deepcsv" if model == "bdt" else model)
        t0 = time.perf_counter()
        if model == "bdt":
            choice = recipes.choose_bdt(dataset, out / "bdt", seed=args.seed)
            demo["bdt_deepcsv"] = choice["chosen"]
        else:
            n_train = recipes.train_jets(dataset, seed=args.seed)
            grid = recipes.candidates(model, n_train, learning_rates=args.lrs, batch_factors=args.batch_factors,
                                      step_budget=args.step_budget)
            choice = recipes.choose(model, dataset, out / model, seed=args.seed, grid=grid,
                                    log=lambda line: print(line, flush=True))
            demo[model] = choice["chosen"]
        choice["wall_s"] = round(time.perf_counter() - t0, 1)
        results[model] = choice
        print(f"{model}: chosen {choice['chosen']} in {choice['wall_s']:.0f} s", flush=True)
    datasets = {name: {"path": str(data / name), "n_jets": open_dataset(data / name).n_jets,
                       "config_hash": open_dataset(data / name).manifest.config_hash}
                for name in ("deepcsv", "deepjet") if (data / name / "manifest.json").is_file()}
    summary = {"demo_recipes": demo,
               "chosen_on": {"date": time.strftime("%Y-%m-%d"), "seed": args.seed, "datasets": datasets},
               "criterion": f"lowest {recipes.SCORE} on the validation split", "results": results,
               "wall_s": round(time.perf_counter() - start, 1)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
