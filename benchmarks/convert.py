"""Conversion speed and memory: `deepjet` conversion vs a plain uproot read of the same branches.

Inputs are real generated jets: ttbar events from the project's Pythia sample producer
(``deepjet_nb.samples.generate``, about 5 jets per event), written once and cached under
``.cache/benchmarks/`` (git-ignored) in files named after the generation arguments, so reruns skip the
generation. The default input has 22,000 events (>= 100k jets); the larger one is a single file with
``--scale`` (3) times as many events, generated with the same seed (its first 22,000 events are those of the
default input). Each input is converted as one file.

For each input, in two fresh single-process subprocesses: a plain ``uproot`` read of exactly the branches the
conversion reads (``TTree.iterate``, same chunk size), and a full ``deepjet`` conversion (statistics pass,
conversion pass with resampling, shard writing, source checksum, manifest). Each subprocess does its work once
untimed (imports, numba's cached kernels, the file in the OS page cache: the same warm-up for both sides),
then ``--repeat`` timed runs; the fastest is reported. Peak RSS is that of the converting process.

The same conversion with the DeepJet config written as a layout of one's own (``schema: custom``, no preset
schema) is timed as well: ``generic_convert_s`` and ``generic_vs_preset`` (target <= 1.10).

Usage: python benchmarks/convert.py [--events 22000] [--scale 3] [--seed 1] [--step-size 50000] [--repeat 2]
The last line is one JSON object: jets, jets_per_s, read_only_s, convert_s, ratio (= convert_s /
read_only_s), generic_convert_s, generic_vs_preset, peak_rss_mb (and details: input file, events, MB, jets written) for the default input, and the
same figures under "larger" for the larger input.
Targets: ratio <= 1.5, peak_rss_mb <= 1500, and peak RSS about the same for both sizes.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "benchmarks"
PROCESS = "ttbar"


def sample(events: int, seed: int, jobs: int = 2) -> Path:
    """The cached ttbar sample of ``events`` events and ``seed``, generated on first use.

    The file name holds every argument that changes the content (``jobs`` does not: the producer seeds per
    block of events, so the output is the same for any number of worker processes).
    """
    from deepjet_nb.samples import generate

    path = CACHE / f"{PROCESS}_events{events}_seed{seed}.root"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.name} (cached for later runs)", file=sys.stderr, flush=True)
        generate(PROCESS, events, path, seed=seed, jobs=jobs, progress=True)  # atomic: appears when complete
    return path


def measure(mode: str, path: str, step_size: int, repeat: int) -> dict:
    """In this process: one untimed warm-up run, then ``repeat`` timed runs of the read or the conversion."""
    import uproot

    from deepjet_nb import convert as conv
    from deepjet_nb.config import load_config
    from deepjet_nb.jets import all_branches

    cfg = load_config("deepjet") if mode != "generic" else generic_deepjet()
    branches = list(all_branches(cfg))
    out = CACHE / f"out-{mode}"

    def read_only():
        n = 0
        with uproot.open(path) as f:
            for arrays in f[cfg.tree].iterate(branches, step_size=step_size, library="ak", how=dict):
                n += len(arrays["jet_pt"])
        return n

    def convert():
        result = conv.convert([path], out, cfg, jobs=1, step_size=step_size, progress=False)
        assert result.ok, result.failed
        return sum(s["n_jets"] for s in result.manifest["shards"])

    work = read_only if mode == "read" else convert
    shutil.rmtree(out, ignore_errors=True)
    work()  # warm-up, untimed
    times = []
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)  # the previous run's output: deleting it is not converting
        start = time.perf_counter()
        n = work()
        times.append(time.perf_counter() - start)
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": min(times), "all_seconds": times, "n": n,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def generic_deepjet():
    """The shipped DeepJet config written as a layout of one's own (``schema: custom``: no preset, the file says
    the rest); the derived track-counting spectator, a DeepNTuples preset feature, is left out."""
    from deepjet_nb.config import config_from_dict, load_config

    raw = load_config("deepjet").to_dict()
    raw["spectators"] = [s for s in raw["spectators"] if s != "trackCounting_sip3dSig2"]
    return config_from_dict({**raw, "schema": "custom"}, source="generic deepjet")


def run_child(mode: str, path: Path, step_size: int, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path), "--step-size", str(step_size),
           "--repeat", str(repeat)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def bench(events: int, seed: int, step_size: int, repeat: int) -> dict:
    import uproot

    path = sample(events, seed)
    with uproot.open(path) as f:
        n_jets = int(f["deepntuplizer/tree"].num_entries)
    read = run_child("read", path, step_size, repeat)
    conv = run_child("convert", path, step_size, repeat)
    generic = run_child("generic", path, step_size, repeat)
    figures = {"jets": n_jets, "jets_per_s": round(n_jets / conv["seconds"]),
               "read_only_s": round(read["seconds"], 3), "convert_s": round(conv["seconds"], 3),
               "ratio": round(conv["seconds"] / read["seconds"], 3),
               "generic_convert_s": round(generic["seconds"], 3),
               "generic_vs_preset": round(generic["seconds"] / conv["seconds"], 3),
               "peak_rss_mb": round(conv["peak_rss_mb"], 1),
               "read_peak_rss_mb": round(read["peak_rss_mb"], 1),
               "input": f"one file: {path.name} ({PROCESS}, {events} events, seed {seed}, Pythia sample producer)",
               "events": events, "file_mb": round(path.stat().st_size / 2**20, 1), "jets_written": conv["n"],
               "timed_runs": {"read_s": [round(t, 3) for t in read["all_seconds"]],
                              "convert_s": [round(t, 3) for t in conv["all_seconds"]]}}
    print(json.dumps(figures), flush=True)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=22_000, help="ttbar events of the default input")
    parser.add_argument("--scale", type=int, default=3, help="size factor of the larger input")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step-size", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs after the warm-up (fastest counts)")
    parser.add_argument("--generate-only", action="store_true", help="write the cached inputs and stop")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.step_size, args.repeat)))
        return
    if args.generate_only:
        for events in (args.events, args.events * args.scale):
            print(sample(events, args.seed))
        return
    small = bench(args.events, args.seed, args.step_size, args.repeat)
    larger = bench(args.events * args.scale, args.seed, args.step_size, args.repeat)
    print(json.dumps({**small, "larger": larger}))


if __name__ == "__main__":
    main()
