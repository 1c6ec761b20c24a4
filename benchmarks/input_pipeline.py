"""Benchmark: DeepJet training throughput from the streaming shard pipeline vs in-memory arrays.

Makes a converted DeepJet dataset (random ntuples in the DeepNTuples schema through the real converter; cached
in --workdir), then trains DeepJet for a fixed number of steps three ways in the same process, after a warm-up
that traces the model:

1. streaming: ``JetBatches(...).as_tf_dataset()`` with a bounded shard buffer (the training default);
2. in memory: ``model.fit`` on numpy arrays loaded beforehand (Keras' own array pipeline);
3. streaming with the training dashboard (text mode) attached, to measure its overhead.

The three ways alternate ``--repeats`` times and the best time of each counts (the CPU is shared). Last line: one JSON object with
``streaming_jets_per_s``, ``in_memory_jets_per_s``, ``ratio`` (target ≥ 0.9), ``peak_rss_mb`` (the process
peak, reached when the in-memory arrays are loaded), ``streaming_peak_rss_mb`` (peak before that), and
``dashboard_overhead_pct`` (time inside the dashboard callback / training time, text mode; target < 3) with
``dashboard_jets_per_s``, and ``dashboard_widget_overhead_pct`` (the same in widget mode).

    python benchmarks/input_pipeline.py --steps 30 --batch-size 512
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4, help="input files (shards)")
    parser.add_argument("--jets-per-file", type=int, default=12000)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per way")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--buffer-shards", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where the dataset is made (default: a temp dir)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="djn-bench-"))
    data = _dataset(workdir, args.files, args.jets_per_file)

    import keras

    from deepjet_nb.dashboard import TrainingDashboard
    from deepjet_nb.dataset import open_dataset
    from deepjet_nb.models import build_model
    from deepjet_nb.batches import JetBatches

    keras.utils.set_random_seed(0)
    ds = open_dataset(data)
    model = build_model("deepjet", ds.manifest)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    batches = JetBatches(ds, batch_size=args.batch_size, seed=0, buffer_shards=args.buffer_shards)
    n_jets = args.steps * args.batch_size
    if n_jets > ds.n_jets:
        raise SystemExit(f"--steps x --batch-size = {n_jets} jets, the dataset has {ds.n_jets}: more jets needed")

    def fit_streaming(callbacks=()):
        t0 = time.perf_counter()
        model.fit(batches.as_tf_dataset(), steps_per_epoch=args.steps, epochs=1, callbacks=list(callbacks),
                  shuffle=False, verbose=0)
        return time.perf_counter() - t0

    x = y = w = None

    def fit_memory():
        t0 = time.perf_counter()
        model.fit(x, y, sample_weight=w, batch_size=args.batch_size, steps_per_epoch=args.steps, epochs=1,
                  shuffle=True, verbose=0)
        return time.perf_counter() - t0

    def fit_dashboard(mode="text"):
        # Widget mode updates real widgets (no frontend attached) once a second, as in a notebook.
        dash = TrainingDashboard(epochs=1, steps_per_epoch=args.steps, batch_size=args.batch_size, mode=mode,
                                 text_every=5.0, update_every=1.0, display=False, stream=open(os.devnull, "w"))
        return fit_streaming([dash]), dash.overhead_s

    fit_streaming()  # warm-up: traces the train function (the same graph serves every way below)
    fit_streaming()
    streaming_rss = _peak_rss_mb()  # before any array is loaded whole
    arrays = ds.load()
    x = {g: arrays[g] for g in ds.inputs}
    y, w = arrays["label"].astype("int32"), arrays["weight"]
    fit_memory()  # warm-up: Keras' array adapter builds its own dataset
    # Interleaved repeats, best of each: the machine is shared, so load drifts during the run.
    times = {"streaming": [], "memory": [], "dashboard": [], "dashboard_widget": []}
    for _ in range(args.repeats):
        times["streaming"].append(fit_streaming())
        times["memory"].append(fit_memory())
        times["dashboard"].append(fit_dashboard())
        times["dashboard_widget"].append(fit_dashboard("widget"))
    streaming, memory = min(times["streaming"]), min(times["memory"])
    with_dash = min(times["dashboard"], key=lambda t: t[0])
    with_widget = min(times["dashboard_widget"], key=lambda t: t[0])

    result = {
        "model": "deepjet",
        "params": int(model.count_params()),
        "jets": int(ds.n_jets),
        "shards": len(ds.shard_names),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "buffer_shards": args.buffer_shards,
        "streaming_jets_per_s": round(n_jets / streaming, 1),
        "in_memory_jets_per_s": round(n_jets / memory, 1),
        "ratio": round(memory / streaming, 3),
        "streaming_peak_rss_mb": round(streaming_rss, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "dashboard_jets_per_s": round(n_jets / with_dash[0], 1),
        "dashboard_overhead_pct": round(100 * with_dash[1] / with_dash[0], 3),
        "dashboard_widget_overhead_pct": round(100 * with_widget[1] / with_widget[0], 3),
        "cpu_count": os.cpu_count(),
        "times_s": {k: [round(t[0] if isinstance(t, tuple) else t, 3) for t in v] for k, v in times.items()},
    }
    print(json.dumps(result))
    return result


def _dataset(workdir: Path, files: int, jets_per_file: int) -> Path:
    """A converted DeepJet dataset of random ntuples (reused when already there)."""
    out = workdir / f"deepjet_{files}x{jets_per_file}"
    if (out / "manifest.json").exists():
        return out
    from deepjet_nb.testing import write_ntuple
    from deepjet_nb.convert import convert

    ntuples = [write_ntuple(workdir / f"bench_{i}.root", jets_per_file, seed=i) for i in range(files)]
    result = convert(ntuples, out, "deepjet", jobs=1, progress=False)
    if not result.ok:
        raise SystemExit(f"conversion failed: {result.failed}")
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


if __name__ == "__main__":
    main()
