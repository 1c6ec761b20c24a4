"""The whole pipeline on the built-in default: ``make demo`` (``python -m deepjet_nb.demo --out runs/demo``).

generate ttbar + QCD training samples and a held-out ttbar test sample -> convert with the DeepCSV and DeepJet
configs, keeping every selected jet with its pT-eta weight -> train both networks, and a gradient-boosted-tree
reference on the DeepCSV inputs, with the recipes and uses of the weights that one validation-only procedure
chose for all three, each with three seeds (``DEMO_RECIPES``; DeepJet's first
seeds in a process of its own beside the others, its last one where they ran once they are done, so that
neither core idles) -> predict on the test sample ->
evaluate against track counting, with the paired DeepJet − DeepCSV difference and the spread between training
seeds -> export both networks for production, checked against training on the test sample. The conversion,
training and evaluation steps run the pipeline notebooks of ``notebooks/`` with papermill; their executed
copies are kept in ``OUT/notebooks/``. Every step skips work already finished, so an interrupted demo picks up
where it stopped when run again.

Outputs (``OUT`` = ``runs/demo``): ``samples/``, ``data/<config>/``, ``train/<tagger>/`` (and
``train/<tagger>_seed<S>/`` for the further seeds), ``predictions/<tagger>.root`` (``<tagger>_seed<S>.root``),
``metrics.json``, ``working_points.json``, ``plots/``, ``notebooks/``,
``deploy/<tagger>/`` (exported model directories with their ``equivalence.json`` and ``equivalence.png``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import sys
import time
from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"  # the demo runs from a source checkout
TAGGERS = ("deepcsv", "deepjet")  # the networks: trained, exported
BDT = "bdt_deepcsv"               # the boosted-tree reference, on the DeepCSV dataset
ALL_TAGGERS = (*TAGGERS, BDT)
SEPARATE = "deepjet"  # the longest trainings: most of its seeds run in a process of its own (see run)
DIFFERENCES = (("deepjet", "deepcsv"), ("deepcsv", BDT), ("deepjet", BDT))  # a − b, paired over the test jets


@dataclass(frozen=True)
class Scale:
    """Sample sizes and training lengths of one demo size."""

    ttbar_files: int
    ttbar_events: int  # per file
    qcd_files: int
    qcd_events: int  # per file
    test_events: int
    seeds: dict  # training seeds per tagger (the spread between them goes into metrics.json)
    recipes: dict = None  # per-tagger overrides of DEMO_RECIPES (shorter trainings for the tiny scale)
    jobs: int = 2
    pileup: float = 30.0  # mean pile-up interactions in every sample: Run 2 averaged 23 (2016) to 32 (2017-18)


# The conversion keeps every jet with its pT-eta weight (docs/reference.md §3); each tagger then uses the weights
# the way the validation split preferred (benchmarks/weighting.py: rejection resampling, the shipped configs'
# way, against per-jet loss weights and resampling with replacement, at the same step budget).
WEIGHTING = {"apply": "weight"}

# Chosen by one procedure for all three taggers (deepjet_nb.recipes; docs/reference.md §4), which looks at the
# validation split only:
#   python benchmarks/weighting.py --data DATA --out runs/weighting/runs --seed 1 --deepjet-lrs 0.003 \
#       --deepjet-step-budget 4000
# (DATA: the default-scale training samples converted with WEIGHTING). At one batch (256, the scaled batch of
# the resampled sample) and one step budget per network, the learning rate is the candidate with the lowest
# validation loss, and the use of the weights the one with the highest validation b efficiency at 1 % light
# mistag; the epochs are the cap giving every candidate that budget (early stopping on the validation loss may
# end training first). DeepJet keeps its input batch norms frozen after epoch 1 but not CMS's drop to lr 1e-4
# there; its learning rate is the one the procedure chose on the resampled sample (not searched again, for
# time) and its budget 4,000 steps (6,000 for DeepCSV), so that the demo stays within its 30 minutes.
# Run on 2026-12-06 on the default-scale samples of seed 1 (Phase-0 pixel, pile-up 30).
DEMO_RECIPES = {
    "deepcsv": {"batch_size": 256, "epochs": 16, "freeze_input_bn_after": None, "lr": 0.003, "lr_patience": 3,
                "patience": 8, "weights": "loss"},
    "deepjet": {"batch_size": 256, "epochs": 11, "freeze_input_bn_after": 1, "lr": 0.003, "lr_after_freeze": 0.003,
                "lr_patience": 3, "patience": 8, "weights": "replacement"},
    BDT: {"learning_rate": 0.05, "max_leaf_nodes": 31, "weights": "loss"},
}


SCALES = {
    # 33,000 events: ~134k generated training jets, 120k of them selected and kept with their pT-eta weights,
    # ~35k test jets; generation and conversion take about 3 minutes on 2 free cores
    "default": Scale(ttbar_files=3, ttbar_events=7000, qcd_files=2, qcd_events=3000, test_events=6000,
                     seeds={"deepcsv": 3, "deepjet": 3, BDT: 3}),
    # a smoke test of the wiring (tests)
    "tiny": Scale(ttbar_files=2, ttbar_events=150, qcd_files=1, qcd_events=150, test_events=150,
                  seeds={"deepcsv": 2, "deepjet": 2, BDT: 2},
                  recipes={"deepcsv": {"epochs": 1}, "deepjet": {"epochs": 2}, BDT: {"max_iter": 20}}, jobs=1),
}


def _log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _samples(out: Path, scale: Scale, seed: int) -> tuple[list[Path], list[Path]]:
    from .samples import generate

    plan = [("ttbar", scale.ttbar_events, f"ttbar_train{i}", seed + i) for i in range(scale.ttbar_files)]
    plan += [("qcd", scale.qcd_events, f"qcd_train{i}", seed + 100 + i) for i in range(scale.qcd_files)]
    plan += [("ttbar", scale.test_events, "ttbar_test", seed + 1000)]
    paths = []
    for process, events, stem, sample_seed in plan:
        path = out / "samples" / f"{stem}_{events}ev_pu{scale.pileup:g}_seed{sample_seed}.root"
        if not path.exists():
            summary = generate(process, events, path, seed=sample_seed, jobs=scale.jobs, pileup=scale.pileup)
            _log(f"{path.name}: {summary.jets} jets in {summary.seconds:.0f} s")
        paths.append(path)
    return paths[:-1], paths[-1:]


def _notebook(name: str, demo_dir: Path, executed_name: str, **parameters) -> None:
    """Execute ``notebooks/<name>.ipynb`` with ``parameters``; the executed copy goes to demo_dir/notebooks."""
    import papermill

    executed = demo_dir / "notebooks" / f"{executed_name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(executed), parameters=parameters,
                               cwd=str(demo_dir), progress_bar=False, kernel_name="python3")


def run(out="runs/demo", scale: str = "default", seed: int = 1, seeds: int | None = None) -> dict:
    """Run the demo into ``out``; returns the metrics (also written to ``out/metrics.json``).

    ``seed``: of the samples and of the first training of each tagger; ``seeds``: train every tagger with that
    many seeds (``seed``, ``seed + 1``, ...) instead of the scale's numbers (:attr:`Scale.seeds`).
    """
    out = Path(out).resolve()
    size = SCALES[scale]
    start = time.perf_counter()
    train_files, test_files = _samples(out, size, seed)
    for config in TAGGERS:
        _log(f"convert {len(train_files)} files with the {config} config")
        _notebook("convert", out, f"convert_{config}", inputs=[str(p) for p in train_files], config=config,
                  out_dir=str(out / "data" / config), jobs=size.jobs, weighting=WEIGHTING)
    # Two sequences of trainings share the two cores: DeepJet's first seeds in a process of its own, and here
    # DeepCSV's and the boosted trees' seeds, then DeepJet's last seed, so that neither core idles while the
    # other works through DeepJet alone (one DeepJet keeps 1.66 of the 2 cores busy: benchmarks/train_speed.py,
    # docs/reference.md §4).
    plan = {tagger: list(range(seeds or size.seeds[tagger])) for tagger in ALL_TAGGERS}
    n_beside = math.ceil(len(plan[SEPARATE]) / 2)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        beside = pool.submit(_train_seeds, out, size, SEPARATE, seed, plan[SEPARATE][:n_beside], test_files)
        try:
            done = {tagger: _train_seeds(out, size, tagger, seed, plan[tagger], test_files)
                    for tagger in ALL_TAGGERS if tagger != SEPARATE}
            last = _train_seeds(out, size, SEPARATE, seed, plan[SEPARATE][n_beside:], test_files)
        except BaseException:
            _log(f"stopping: waiting for the {SEPARATE} training beside to end (rerun to resume both)")
            raise
        done[SEPARATE] = beside.result() + last
    predictions = {tagger: done[tagger] for tagger in ALL_TAGGERS}
    _log("evaluate")
    _notebook("evaluate", out, "evaluate", predictions=[str(files[0]) for files in predictions.values()],
              out_dir=str(out), differences=[list(pair) for pair in DIFFERENCES],
              seed_predictions={t: [str(p) for p in files[1:]] for t, files in predictions.items() if len(files) > 1})
    from .evaluate import summary_table

    metrics = json.loads((out / "metrics.json").read_text())
    print(summary_table(metrics))
    _deploy(out, test_files)
    _log(f"done in {(time.perf_counter() - start) / 60:.1f} min; results in {out}")
    return metrics


def _train_seeds(out: Path, size: Scale, tagger: str, seed: int, indices: list[int], test_files) -> list[Path]:
    """Train ``tagger`` with the seeds ``seed + i`` for ``i`` in ``indices`` (0: the first seed, whose files carry
    the bare tagger name) and predict; the prediction files, in that order."""
    return [_train_and_predict(out, size, tagger, seed + i, test_files, first=i == 0) for i in indices]


def _train_and_predict(out: Path, size: Scale, tagger: str, seed: int, test_files, first: bool) -> Path:
    """Train ``tagger`` with ``seed`` (unless done) and predict on the test files; returns the prediction file."""
    from .predict import predict
    from .run import Run

    name = tagger if first else f"{tagger}_seed{seed}"
    run_dir = out / "train" / name
    recipe = {**DEMO_RECIPES[tagger], **(size.recipes or {}).get(tagger, {})}
    if tagger == BDT:
        from .bdt import predict_bdt, train_bdt

        if not Run(run_dir).exists:
            _log(f"train {name} (boosted trees on the deepcsv inputs, {recipe})")
            result = train_bdt(out / "data" / "deepcsv", run_dir, seed=seed, **recipe)
            _log(f"{name}: {result['n_iter']} iterations in {result['seconds']:.0f} s")
    elif not Run(run_dir).complete:
        _log(f"train {name} ({recipe})")
        options = {k: v for k, v in recipe.items() if k not in ("epochs", "batch_size", "lr")}
        _notebook("train", out, f"train_{name}", data=str(out / "data" / tagger), model=tagger,
                  epochs=recipe["epochs"], batch_size=recipe["batch_size"], lr=recipe["lr"], seed=seed,
                  out_dir=str(run_dir), options=options)
        history = Run(run_dir).history()
        _log(f"{name}: {len(history)} epochs in {sum(r['time_s'] for r in history):.0f} s")
    prediction = out / "predictions" / f"{name}.root"
    if not prediction.exists():
        _log(f"predict {name} on {', '.join(p.name for p in test_files)}")
        if tagger == BDT:
            predict_bdt(run_dir, test_files, prediction, progress=False)
        else:
            # the best checkpoint: the recipe procedure scored its candidates by their best validation loss
            predict(run_dir, test_files, prediction, which="best")
    return prediction


def _deploy(out: Path, test_files: list[Path]) -> None:
    """Export both taggers to ``out/deploy/<tagger>``, checked against their training on the test sample."""
    from .deploy import EQUIVALENCE, export, open_model

    for tagger in TAGGERS:
        model_dir = out / "deploy" / tagger
        if not (model_dir / EQUIVALENCE).is_file():
            _log(f"export {tagger} and check it on {', '.join(p.name for p in test_files)}")
            export(out / "train" / tagger, model_dir, which="best", check=test_files)
        report = open_model(model_dir).equivalence
        _log(f"{tagger} deployed ({model_dir}): max |Δp| = {report['max_abs_diff']:.1e} training vs deployed on "
             f"{report['jets']} jets")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepjet_nb.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default", help="demo size (default: default)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the samples and the first training (default 1)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="train every tagger with N seeds (default: 3)")
    args = parser.parse_args(argv)
    run(args.out, args.scale, args.seed, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
