"""Benchmark: DeepJet inference, one thread: Keras vs the deployed Predictor vs a bare ONNX Runtime session.

One exported DeepJet model (``deepjet_nb.deploy.export``) serves every measurement. By default the run is an
untrained, seeded DeepJet on random ntuples in the DeepNTuples schema through the real converter (timing and
memory do not depend on the weights), cached under ``.cache/benchmarks/inference/``; ``--run`` and
``--check`` take a trained run and its test ntuples instead (e.g. ``runs/demo/train/deepjet`` and
``runs/demo/samples/ttbar_test_*.root``).

Latency, in this process, side by side and interleaved (``deepjet_nb.deploy.latency``: best of ``--repeats``
timings per way): Keras (a ``tf.function`` of the model, TensorFlow limited to one thread), the Predictor
(``Predictor(MODEL_DIR)``: one session, intra-op 1, inter-op 1, sequential, graph-optimised model) and a bare
``onnxruntime.InferenceSession`` on ``model.onnx`` with one thread, at batch 1 and batch 256; the same for the
int8 model when the export accepts it.

Memory and start-up, in a fresh subprocess that never imports TensorFlow (times: best of 5):
``load_s`` (constructing the Predictor: model card, checksum, session from the optimised model),
``session_optimised_s`` (that session alone) against ``load_unoptimised_s`` (a session on ``model.onnx``
optimised at load), ``rss_model_mb`` (resident memory added by loading the first Predictor and running it
once, ONNX Runtime's own start-up included; ``rss_second_model_mb`` for a second one),
``rss_per_extra_thread_mb`` (resident memory added per extra thread calling the one shared Predictor
concurrently at batch 1, from 1 to ``--threads`` threads; ``..._batch256`` at batch 256).

    python benchmarks/inference.py [--repeats 40] [--threads 4] [--run RUN --check FILE.root ...]

Last line: one JSON object with keras_ms_batch1, predictor_ms_batch1, bare_ort_ms_batch1,
predictor_ms_per_jet_batch256, bare_ort_ms_per_jet_batch256, keras_ms_per_jet_batch256,
ratio_predictor_vs_bare_batch1 (target <= 1.10), speedup_vs_keras_batch1 (target >= 10), load_s,
rss_model_mb, rss_per_extra_thread_mb (target <= 5), the int8 figures (int8_ms_batch1,
int8_ms_per_jet_batch256, int8_max_abs_diff, int8_beff_change, int8_onnx_kb, or int8_refused) and the sizes
of model.onnx and the Keras checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "benchmarks" / "inference"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a trained DeepJet run (default: an untrained one, cached)")
    parser.add_argument("--check", nargs="+", default=None, help="ntuples for the export's check (with --run)")
    parser.add_argument("--repeats", type=int, default=40, help="timings (of >= 10 ms each) per way; the best counts")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing one Predictor (memory)")
    parser.add_argument("--workdir", default=str(CACHE), help="where the run and the models are kept")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(_memory(Path(args.memory_child), args.threads)))
        return {}

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = Path(args.workdir)
    run, check = (Path(args.run), [Path(p) for p in args.check or ()]) if args.run else _synthetic_run(workdir)
    if not check:
        raise SystemExit("--run needs --check FILE.root: the export is checked against the training model")

    from deepjet_nb.deploy import Predictor, export, latency
    from deepjet_nb.errors import DeployError
    from deepjet_nb.run import open_run

    model_dir = export(run, workdir / "model", check=check, progress=False)
    try:
        int8_dir = export(run, workdir / "model_int8", check=check, quantize="int8", progress=False)
        int8_refused = None
    except DeployError as err:
        int8_dir, int8_refused = None, str(err)
    keras_model = open_run(run).load_model()
    predictor = Predictor(model_dir)
    table = latency(predictor, (1, 256), keras_model=keras_model, repeats=args.repeats, min_time=0.01)
    one, many = table[1], table[256]
    result = {
        "model": model_dir.card["model"],
        "params": model_dir.card["parameters"],
        "keras_ms_batch1": one["keras_ms"],
        "predictor_ms_batch1": one["predictor_ms"],
        "bare_ort_ms_batch1": one["bare_ort_ms"],
        "keras_ms_per_jet_batch256": round(many["keras_ms"] / 256, 5),
        "predictor_ms_per_jet_batch256": round(many["predictor_ms"] / 256, 5),
        "bare_ort_ms_per_jet_batch256": round(many["bare_ort_ms"] / 256, 5),
        "ratio_predictor_vs_bare_batch1": round(one["predictor_ms"] / one["bare_ort_ms"], 3),
        "speedup_vs_keras_batch1": round(one["keras_ms"] / one["predictor_ms"], 2),
        "max_abs_diff": model_dir.equivalence["max_abs_diff"],
        "check_jets": model_dir.equivalence["jets"],
    }
    if int8_dir is not None:
        quantised = Predictor(int8_dir, precision="int8")
        table8 = latency(quantised, (1, 256), repeats=args.repeats, min_time=0.01)
        report = int8_dir.equivalence["int8"]
        result.update(int8_ms_batch1=table8[1]["predictor_ms"],
                      int8_ms_per_jet_batch256=round(table8[256]["predictor_ms"] / 256, 5),
                      int8_max_abs_diff=report["max_abs_diff"], int8_beff_change=report["beff_change"],
                      int8_onnx_kb=round(int8_dir.card["files"]["int8"]["bytes"] / 1024, 1))
    else:
        result["int8_refused"] = int8_refused
    child = subprocess.run([sys.executable, __file__, "--memory-child", str(model_dir.path),
                            "--threads", str(args.threads)], capture_output=True, text=True, check=True)
    result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    result.update(onnx_kb=round(model_dir.card["files"]["float32"]["bytes"] / 1024, 1),
                  keras_checkpoint_kb=round(model_dir.card["source"]["model_bytes"] / 1024, 1),
                  threads=args.threads, cpu_count=os.cpu_count(), repeats=args.repeats)
    print(json.dumps(result))
    return result


def _synthetic_run(workdir: Path):
    """An untrained, seeded DeepJet run on random ntuples (converted with the deepjet config), made once."""
    run = workdir / "run"
    ntuple = workdir / "jets.root"
    if (run / "model.keras").is_file():
        return run, [ntuple]
    import keras
    import yaml

    from deepjet_nb.testing import write_ntuple
    from deepjet_nb.convert import convert
    from deepjet_nb.models import build_model
    from deepjet_nb.run import DATA_CONFIG, MODEL, TRAIN_CONFIG

    workdir.mkdir(parents=True, exist_ok=True)
    write_ntuple(ntuple, 2000, seed=1)
    result = convert([ntuple], workdir / "data", "deepjet", jobs=1, progress=False)
    if not result.ok:
        raise SystemExit(f"conversion failed: {result.failed}")
    manifest = result.manifest
    run.mkdir(parents=True, exist_ok=True)
    manifest.write(run)
    (run / DATA_CONFIG).write_text(yaml.safe_dump(manifest["config"], sort_keys=False))
    (run / TRAIN_CONFIG).write_text(json.dumps({"model": "deepjet", "epochs": 0, "untrained": True}))
    keras.utils.set_random_seed(1)
    build_model("deepjet", manifest).save(run / MODEL)
    return run, [ntuple]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _memory(model_dir: Path, threads: int) -> dict:
    """Start-up and resident memory of the Predictor, in a process without TensorFlow."""
    import numpy as np
    import onnxruntime as ort

    from deepjet_nb.deploy import MODEL_ONNX, OPTIMISED_ONNX, Predictor, session_options

    before = _rss_mb()
    predictor = Predictor(model_dir)
    rng = np.random.default_rng(0)
    batches = {b: {g: rng.normal(size=(b, *s)).astype(np.float32) for g, s in predictor.shapes.items()}
               for b in (1, 256)}
    predictor.predict(batches[1])
    rss_model = _rss_mb() - before  # the first model also brings ONNX Runtime's own start-up allocations
    middle = _rss_mb()
    second = Predictor(model_dir)
    second.predict(batches[1])
    rss_second = _rss_mb() - middle

    def best_of(make, n=5):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            make()
            times.append(time.perf_counter() - start)
        return min(times)

    def session(name, optimised):
        return lambda: ort.InferenceSession(str(model_dir / name), session_options(1, optimised=optimised),
                                            providers=["CPUExecutionProvider"])

    out = {"load_s": round(best_of(lambda: Predictor(model_dir)), 4),
           "session_optimised_s": round(best_of(session(OPTIMISED_ONNX, True)), 4),
           "load_unoptimised_s": round(best_of(session(MODEL_ONNX, False)), 4),
           "rss_model_mb": round(rss_model, 2), "rss_second_model_mb": round(rss_second, 2)}
    del second
    for batch, key in ((1, "rss_per_extra_thread_mb"), (256, "rss_per_extra_thread_mb_batch256")):
        rss = {n: _rss_while_running(predictor, batches[batch], n) for n in (1, threads)}
        out[key] = round(max(rss[threads] - rss[1], 0.0) / (threads - 1), 3)
    out["rss_total_mb"] = round(_rss_mb(), 1)
    return out


def _rss_while_running(predictor, x, n_threads, seconds=1.0) -> float:
    """Peak resident memory while ``n_threads`` threads call the one ``predictor`` concurrently."""
    stop = threading.Event()

    def work():
        while not stop.is_set():
            predictor.predict(x)

    workers = [threading.Thread(target=work) for _ in range(n_threads)]
    for w in workers:
        w.start()
    peak = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, _rss_mb())
        time.sleep(0.01)
    stop.set()
    for w in workers:
        w.join()
    return peak


if __name__ == "__main__":
    main()
