"""Benchmark: training speed of each network with TensorFlow's default runtime settings, the chosen ones, and
the chosen ones with op determinism.

Makes converted DeepCSV and DeepJet datasets (random ntuples in the DeepNTuples schema through the real
converter; cached in --workdir), then, for each model, trains from the streaming shard pipeline as ``Trainer``
does (same optimiser, loss and weighted metric) with

1. ``default``: TensorFlow's default thread pools and ``steps_per_execution=1``;
2. ``chosen``: the settings ``Trainer`` applies (:data:`deepjet_nb.tf_runtime.TRAINING_SETTINGS`), or the ones
   given with ``--intra``/``--inter``/``--steps-per-execution``/``--jit-compile``/``--mixed-bfloat16`` to try
   others (the last two are ways to run the same model, not thread settings: XLA compilation, and bfloat16
   arithmetic, which CPUs with AMX or AVX-512 BF16 run natively);
3. ``deterministic`` (with ``--deterministic``): the chosen settings with TensorFlow's op determinism on, as
   ``Trainer`` runs with ``deterministic=True`` (:func:`deepjet_nb.tf_runtime.apply_determinism`).

Thread pools can only be set before TensorFlow starts, so every measurement runs in a fresh process: it traces
the model, trains ``--warmup`` steps, then times ``--steps`` steps. The two settings alternate ``--repeats`` times
and the best time of each counts (the CPU is shared). Last line: one JSON object with, per model,
``<way>_jets_per_s`` (wall time) and ``<way>_jets_per_cpu_s`` (CPU time of the process) for each way,
``speedup`` (chosen / default) and the settings; with ``--deterministic`` also ``determinism_cost`` and
``determinism_cpu_cost`` (1 − deterministic / chosen).

    python benchmarks/train_speed.py --models deepcsv deepjet --batch-size 256 --steps 200 --deterministic
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {"deepcsv": "deepcsv", "deepjet": "deepjet"}  # model -> shipped data config


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=sorted(CONFIGS))
    parser.add_argument("--batch-size", type=int, default=256, help="the demo's batch (default 256)")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=40, help="untimed steps after tracing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--jets-per-file", type=int, default=12000)
    parser.add_argument("--intra", type=int, default=None, help="try these intra-op threads instead of the chosen")
    parser.add_argument("--inter", type=int, default=None, help="try these inter-op threads instead of the chosen")
    parser.add_argument("--steps-per-execution", type=int, default=None)
    parser.add_argument("--jit-compile", action="store_true", help="try XLA compilation (Keras jit_compile=True)")
    parser.add_argument("--mixed-bfloat16", action="store_true",
                        help="try Keras' mixed_bfloat16 policy (bfloat16 compute, float32 weights)")
    parser.add_argument("--deterministic", action="store_true",
                        help="also measure the chosen settings with TensorFlow's op determinism on")
    parser.add_argument("--workdir", default=None, help="where the datasets are made (default: a temp dir)")
    parser.add_argument("--worker", nargs=8, metavar=("MODEL", "DATA", "INTRA", "INTER", "SPE", "DET", "XLA", "BF16"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _measure(args)

    from deepjet_nb.tf_runtime import TRAINING_SETTINGS

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="djn-bench-"))
    result = {"batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats,
              "cpu_count": os.cpu_count(), "models": {}}
    for model in args.models:
        data = _dataset(workdir, CONFIGS[model], args.files, args.jets_per_file)
        chosen = dict(TRAINING_SETTINGS.get(model, {}))
        given = {"intra_op_threads": args.intra, "inter_op_threads": args.inter,
                 "steps_per_execution": args.steps_per_execution,
                 "jit_compile": args.jit_compile or None, "mixed_bfloat16": args.mixed_bfloat16 or None}
        chosen.update({k: v for k, v in given.items() if v is not None})
        ways = {"default": {}, "chosen": chosen}
        if args.deterministic:
            ways["deterministic"] = {**chosen, "deterministic": True}
        figures = _compare(args, model, data, ways)
        result["models"][model] = {"chosen_settings": chosen, **figures}
        print(f"{model}: {json.dumps(result['models'][model])}", file=sys.stderr, flush=True)
    print(json.dumps(result))
    return result


def _compare(args, model: str, data: Path, ways: dict) -> dict:
    """Measure every way ``--repeats`` times, interleaved (load on the machine drifts during the run); the best
    of each counts. Jets per wall second, and per CPU second of the process, which a machine shared with other
    jobs disturbs less (it still counts the threads' spinning while they wait for a core)."""
    runs = {way: [] for way in ways}
    for _ in range(args.repeats):
        for way, settings in ways.items():
            runs[way].append(_run_worker(args, model, data, settings))
    best = {unit: {way: max(r[unit] for r in runs[way]) for way in ways} for unit in ("jets_per_s", "jets_per_cpu_s")}
    figures = {
        **{f"{way}_jets_per_s": round(best["jets_per_s"][way], 1) for way in ways},
        **{f"{way}_jets_per_cpu_s": round(best["jets_per_cpu_s"][way], 1) for way in ways},
        "speedup": round(best["jets_per_s"]["chosen"] / best["jets_per_s"]["default"], 3),
        "jets_per_s": {way: [round(r["jets_per_s"], 1) for r in v] for way, v in runs.items()},
        "jets_per_cpu_s": {way: [round(r["jets_per_cpu_s"], 1) for r in v] for way, v in runs.items()},
    }
    if "deterministic" in ways:  # the share of training speed that op determinism costs
        for unit, key in (("jets_per_s", "determinism_cost"), ("jets_per_cpu_s", "determinism_cpu_cost")):
            figures[key] = round(1 - best[unit]["deterministic"] / best[unit]["chosen"], 3)
    return figures


def _run_worker(args, model: str, data: Path, settings: dict) -> dict:
    worker = [model, str(data), str(settings.get("intra_op_threads", 0)), str(settings.get("inter_op_threads", 0)),
              str(settings.get("steps_per_execution", 1)), str(int(settings.get("deterministic", False))),
              str(int(settings.get("jit_compile", False))), str(int(settings.get("mixed_bfloat16", False)))]
    cmd = [sys.executable, __file__, "--worker", *worker, "--batch-size", str(args.batch_size),
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"measurement failed ({' '.join(worker)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure(args) -> dict:
    """One measurement in this (fresh) process: configure TensorFlow, trace, warm up, time ``--steps`` steps."""
    model_name, data, intra, inter, spe, deterministic, xla, bf16 = args.worker
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from deepjet_nb.tf_runtime import apply_determinism, apply_threads

    if int(intra) or int(inter):
        applied = apply_threads(int(intra) or None, int(inter) or None)
        if not applied:
            raise SystemExit("TensorFlow had started before the thread pools could be set")
    apply_determinism(bool(int(deterministic)))
    import keras

    from deepjet_nb.dataset import open_dataset
    from deepjet_nb.models import build_model
    from deepjet_nb.batches import JetBatches

    keras.utils.set_random_seed(0)
    if int(bf16):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    ds = open_dataset(data)
    model = build_model(model_name, ds.manifest)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  steps_per_execution=int(spe), jit_compile=bool(int(xla)))
    batches = JetBatches(ds, batch_size=args.batch_size, seed=0)
    stream = batches.as_tf_dataset()
    model.fit(stream, steps_per_epoch=args.warmup, epochs=1, shuffle=False, verbose=0)
    t0, cpu0 = time.perf_counter(), time.process_time()
    model.fit(stream, steps_per_epoch=args.steps, epochs=1, shuffle=False, verbose=0)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    jets = args.steps * args.batch_size
    result = {"jets_per_s": jets / seconds, "jets_per_cpu_s": jets / cpu_seconds}
    print(json.dumps(result))
    return result


def _dataset(workdir: Path, config: str, files: int, jets_per_file: int) -> Path:
    """A converted dataset of random ntuples for ``config`` (reused when already there)."""
    out = workdir / f"{config}_{files}x{jets_per_file}"
    if (out / "manifest.json").exists():
        return out
    from deepjet_nb.testing import write_ntuple
    from deepjet_nb.convert import convert

    ntuples = [workdir / f"bench_{i}_{jets_per_file}.root" for i in range(files)]
    for i, path in enumerate(ntuples):
        if not path.exists():
            write_ntuple(path, jets_per_file, seed=i)
    result = convert(ntuples, out, config, jobs=1, progress=False)
    if not result.ok:
        raise SystemExit(f"conversion failed: {result.failed}")
    return out


if __name__ == "__main__":
    main()
