"""Benchmark: wall time and memory of each tutorial, run top to bottom as a user would, one fresh kernel each.

Runs the tutorials in order (default 01 to 09) with papermill, each in a new Jupyter kernel, from one working
directory (``--cwd``, default a new temporary directory), so that they share the sample cache
``runs/tutorials/samples`` and each finds what the earlier ones made (03-06 use each other's runs), as in a
JupyterLab session. ``--params default`` (the default) runs each notebook with its own parameters,
``--params small`` with the small ones of the test suite (a smoke run of a few minutes). ``--only 03 04`` runs a
subset (their inputs must then be in ``--cwd`` already, or be made by them).

While a notebook runs, a thread samples every 0.2 s the resident memory (RSS) of the kernel process and of the
kernel with all its descendants (generation and conversion workers, Dask workers, a model server: what the
notebook starts). The second is a sum of RSS: pages the processes share count once per process, so it is an
upper bound of what they hold together. ``--by-cell`` also prints, per notebook, the cells during which the
kernel's RSS grew most (where the memory goes).

Targets (Binder-sized tutorials, default parameters, warm caches): peak kernel RSS <= 1.5 GB, each tutorial < 5 min.

Prints one line per tutorial (wall seconds, peak kernel RSS, peak RSS of the kernel with its children) and, last,
one JSON object: ``{"params", "cwd", "tutorials": {name: {"wall_s", "peak_kernel_rss_mb", "peak_tree_rss_mb"
[, "error"] [, "cells"]}}, "max_kernel_rss_mb", "max_tree_rss_mb", "total_wall_s", "failed"}``; ``cells``
(with ``--by-cell``) maps a cell's index in the executed copy (``runs/tutorials/executed/`` under ``--cwd``; with
small parameters papermill's injected-parameters cell counts) to ``{"start_mb", "end_mb", "peak_mb"}``: the
kernel's RSS when the cell started, when the next one started, and its peak in between. A tutorial that
fails is reported with its ``error`` and the next ones still run; the exit status is then 1.

    python benchmarks/tutorials.py --params small [--only 03 04] [--cwd DIR] [--by-cell]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
DEFAULT_ORDER = ("01", "02", "03", "04", "05", "06", "07", "08", "09")
MB = 1024 * 1024
SAMPLE_S = 0.2

# The test suite's small parameters (tests/test_tutorial_*.py and the papermill tests of each stage), with the
# shared example samples in place of the test fixtures: ``events`` small wherever a tutorial makes samples.
# A key a notebook does not have (yet) is left out for it, so this table survives a renamed parameter.
SMALL = {
    "01": {"events": 300, "jobs": 1},
    "02": {"events": 300},
    "03": {"events": 300, "epochs": 2, "batch_size": 256},
    "04": {"events": 300, "epochs": 2, "batch_size": 256},
    "05": {"test_events": 200},
    "06": {"test_events": 200, "repeats": 2},
    "07": {"events": 300, "test_events": 100, "epochs": 3, "max_events": 60},
    "08": {"events": 240, "epochs": 1, "batch_size": 128},
    "09": {"events": 300, "test_events": 200, "batch_sizes": [512], "seeds": 2, "epochs": 1, "workers": 2},
    "10": {"jets": 3000, "epochs": 3},
    "11": {"events": 300, "test_events": 200, "epochs": 2, "batch_size": 256},
}


class KernelMemory:
    """Samples, in a thread, the RSS of this process's kernel child (and of its descendants) every 0.2 s;
    ``cell`` names the cell running now, so that growth is attributed to cells."""

    def __init__(self):
        self.peak_kernel = self.peak_tree = 0
        self.cell: int | None = None
        self.cells: dict[int, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def cell_started(self, cell_index: int, **_):
        rss = self._sample()[0]
        self.cells[cell_index] = {"start_mb": rss / MB, "end_mb": rss / MB, "peak_mb": rss / MB}
        self.cell = cell_index

    def _run(self):
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def _sample(self) -> tuple[int, int]:
        kernel_rss = tree_rss = 0
        for kernel in _kernels():
            try:
                kernel_rss += kernel.memory_info().rss
                tree_rss += kernel.memory_info().rss + sum(_rss(p) for p in kernel.children(recursive=True))
            except psutil.Error:  # the kernel ended between listing and reading
                continue
        self.peak_kernel, self.peak_tree = max(self.peak_kernel, kernel_rss), max(self.peak_tree, tree_rss)
        if self.cell is not None and kernel_rss:
            entry = self.cells[self.cell]
            entry["end_mb"], entry["peak_mb"] = kernel_rss / MB, max(entry["peak_mb"], kernel_rss / MB)
        return kernel_rss, tree_rss


def _kernels() -> list[psutil.Process]:
    """The Jupyter kernels papermill started: children of this process running ipykernel."""
    found = []
    for child in psutil.Process().children():
        try:
            if any("ipykernel" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def notebook(number: str) -> Path:
    """``tutorials/<number>_*.ipynb``; SystemExit when there is none."""
    found = sorted(TUTORIALS.glob(f"{number}_*.ipynb"))
    if not found:
        raise SystemExit(f"no tutorial {number}_*.ipynb in {TUTORIALS}")
    return found[0]


def parameters(path: Path, number: str, kind: str) -> dict:
    """The parameters to run ``path`` with: none (its defaults) or the small ones it has."""
    if kind == "default":
        return {}
    import papermill

    known = papermill.inspect_notebook(str(path))
    return {k: v for k, v in SMALL.get(number, {}).items() if k in known}


def run_tutorial(path: Path, params: dict, cwd: Path, out_dir: Path, by_cell: bool) -> dict:
    """Execute ``path`` with papermill in a fresh kernel in ``cwd``; its wall time and memory peaks."""
    import papermill

    entry = {}
    start = time.perf_counter()
    with KernelMemory() as memory:
        try:
            papermill.execute_notebook(str(path), str(out_dir / path.name), parameters=params, cwd=str(cwd),
                                       kernel_name="python3", progress_bar=False,
                                       on_cell_execute=memory.cell_started)
        except Exception as err:  # a failed tutorial is reported, the next ones still run
            entry["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}"
    entry.update(wall_s=round(time.perf_counter() - start, 1), peak_kernel_rss_mb=round(memory.peak_kernel / MB),
                 peak_tree_rss_mb=round(memory.peak_tree / MB))
    if by_cell:
        entry["cells"] = {i: {k: round(v) for k, v in c.items()} for i, c in memory.cells.items()}
    return entry


def _line(name: str, entry: dict) -> str:
    failed = f"   FAILED {entry['error']}" if "error" in entry else ""
    return (f"{name:24s} {entry['wall_s']:7.1f} s   kernel {entry['peak_kernel_rss_mb']:5d} MB   "
            f"with children {entry['peak_tree_rss_mb']:5d} MB{failed}")


def _print_cells(cells: dict, top: int = 5):
    grew = sorted(cells.items(), key=lambda item: item[1]["peak_mb"] - item[1]["start_mb"], reverse=True)
    for index, c in grew[:top]:
        print(f"      cell {index:2d}: {c['start_mb']:6.0f} MB -> peak {c['peak_mb']:6.0f} MB, "
              f"end {c['end_mb']:6.0f} MB", flush=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", choices=("default", "small"), default="default",
                        help="the notebooks' own parameters, or the test suite's small ones")
    parser.add_argument("--only", nargs="+", metavar="NN", help="tutorial numbers to run (default: 01 to 09)")
    parser.add_argument("--cwd", default=None, help="working directory of the kernels (default: a temp dir)")
    parser.add_argument("--by-cell", action="store_true", help="report the cells where the kernel's RSS grew")
    args = parser.parse_args(argv)

    cwd = Path(args.cwd or tempfile.mkdtemp(prefix="djn-tutorials-")).resolve()
    executed = cwd / "runs" / "tutorials" / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    # The kernels import this working tree even where the package is not installed.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    results = {}
    for number in args.only or DEFAULT_ORDER:
        path = notebook(number)
        entry = results[path.stem] = run_tutorial(path, parameters(path, number, args.params), cwd, executed,
                                                  args.by_cell)
        print(_line(path.stem, entry), flush=True)
        if args.by_cell:
            _print_cells(entry["cells"])
    figures = {
        "params": args.params, "cwd": str(cwd), "tutorials": results,
        "max_kernel_rss_mb": max(r["peak_kernel_rss_mb"] for r in results.values()),
        "max_tree_rss_mb": max(r["peak_tree_rss_mb"] for r in results.values()),
        "total_wall_s": round(sum(r["wall_s"] for r in results.values()), 1),
        "failed": [name for name, r in results.items() if "error" in r],
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    raise SystemExit(1 if main()["failed"] else 0)
