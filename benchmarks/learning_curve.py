"""Learning curves: b-jet efficiency at 1 % light mistag against the number of training jets, next to the BDT.

Runs :func:`deepjet_nb.learning_curve.learning_curve` on converted datasets in ``--data`` (``deepcsv/`` and
``deepjet/``; ``fatjet/`` and ``fatjet_substructure/`` for the boosted ``pcnn`` and ``bdt_substructure``): every
tagger of ``--taggers`` is trained on each share ``--fractions`` of its training jets with every seed of
``--seeds``, with the recipe scaled to that many jets and the learning rate chosen on the validation split
(the BDT: learning rate and leaves), unless ``--no-choose-lr`` (then ``--lr tagger=value`` or the CMS recipe's);
``--lr tagger=value`` alone fixes that tagger's rate only, and ``--max-epochs [TAGGER=]N`` caps the epochs.
Each point is predicted on ``--test`` and scored by the efficiency at 1 % mistag with its bootstrap error, the
seed spread and the paired difference to the BDT on the same share; the crossing point is where that
difference changes sign. Finished runs in ``--out`` are reused, so an interrupted curve continues. The plot is
saved as ``OUT/learning_curve.png`` (and ``.pdf``); the result as ``OUT/learning_curve.json``.

Last line: one JSON object with one row per tagger and share (``n_train``, ``eff``, ``eff_err``,
``eff_seed_std``, ``diff``, ``diff_err``, ``diff_seed_std``, chosen recipe), the crossing points and the CPU
and wall seconds.

    python benchmarks/learning_curve.py --data runs/demo/data --test runs/demo/samples/ttbar_test_*.root \\
        --out runs/learning_curve --fractions 0.125 0.25 0.5 1 --seeds 1 2
    python benchmarks/learning_curve.py --data DIR --test T.root --out OUT --taggers deepcsv bdt_deepcsv \\
        --no-choose-lr --lr deepcsv=0.001
    python benchmarks/learning_curve.py --data DIR --test fatjet_test.root --out OUT --taggers pcnn bdt_substructure
"""

from __future__ import annotations

import argparse
import json
import time

TAGGERS = ("deepcsv", "deepjet", "bdt_deepcsv")
ROW_KEYS = ("tagger", "fraction", "n_train", "eff", "eff_err", "eff_seed_std", "reference", "diff", "diff_err",
            "diff_seed_std", "recipe")


def main(argv=None) -> dict:
    from deepjet_nb import learning_curve as lc
    from deepjet_nb.plots.learning import LearningCurvePlot

    args = _parser(lc).parse_args(argv)
    start, cpu = time.perf_counter(), time.process_time()
    result = lc.learning_curve(lc.datasets_in(args.data, args.taggers), args.test, args.out,
                               fractions=args.fractions, seeds=args.seeds, choose_lr=not args.no_choose_lr,
                               lr=dict(_lr(item) for item in args.lr),
                               scale=_max_epochs(args.max_epochs), weights=args.weights,
                               log=lambda line: print(line, flush=True))
    plots = [str(p) for task in dict.fromkeys(p["task"] for p in result["points"])
             for p in LearningCurvePlot(result, task=task).savefig(f"{args.out}/learning_curve_{task}")]
    for row in result["points"]:
        print(f"{row['tagger']:>16} {row['fraction']:6.3f} {row['n_train']:>8} eff {_fmt(row['eff'])} ± "
              f"{_fmt(row['eff_err'])} (seeds ± {_fmt(row['eff_seed_std'])})  − {row['reference']}: "
              f"{_fmt(row['diff'])} ± {_fmt(row['diff_err'])}", flush=True)
    summary = {"weights": args.weights, "points": [{k: row[k] for k in ROW_KEYS} for row in result["points"]],
               "crossings": result["crossings"], "seeds": result["seeds"], "plots": plots,
               "cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - start, 1)}
    print(json.dumps(summary))
    return summary


def _parser(lc) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="directory holding the converted datasets (deepcsv/, ...)")
    parser.add_argument("--test", required=True, nargs="+", help="held-out test ntuples (ROOT files)")
    parser.add_argument("--out", required=True, help="where runs, predictions, result and plot go (reused)")
    parser.add_argument("--fractions", type=float, nargs="+", default=list(lc.FRACTIONS),
                        help="shares of the training jets (default 1/8 1/4 1/2 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="training seeds (default 1 2)")
    parser.add_argument("--taggers", nargs="+", choices=sorted(lc.LEARNERS), default=list(TAGGERS))
    parser.add_argument("--no-choose-lr", action="store_true",
                        help="do not search the learning rate at each share (use --lr or the recipe's)")
    parser.add_argument("--lr", action="append", default=[], metavar="TAGGER=VALUE",
                        help="a fixed learning rate for a tagger (not searched); repeatable")
    parser.add_argument("--max-epochs", action="append", default=[], metavar="[TAGGER=]N",
                        help="cap the epochs of every network's training (N), or of one tagger's; repeatable")
    parser.add_argument("--weights", choices=("loss", "resample", "replacement"), default="loss",
                        help="how every tagger uses the pT-eta weights of a dataset converted with weighting.apply: "
                             "weight (default loss: per-jet loss weights; benchmarks/weighting.py compares them)")
    return parser


def _max_epochs(items: list[str]) -> dict | None:
    """``scale`` of learning_curve: ``{"max_epochs": N}`` for all, or tagger → ``{"max_epochs": N}``."""
    caps = {}
    for item in items:
        tagger, _, value = item.rpartition("=")
        if not value.isdigit():
            raise SystemExit(f"--max-epochs {item!r}: expected N or TAGGER=N, e.g. deepjet=5")
        caps[tagger] = {"max_epochs": int(value)}
    if "" in caps and len(caps) > 1:
        raise SystemExit("--max-epochs: give one cap for all (N) or caps per tagger (TAGGER=N), not both")
    return caps.get("", caps) or None


def _lr(item: str) -> tuple[str, float]:
    tagger, _, value = item.partition("=")
    try:
        return tagger, float(value)
    except ValueError:
        raise SystemExit(f"--lr {item!r}: expected TAGGER=VALUE, e.g. deepcsv=0.001") from None


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
