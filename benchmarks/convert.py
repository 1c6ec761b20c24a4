"""Conversion speed and memory: `deepjet` conversion vs a plain uproot read of the same branches.

Generates (once, cached under .cache/benchmarks/) random ntuples in the DeepNTuples schema with N and 3N
jets, then for each size, in fresh single-process subprocesses: times a plain ``uproot`` read of exactly the
branches the conversion reads (same chunk size), and a full ``deepjet`` conversion (statistics pass +
conversion + resampling + writing shards), with the peak RSS of the converting process.

Usage: python benchmarks/convert.py [--jets 100000] [--scale 3] [--step-size 50000]
The last line is one JSON object: jets, jets_per_s, read_only_s, convert_s, ratio (= convert_s /
read_only_s), peak_rss_mb for N jets, and the same figures under "larger" for the 3N-jet input.
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


def ntuple(n_jets: int) -> Path:
    """The cached random ntuple with ``n_jets`` jets (written on first use, seed fixed)."""
    sys.path.insert(0, str(ROOT))
    from deepjet_nb._atomic import atomic_path
    from deepjet_nb._synthetic import write_ntuple

    path = CACHE / f"synthetic_{n_jets}.root"
    if not path.is_file():
        with atomic_path(path) as tmp:
            # Baskets of 5000 jets: real CMS files hold a few thousand jets per basket, not all of them.
            write_ntuple(tmp, n_jets, seed=n_jets, step=5_000)
    return path


def measure(mode: str, path: str, step_size: int) -> dict:
    """In this process: time one read-only pass or one conversion; report seconds and peak RSS."""
    sys.path.insert(0, str(ROOT))
    import uproot

    from deepjet_nb import convert as conv
    from deepjet_nb.config import load_config
    from deepjet_nb._synthetic import write_ntuple

    cfg = load_config("deepjet")
    out = CACHE / "out"
    shutil.rmtree(out, ignore_errors=True)
    # Warm-up on a tiny file: imports and numba's cached kernels load outside the timed region.
    warm = write_ntuple(CACHE / "warmup.root", 500, seed=0)
    conv.convert([warm], out / "warmup", cfg, jobs=1, progress=False)
    start = time.perf_counter()
    if mode == "read":
        n = 0
        with uproot.open(path) as f:
            for arrays in f[cfg.tree].iterate(list(conv._all_branches(cfg)), step_size=step_size,
                                              library="ak", how=dict):
                n += len(arrays["jet_pt"])
    else:
        result = conv.convert([path], out / "dataset", cfg, jobs=1, step_size=step_size, progress=False)
        assert result.ok, result.failed
        n = sum(s["n_jets"] for s in result.manifest["shards"])
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "n": n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(mode: str, path: Path, step_size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path), "--step-size", str(step_size)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def bench(n_jets: int, step_size: int) -> dict:
    path = ntuple(n_jets)
    read = run_child("read", path, step_size)
    conv = run_child("convert", path, step_size)
    figures = {"jets": n_jets, "jets_per_s": round(n_jets / conv["seconds"]),
               "read_only_s": round(read["seconds"], 3), "convert_s": round(conv["seconds"], 3),
               "ratio": round(conv["seconds"] / read["seconds"], 3),
               "peak_rss_mb": round(conv["peak_rss_mb"], 1), "jets_written": conv["n"],
               "file_mb": round(path.stat().st_size / 2**20, 1)}
    print(json.dumps(figures), flush=True)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=100_000)
    parser.add_argument("--scale", type=int, default=3, help="size factor of the larger input")
    parser.add_argument("--step-size", type=int, default=50_000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.step_size)))
        return
    small = bench(args.jets, args.step_size)
    larger = bench(args.jets * args.scale, args.step_size)
    print(json.dumps({**small, "larger": larger}))


if __name__ == "__main__":
    main()
