"""Parameter scans of the pipeline notebooks: a notebook × a grid of parameters (× seeds) → one papermill run per
point, on local processes or a Dask cluster → a table of what each run recorded (docs/formats.md §5).

Every combination of the grid's values (and, with ``seeds=N``, of the notebook's ``seed`` parameter from 0 to
N - 1) is one *point*: one execution of the notebook with those parameters, in its own directory
``DIR/points/<id>/`` holding the executed notebook and the notebook's ``out_dir``. A point runs in a temporary
directory moved into place when it is done, so a point directory is always complete; a rerun skips the points
that finished and retries the ones that failed or never ran. A point that fails is reported with its
parameters and the cell that raised; the others finish. The numbers each notebook records
(:func:`deepjet_nb.record.record`, the convention the tests of the notebooks read too) are collected into
``DIR/scan.csv`` and ``DIR/scan.json``; the comparison plots go to ``DIR/plots/`` and the same plots, live,
are in :class:`deepjet_nb.widgets.ScanExplorer`.

>>> from deepjet_nb.scan import scan
>>> result = scan("train", {"lr": [1e-3, 3e-3], "batch_size": [256, 512]}, "runs/scan", seeds=2,
...               parameters={"data": "runs/data/deepcsv", "model": "deepcsv", "epochs": 3}, jobs=2)  # doctest: +SKIP
>>> print(result.table())                                                                     # doctest: +SKIP

Command-line values are text; they are parsed to the type of the parameter's default in the notebook (int,
float, bool, str; a Python literal where the default is None, a list or a mapping). With ``scheduler`` (a
Dask address or ``distributed.Client``) the points run on the cluster's workers: the notebook, ``DIR`` and
every path given as a parameter must then be reachable under the same names from the workers (a shared
filesystem), and the workers need this package and a ``python3`` Jupyter kernel.

Modules: :mod:`~deepjet_nb.scan.grid` (parsing, typing and expanding grids), :mod:`~deepjet_nb.scan.runner` (the
points run by papermill, locally or on Dask), :mod:`~deepjet_nb.scan.results` (the table and its plots); every
public name is importable from ``deepjet_nb.scan``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._lock import output_lock
from .grid import (RESERVED, SEED, Plan, Point, expand, notebook_parameters, parse_grid, plan, resolve_notebook,
                   typed_grid, value_key, value_text)
from .results import (EXECUTED, POINT_JSON, POINTS, SCAN_CSV, SCAN_JSON, Scan, open_scan, write_parameter_plots)
from .runner import run_point, run_points

__all__ = ["scan", "plan", "open_scan", "write_plots", "Scan", "Point", "Plan", "parse_grid", "notebook_parameters",
           "typed_grid", "expand", "resolve_notebook", "value_key", "value_text", "run_points", "run_point",
           "SCAN_JSON", "SCAN_CSV", "POINT_JSON", "RESERVED", "SEED"]

MAX_ROC_POINTS = 6          # static ROC plot: the best points by the metric


def scan(notebook: str | os.PathLike, grid: Mapping[str, Sequence], out: str | os.PathLike, *,
         seeds: int | None = None, parameters: Mapping[str, object] | None = None, jobs: int | None = None,
         scheduler=None, plots: bool = True, metric: str | None = None, progress: bool = True) -> Scan:
    """Run ``notebook`` at every point of ``grid`` (× ``seeds``) into the scan directory ``out``.

    Inputs: ``notebook`` a path or a shipped pipeline notebook's name; ``grid`` parameter → values (text values
    are parsed, :func:`typed_grid`); ``seeds`` scans the notebook's ``seed`` over 0 … seeds-1; ``parameters``
    fixed values for every point; ``jobs`` local processes (default: one per point up to the CPU count) or
    ``scheduler`` a Dask address or ``distributed.Client``; ``plots`` writes the static plots of ``metric``
    (:func:`write_plots`). The points are those of :func:`plan` (a grid key with one value is fixed; paths are
    made absolute). Points that finished in an earlier run are skipped.

    Returns the :class:`Scan` (``ran``, ``skipped`` and ``failed`` say what happened to which point). Raises
    :class:`ArgumentError` for a bad grid (before anything runs) or when ``out`` holds a scan of another
    notebook version or other fixed parameters. A failed point does not raise: it is in ``failed`` and in the
    tables with its parameters and the cell that failed.
    """
    path = resolve_notebook(notebook)
    planned = plan(path, grid, seeds=seeds, parameters=parameters)
    out = Path(out)
    with output_lock(out, what="deepjet-nb scan"):
        result = run_points(path, planned, out, seeds=seeds, jobs=jobs, scheduler=scheduler, progress=progress)
        if plots and result.metrics:
            write_plots(result, metric)
    return result


def write_plots(result: Scan | str | os.PathLike, metric: str | None = None, *,
                formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write the static comparison plots into ``DIR/plots/``: ``<metric>_vs_<parameter>`` for each varied
    parameter (seed spread as error bars) and, when points left prediction files, ``roc`` with the ROC curves
    of the best :data:`MAX_ROC_POINTS` points by the metric (:func:`deepjet_nb.widgets.scan_roc_plot`, the
    overlay of the scan explorer). Returns the written paths."""
    from ..widgets import scan_roc_plot

    result = result if isinstance(result, Scan) else open_scan(result)
    metric = result.check_metric(metric) if metric else result.default_metric()
    written = write_parameter_plots(result, metric, formats)
    roc = scan_roc_plot(result, result.best(metric, MAX_ROC_POINTS))
    if roc is not None:
        written += roc.savefig(result.directory / "plots" / "roc", formats)
    return written


# ---------------------------------------------------------------------------------------------------------
# command line


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb scan``."""
    p = subparsers.add_parser(
        "scan", help="run a pipeline notebook over a parameter grid (papermill; local processes or Dask)",
        description="Run NOTEBOOK once per grid point (x seeds) with papermill, each point in DIR/points/<id>/; "
                    "collect what each run recorded into DIR/scan.csv and DIR/scan.json and plot it into "
                    "DIR/plots/. A rerun skips finished points. Exit code 1 if any point failed.")
    p.add_argument("notebook", metavar="NOTEBOOK", help="notebook path, or a pipeline notebook's name (train, "
                                                        "convert, evaluate)")
    p.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2",
                   help="parameter values to scan; a key with one value is fixed for every point")
    p.add_argument("--seeds", type=int, default=None, metavar="N", help="also scan the notebook's seed over 0..N-1")
    p.add_argument("--out", required=True, metavar="DIR", help="scan directory")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=int, default=None, metavar="J",
                       help="local worker processes (default: one per point up to the CPU count)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="Dask scheduler address, e.g. tcp://host:8786 (paths must be shared with the workers)")
    p.add_argument("--metric", default=None, help="metric of the plots (default: the validation b efficiency "
                                                  "at 1%% mistag when recorded)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    result = scan(args.notebook, parse_grid(args.grid), args.out, seeds=args.seeds, jobs=args.jobs,
                  scheduler=args.scheduler, metric=args.metric, progress=not args.no_progress)
    print(result.table(args.metric))
    print(f"{result.directory}: {len(result.ran)} point(s) run, {len(result.skipped)} skipped, "
          f"{len(result.failed)} failed; tables {SCAN_CSV}, {SCAN_JSON}")
    for point_id, record in result.failed.items():
        executed = result.directory / POINTS / point_id / EXECUTED
        where = f" ({executed})" if executed.is_file() else ""
        print(f"deepjet-nb scan: failed: {Point(record['parameters']).label()}: {record['error']}{where}",
              file=sys.stderr)
    return 1 if result.failed else 0
