"""The whole pipeline on the built-in default: ``make demo`` (``python -m deepjet_nb.demo --out runs/demo``).

generate ttbar + QCD training samples and a held-out ttbar test sample -> convert with the DeepCSV and DeepJet
configs -> train both -> predict on the test sample -> evaluate against track counting -> export both for
production, checked against training on the test sample. The conversion,
training and evaluation steps run the pipeline notebooks of ``notebooks/`` with papermill; their executed
copies are kept in ``OUT/notebooks/``. Every step skips work already finished, so an interrupted demo picks up
where it stopped when run again.

Outputs (``OUT`` = ``runs/demo``): ``samples/``, ``data/<tagger>/``, ``train/<tagger>/``,
``predictions/<tagger>.root``, ``metrics.json``, ``working_points.json``, ``plots/``, ``notebooks/``,
``deploy/<tagger>/`` (exported model directories with their ``equivalence.json`` and ``equivalence.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"  # the demo runs from a source checkout
TAGGERS = ("deepcsv", "deepjet")


@dataclass(frozen=True)
class Scale:
    """Sample sizes and training lengths of one demo size."""

    ttbar_files: int
    ttbar_events: int  # per file
    qcd_files: int
    qcd_events: int  # per file
    test_events: int
    epochs: dict
    jobs: int = 2
    pileup: float = 30.0  # mean pile-up interactions in every sample: Run 2 averaged 23 (2016) to 32 (2017-18)


# The CMS DeepJet recipe drops the learning rate to 1e-4 after the first epoch; a CMS epoch is ~1000 times this
# demo's ~80k training jets, so here the rate stays at 1e-3 after the input batch norm is frozen and is halved
# whenever the validation loss stalls (the trainer's plateau schedule), with early stopping.
TRAIN_OPTIONS = {"deepcsv": {}, "deepjet": {"lr_after_freeze": 1e-3}}


SCALES = {
    # under 30 minutes on 2 cores: ~230k generated training jets (about half survive the pT-eta resampling to
    # the b-jet reference), ~50k test jets
    "default": Scale(ttbar_files=4, ttbar_events=10000, qcd_files=2, qcd_events=6000, test_events=10000,
                     epochs={"deepcsv": 50, "deepjet": 40}),
    # a smoke test of the wiring (tests)
    "tiny": Scale(ttbar_files=2, ttbar_events=150, qcd_files=1, qcd_events=150, test_events=150,
                  epochs={"deepcsv": 1, "deepjet": 2}, jobs=1),
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


def run(out="runs/demo", scale: str = "default", seed: int = 1) -> dict:
    """Run the demo into ``out``; returns the metrics (also written to ``out/metrics.json``)."""
    out = Path(out).resolve()
    size = SCALES[scale]
    start = time.perf_counter()
    train_files, test_files = _samples(out, size, seed)
    from .predict import predict
    from .run import Run

    for tagger in TAGGERS:
        data = out / "data" / tagger
        _log(f"convert {len(train_files)} files with the {tagger} config")
        _notebook("convert", out, f"convert_{tagger}", inputs=[str(p) for p in train_files], config=tagger,
                  out_dir=str(data), jobs=size.jobs)
        run_dir = out / "train" / tagger
        if not Run(run_dir).complete:
            _log(f"train {tagger} for {size.epochs[tagger]} epochs")
            _notebook("train", out, f"train_{tagger}", data=str(data), model=tagger, epochs=size.epochs[tagger],
                      seed=seed, out_dir=str(run_dir), options=TRAIN_OPTIONS[tagger])
        prediction = out / "predictions" / f"{tagger}.root"
        if not prediction.exists():
            _log(f"predict {tagger} on {', '.join(p.name for p in test_files)}")
            predict(run_dir, test_files, prediction)
    _log("evaluate")
    _notebook("evaluate", out, "evaluate", predictions=[str(out / "predictions" / f"{t}.root") for t in TAGGERS],
              out_dir=str(out))
    from .evaluate import summary_table

    metrics = json.loads((out / "metrics.json").read_text())
    print(summary_table(metrics))
    _deploy(out, test_files)
    _log(f"done in {(time.perf_counter() - start) / 60:.1f} min; results in {out}")
    return metrics


def _deploy(out: Path, test_files: list[Path]) -> None:
    """Export both taggers to ``out/deploy/<tagger>``, checked against their training on the test sample."""
    from .deploy import EQUIVALENCE, export, open_model

    for tagger in TAGGERS:
        model_dir = out / "deploy" / tagger
        if not (model_dir / EQUIVALENCE).is_file():
            _log(f"export {tagger} and check it on {', '.join(p.name for p in test_files)}")
            export(out / "train" / tagger, model_dir, check=test_files)
        report = open_model(model_dir).equivalence
        _log(f"{tagger} deployed ({model_dir}): max |Δp| = {report['max_abs_diff']:.1e} training vs deployed on "
             f"{report['jets']} jets")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepjet_nb.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default", help="demo size (default: default)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    run(args.out, args.scale, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
