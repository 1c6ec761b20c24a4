"""Parameter scans of the pipeline notebooks: a notebook × a grid of parameters (× seeds) → one papermill run per
point, on local processes or a Dask cluster → a table of what each run recorded (docs/formats.md §5).

Every combination of the grid's values (and, with ``seeds=N``, of the notebook's ``seed`` parameter from 0 to
N - 1) is one *point*: one execution of the notebook with those parameters, in its own directory
``DIR/points/<id>/`` holding the executed notebook and the notebook's ``out_dir``. A point runs in a temporary
directory moved into place when it is done, so a point directory is always complete; a rerun skips the points
that finished and retries the ones that failed or never ran. A point that fails is reported with its
parameters and the cell that raised; the others finish. The numbers each notebook records
(:func:`deepjet_nb.summary.record`, the convention the tests of the notebooks read too) are collected into
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
"""

from __future__ import annotations

import ast
import csv
import difflib
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from ._atomic import TMP_PREFIX, atomic_path, sha256_file, write_text_atomic
from ._jsonio import read_object, to_strict, write_json
from ._lock import output_lock
from .errors import ArgumentError, one_line

__all__ = ["scan", "plan", "open_scan", "write_plots", "Scan", "Point", "Plan", "parse_grid", "notebook_parameters",
           "typed_grid", "expand", "resolve_notebook", "value_key", "value_text", "SCAN_JSON", "SCAN_CSV"]

FORMAT_VERSION = 1
SCAN_JSON = "scan.json"
SCAN_CSV = "scan.csv"
POINTS = "points"           # DIR/points/<id>/ one directory per point
POINT_JSON = "point.json"   # the point's record, written last inside its directory
EXECUTED = "notebook.ipynb"  # the executed copy of the notebook
KERNEL_LOG = "kernel.log"   # what the notebook's kernel process itself printed
OUT = "out"                 # the notebook's out_dir, relative to the point directory (its working directory)
PLOTS = "plots"
PREDICTIONS = "predictions"  # prediction files (docs/formats.md §4) a notebook leaves in out_dir/predictions/
SEED = "seed"
RESERVED = ("out_dir", "summary")  # set by the scan for every point
KERNEL = "python3"          # the Jupyter kernel of the Python running the scan (the venv's)
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"  # shipped pipeline notebooks (source checkout)
MAX_ROC_POINTS = 6          # static ROC plot: the best points by the metric
_ID_CHARS = re.compile(r"[^A-Za-z0-9._+=-]")


# ---------------------------------------------------------------------------------------------------------
# grid


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["lr=1e-3,3e-3", "batch_size=256"]`` → ``{"lr": ["1e-3", "3e-3"], "batch_size": ["256"]}``.

    Values are split at commas outside brackets and quotes, so ``files=["a.root","b.root"],["c.root"]`` has two
    values. Raises :class:`ArgumentError` naming the item for a missing ``=``, an empty value or a key given
    twice.
    """
    grid = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ArgumentError(f"scan: grid item {item!r} is not KEY=VALUE[,VALUE...]")
        if key in grid:
            raise ArgumentError(f"scan: grid key {key!r} given twice")
        values = _split_values(text)
        if not values or any(not v for v in values):
            raise ArgumentError(f"scan: grid item {item!r} has an empty value")
        grid[key] = values
    return grid


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, object]:
    """The parameters of ``notebook`` (its cell tagged ``parameters``) and their default values.

    A default that is not a Python literal (an expression) is returned as its source text. Raises
    :class:`ArgumentError` when the notebook is missing or has no parameters cell.
    """
    import nbformat
    from papermill.translators import PythonTranslator

    path = resolve_notebook(notebook)
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as err:  # nbformat raises JSON, validation and OS errors of several kinds
        raise ArgumentError(f"{path}: not a readable notebook: {type(err).__name__}: {one_line(err)}") from None
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ArgumentError(f"{path}: no cell tagged 'parameters'; a scanned notebook needs one")
    # The points run in a Python kernel: read the cell as papermill's Python translator does.
    return {p.name: _literal(p.default) for p in PythonTranslator.inspect(cells[0])}


def typed_grid(notebook: str | os.PathLike, grid: Mapping[str, Sequence], *, seeds: int | None = None,
               parameters: Mapping[str, object] | None = None) -> dict[str, list]:
    """``grid`` with text values parsed to the types of the notebook's defaults, checked against the notebook.

    Non-text values (from Python) are kept. With ``seeds``, a last key ``seed`` takes the values 0 … seeds-1.
    Raises :class:`ArgumentError` naming the notebook and key for an unknown parameter (with near names), a
    reserved one (``out_dir``, ``summary``), a value of the wrong type, a key both in the grid and in
    ``parameters``, or ``seeds`` without a ``seed`` parameter.
    """
    path = resolve_notebook(notebook)
    defaults = notebook_parameters(path)
    if "out_dir" not in defaults:
        raise ArgumentError(f"{path}: no parameter 'out_dir'; a scanned notebook writes its outputs there")
    fixed = dict(parameters or {})
    for key in [*grid, *fixed]:
        _check_key(path, key, defaults)
    for key in set(grid) & set(fixed):
        raise ArgumentError(f"scan: parameter {key!r} is both in the grid and fixed")
    typed = {}
    for key, values in grid.items():
        values = list(values) if not isinstance(values, (str, bytes)) else [values]
        if not values:
            raise ArgumentError(f"scan: grid key {key!r} has no values")
        typed[key] = [_typed(path, key, v, defaults[key]) for v in values]
        if len({value_key(v) for v in typed[key]}) != len(typed[key]):
            raise ArgumentError(f"scan: grid key {key!r} has a value twice: {typed[key]}")
    if seeds is not None:
        if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
            raise ArgumentError(f"scan: seeds must be an integer >= 1, got {seeds!r}")
        if SEED not in defaults:
            raise ArgumentError(f"{path}: no parameter 'seed', so seeds={seeds} cannot be scanned")
        if SEED in typed or SEED in fixed:
            raise ArgumentError("scan: give either seeds or a 'seed' value, not both")
        typed[SEED] = list(range(seeds))
    return typed


class Point:
    """One grid point: its ``parameters`` (the grid's keys, in grid order) and its directory name ``id``.

    The id spells the parameters (``lr=0.001_batch_size=256_seed=0``); when that needs characters a file name
    should not have, or is long, a short hash of the parameters is appended so ids stay unique.
    """

    def __init__(self, parameters: Mapping[str, object]):
        self.parameters = dict(parameters)
        self.id = _point_id(self.parameters)

    def __repr__(self) -> str:
        return f"Point({self.id!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Point) and value_key(self.parameters) == value_key(other.parameters)

    def __hash__(self) -> int:
        return hash(self.id)

    def label(self, keys: Sequence[str] | None = None) -> str:
        """``lr=0.001, seed=0``: the values of ``keys`` (default all), for legends and messages."""
        keys = self.parameters if keys is None else keys
        return ", ".join(f"{k}={value_text(self.parameters[k])}" for k in keys)


def expand(grid: Mapping[str, Sequence]) -> list[Point]:
    """Every combination of the grid's values, the first key varying slowest (``seed`` last when present)."""
    keys = list(grid)
    return [Point(dict(zip(keys, values))) for values in itertools.product(*(grid[k] for k in keys))]


class Plan(NamedTuple):
    """What :func:`scan` runs: the scanned ``grid`` (typed), the ``fixed`` parameters and the ``points``."""

    grid: dict[str, list]
    fixed: dict[str, object]
    points: list[Point]


def plan(notebook: str | os.PathLike, grid: Mapping[str, Sequence], *, seeds: int | None = None,
         parameters: Mapping[str, object] | None = None) -> Plan:
    """The points :func:`scan` would run, checked against the notebook; nothing runs.

    The grid is typed (:func:`typed_grid`); a key with a single value joins the fixed ``parameters`` (it names
    no point and makes no column); text values naming existing files or directories are made absolute, since
    each point's notebook runs in its own directory. Raises what :func:`typed_grid` raises.
    """
    typed = typed_grid(notebook, grid, seeds=seeds, parameters=parameters)
    fixed = {**(parameters or {}), **{k: v[0] for k, v in typed.items() if len(v) == 1 and k != SEED}}
    fixed = to_strict({k: _absolute_paths(v) for k, v in fixed.items()})
    typed = {k: [_absolute_paths(v) for v in values] for k, values in typed.items() if len(values) > 1 or k == SEED}
    return Plan(typed, fixed, expand(typed))


def resolve_notebook(notebook: str | os.PathLike) -> Path:
    """The notebook file: a path, or the name of a shipped pipeline notebook (``train`` → notebooks/train.ipynb).
    Raises :class:`ArgumentError` when neither exists."""
    path = Path(notebook)
    if path.is_file():
        return path.resolve()
    shipped = NOTEBOOKS / f"{path.name}.ipynb"
    if path.suffix != ".ipynb" and len(path.parts) == 1 and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    raise ArgumentError(f"{notebook}: no such notebook (shipped pipeline notebooks: {', '.join(names)})")


# ---------------------------------------------------------------------------------------------------------
# running


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
    typed, fixed, points = plan(path, grid, seeds=seeds, parameters=parameters)
    out = Path(out)
    with output_lock(out, what="deepjet-nb scan"):
        return _scan(path, typed, fixed, points, out, seeds=seeds, jobs=jobs, scheduler=scheduler, plots=plots,
                     metric=metric, progress=progress)


def _scan(path, typed, fixed, points, out, *, seeds, jobs, scheduler, plots, metric, progress) -> Scan:
    """:func:`scan` with the grid planned and the scan directory locked."""
    from .parallel import Runner

    identity = {"notebook": str(path), "notebook_sha256": sha256_file(path), "parameters": fixed}
    done = _finished_points(out, points, identity)
    todo = [p for p in points if p.id not in done]
    tasks = [{"notebook": str(path), "directory": str((out / POINTS / p.id).resolve()), "id": p.id,
              "parameters": to_strict(p.parameters), "fixed": fixed, "identity": identity} for p in todo]
    records = dict(done)
    if tasks:
        with Runner(jobs, scheduler, n_items=len(tasks), what="scan") as runner:
            results = runner.map(run_point, tasks, desc=f"scan {path.name}", unit="point", progress=progress,
                                 postfix=lambda record: f"{record['id']}: {record['status']}")
            for task, ok, value in results:
                records[task["id"]] = value if ok else _failed_record(task, value)
    result = _write_tables(out, identity, typed, seeds, [records[p.id] for p in points])
    result.ran = [p.id for p in todo]
    result.skipped = [p.id for p in points if p.id in done]
    if plots and result.metrics:
        write_plots(result, metric)
    return result


def run_point(task: dict) -> dict:
    """Execute one point (a worker: runs in any process or on a Dask worker) and return its record.

    The notebook runs in a temporary directory next to the point's directory, with that as working directory
    and ``out_dir = "out"``; the directory, with ``point.json`` (the record) written last, then replaces the
    point's directory. The record says ``status`` "ok" (with the recorded ``summary``) or "failed" (with
    ``error`` and, when a cell raised, ``failed_cell``: its execution count, source, exception name and value).
    """
    start = time.perf_counter()
    with atomic_path(task["directory"], directory=True) as tmp:
        record = {"id": task["id"], "parameters": task["parameters"], "status": "ok", "summary": None,
                  "error": None, "failed_cell": None, "wall_s": None, "notebook": EXECUTED, "out_dir": OUT,
                  "notebook_sha256": task["identity"]["notebook_sha256"], "fixed": task["fixed"]}
        record.update(_execute(task, tmp))
        record["wall_s"] = round(time.perf_counter() - start, 3)
        write_json(tmp / POINT_JSON, record)
    return to_strict(record)


def _execute(task, directory: Path) -> dict:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .summary import read

    parameters = {**task["fixed"], **task["parameters"], "out_dir": OUT}
    try:
        with open(directory / KERNEL_LOG, "w") as log:
            papermill.execute_notebook(task["notebook"], str(directory / EXECUTED), parameters=parameters,
                                       cwd=str(directory), kernel_name=KERNEL, language="python",
                                       progress_bar=False, kernel_manager_class=_logging_kernel_manager(log))
    except PapermillExecutionError as err:
        source = err.source if isinstance(err.source, str) else "".join(err.source or "")
        cell = {"execution_count": err.exec_count, "source": source, "ename": err.ename,
                "evalue": one_line(err.evalue)}
        return {"status": "failed", "failed_cell": cell,
                "error": f"In [{err.exec_count}] {_first_line(source)!r}: {err.ename}: {one_line(err.evalue)}"}
    except Exception as err:  # the kernel died, could not start, the notebook is not JSON...
        return {"status": "failed", "error": f"{type(err).__name__}: {one_line(str(err))}"}
    try:
        summary = read(directory / OUT)
    except (OSError, ValueError) as err:
        return {"status": "failed", "error": f"the notebook recorded no numbers: {OUT}/summary.json "
                                             f"(deepjet_nb.summary.record): {type(err).__name__}: {err}"}
    if not isinstance(summary, dict):
        return {"status": "failed", "error": f"{OUT}/summary.json is not a JSON object"}
    return {"summary": summary}


def _logging_kernel_manager(log):
    """A Jupyter kernel manager class whose kernels write their own stdout and stderr (start-up warnings,
    TensorFlow's log, a crash) into ``log``: the point keeps them, and a scan's terminal keeps its progress bar."""
    from jupyter_client import AsyncKernelManager

    class PointKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            return await super().start_kernel(**kw)

    return PointKernelManager


def _failed_record(task, cause) -> dict:
    """The record of a point whose worker itself failed (nothing of it was moved into place)."""
    return {"id": task["id"], "parameters": task["parameters"], "status": "failed", "summary": None,
            "error": str(cause), "failed_cell": None, "wall_s": None, "notebook": None, "out_dir": None,
            "notebook_sha256": task["identity"]["notebook_sha256"], "fixed": task["fixed"]}


def _finished_points(out: Path, points, identity) -> dict[str, dict]:
    """Records of the points that finished ("ok") in an earlier run; refuses a scan of another notebook version
    or other fixed parameters. Leftovers of killed runs (``.tmp-`` directories) are removed."""
    done = {}
    root = out / POINTS
    if not root.is_dir():
        return done
    for leftover in root.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for point in points:
        record_path = root / point.id / POINT_JSON
        if not record_path.is_file():
            continue
        record = read_object(record_path, error=ArgumentError, what="scan point record")
        if record.get("status") != "ok":
            continue
        if record.get("notebook_sha256") != identity["notebook_sha256"]:
            raise ArgumentError(f"{record_path}: this point was run with another version of {identity['notebook']}; "
                                f"scan into a new directory (or remove {out})")
        if value_key(record.get("fixed")) != value_key(identity["parameters"]):
            raise ArgumentError(f"{record_path}: this point was run with other fixed parameters "
                                f"({record.get('fixed')}, now {identity['parameters']}); scan into a new directory")
        done[point.id] = record
    return done


def _write_tables(out: Path, identity, grid, seeds, records) -> Scan:
    document = {"format_version": FORMAT_VERSION, **identity, "grid": to_strict(grid), "seeds": seeds,
                "points": records}
    write_json(out / SCAN_JSON, document)
    result = Scan(out, document)
    write_text_atomic(out / SCAN_CSV, result.csv())
    return result


# ---------------------------------------------------------------------------------------------------------
# reading


class Scan:
    """A scan directory's table (read with :func:`open_scan`, or returned by :func:`scan`).

    Attributes: ``directory``, ``notebook``, ``grid`` (key → values, ``seed`` included when seeds were
    scanned), ``parameters`` (the fixed ones), ``points`` (:class:`Point` per record, grid order) and
    ``records`` (point id → record as in ``scan.json``). After :func:`scan`, also ``ran``, ``skipped`` (point ids)
    and :attr:`failed`.
    """

    def __init__(self, directory: str | os.PathLike, document: dict):
        self.directory = Path(directory)
        self.document = document
        self.notebook = document.get("notebook")
        self.grid = {k: list(v) for k, v in document.get("grid", {}).items()}
        self.parameters = document.get("parameters", {})
        self.records = {r["id"]: r for r in document.get("points", [])}
        self.points = [Point(r["parameters"]) for r in document.get("points", [])]
        self.ran: list[str] = []
        self.skipped: list[str] = []

    @property
    def keys(self) -> list[str]:
        """The scanned parameters (the table's parameter columns), ``seed`` last when seeds were scanned."""
        return list(self.grid)

    @property
    def varied(self) -> list[str]:
        """The scanned parameters other than ``seed`` (the plots' x axes)."""
        return [k for k in self.grid if k != SEED]

    @property
    def failed(self) -> dict[str, dict]:
        """Point id → record of every failed point."""
        return {i: r for i, r in self.records.items() if r["status"] != "ok"}

    def rows(self) -> list[dict]:
        """One flat dict per point: ``id``, ``status``, the parameters, every recorded number (nested keys
        joined by ".", e.g. ``last.val_loss``), ``wall_s`` and ``error``."""
        rows = []
        for point in self.points:
            record = self.records[point.id]
            row = {"id": point.id, "status": record["status"], **point.parameters}
            row.update(_flatten(record.get("summary") or {}))
            row.update(wall_s=record.get("wall_s"), error=record.get("error"))
            rows.append(row)
        return rows

    @property
    def metrics(self) -> list[str]:
        """Recorded columns that are numbers in at least one finished point (booleans excluded)."""
        found = {}
        for row in self.rows():
            if row["status"] != "ok":
                continue
            for key, value in row.items():
                if key not in self.grid and key not in ("wall_s",) and _is_number(value):
                    found.setdefault(key, None)
        return list(found)

    def default_metric(self) -> str:
        """The metric shown first: a validation metric the plots know (b efficiency at 1 % mistag first), else
        the first recorded number. Raises :class:`ArgumentError` when the scan recorded no numbers."""
        from .plots import METRIC_LABELS

        metrics = self.metrics
        for name in METRIC_LABELS:
            for metric in metrics:
                if metric == name or metric.endswith(f".{name}"):
                    return metric
        if not metrics:
            raise ArgumentError(f"{self.directory}: no finished point recorded a number")
        return metrics[0]

    def check_metric(self, metric: str) -> str:
        """``metric`` if the scan recorded it as a number, else :class:`ArgumentError` naming near names."""
        if metric not in self.metrics:
            near = difflib.get_close_matches(metric, self.metrics, n=3)
            raise ArgumentError(f"{self.directory / SCAN_JSON}: no metric {metric!r}"
                                + (f"; did you mean {', '.join(near)}?" if near else f"; recorded: {self.metrics}"))
        return metric

    def spread(self, metric: str, parameter: str, rows: Sequence[dict] | None = None) -> dict[str, dict]:
        """The metric against ``parameter``, averaged over seeds.

        Returns ``{series label: {"x": [...], "mean": [...], "std": [...], "n": [...]}}``, one series per
        combination of the other varied parameters (label "" when there are none), in grid order; ``std`` is
        the sample standard deviation over the seeds (0 for a single seed). Only finished points of ``rows``
        (default all) with a number for the metric count.
        """
        self.check_metric(metric)
        if parameter not in self.grid:
            raise ArgumentError(f"{self.directory / SCAN_JSON}: {parameter!r} was not scanned ({self.keys})")
        others = [k for k in self.varied if k != parameter]
        index = {k: {value_key(v): i for i, v in enumerate(values)} for k, values in self.grid.items()}
        groups: dict[tuple, dict[int, list]] = {}
        for row in self.rows() if rows is None else rows:
            value = row.get(metric)
            if row["status"] != "ok" or not _is_number(value):
                continue
            group = tuple(index[k][value_key(row[k])] for k in others)
            at = index[parameter][value_key(row[parameter])]
            groups.setdefault(group, {}).setdefault(at, []).append(float(value))
        series = {}
        for group in sorted(groups):
            label = ", ".join(f"{k}={value_text(self.grid[k][i])}" for k, i in zip(others, group))
            steps = sorted(groups[group])
            values = [groups[group][i] for i in steps]
            series[label] = {"x": [self.grid[parameter][i] for i in steps],
                             "mean": [sum(v) / len(v) for v in values],
                             "std": [_std(v) for v in values], "n": [len(v) for v in values]}
        return series

    def predictions(self, point_id: str) -> list[Path]:
        """The prediction files (docs/formats.md §4) the point's notebook left in ``out_dir/predictions/``."""
        return sorted((self.directory / POINTS / point_id / OUT / PREDICTIONS).glob("*.root"))

    def best(self, metric: str, n: int | None = None, rows: Sequence[dict] | None = None) -> list[str]:
        """Ids of the finished points with the highest ``metric`` (of ``rows``, default all), best first."""
        self.check_metric(metric)
        ranked = [r for r in (self.rows() if rows is None else rows)
                  if r["status"] == "ok" and _is_number(r.get(metric))]
        ranked.sort(key=lambda r: r[metric], reverse=True)
        return [r["id"] for r in ranked[:n]]

    def parameter_plot(self, metric: str, parameter: str, rows: Sequence[dict] | None = None):
        """A :class:`~deepjet_nb.plots.ParameterPlot` of :meth:`spread` (seed spread as error bars)."""
        from .plots import ParameterPlot

        plot = ParameterPlot(parameter, metric, title=Path(self.notebook or "").name or None)
        for label, s in self.spread(metric, parameter, rows).items():
            plot.add(s["x"], s["mean"], s["std"], label=label or None)
        return plot

    def roc_plot(self, point_ids: Sequence[str], tasks: Sequence[str] = ("b_vs_udsg", "b_vs_c"), *,
                 colours: dict[str, str] | None = None, cache: dict | None = None):
        """A :class:`~deepjet_nb.plots.RocPlot` overlaying the ROC curves of the points' prediction files
        (one curve per point and tagger, labelled by the point's parameters), or None when none has any.
        ``cache`` (a dict) keeps computed curves between calls."""
        from .plots import RocPlot

        cache = {} if cache is None else cache
        curves = [c for point_id in point_ids for c in self._curves(point_id, tasks, cache)]
        if not curves:
            return None
        signal = curves[0][1].signal
        plot = RocPlot(signal, eff_range=(0.0, 1.0), colours=colours)
        for label, curve in curves:
            if curve.signal == signal:
                plot.add(curve, label=label)
        return plot

    def roc_label(self, point_id: str, tagger: str | None = None) -> str:
        """Legend label of a point: the values of the scanned parameters (and the tagger, if several)."""
        point = Point(self.records[point_id]["parameters"])
        text = point.label([k for k in self.keys if len(self.grid[k]) > 1] or self.keys)
        return f"{text} · {tagger}" if tagger else text

    def _curves(self, point_id, tasks, cache):
        key = (point_id, tuple(tasks))
        if key not in cache:
            from .evaluate import load_taggers, roc

            files = self.predictions(point_id)
            taggers = load_taggers(files, baseline=False) if files else []
            several = len(taggers) > 1
            cache[key] = [(self.roc_label(point_id, t.name if several else None), roc(t, task))
                          for t in taggers for task in tasks]
        return cache[key]

    def csv(self) -> str:
        """The table as CSV text (``scan.csv``): lists and mappings as JSON, missing values empty."""
        rows = self.rows()
        columns = list(dict.fromkeys(["id", "status", *self.keys, *(k for r in rows for k in r)]))
        columns = [c for c in columns if c not in ("wall_s", "error")] + ["wall_s", "error"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
        return buffer.getvalue()

    def table(self, metric: str | None = None, sort: bool = False) -> str:
        """A text table: one line per point with the scanned parameters, ``metric`` (default
        :meth:`default_metric`), the wall time and the status (the failed cell for a failed point)."""
        metric = metric or (self.default_metric() if self.metrics else None)
        rows = self.rows()
        if sort and metric:
            rows.sort(key=lambda r: -r[metric] if _is_number(r.get(metric)) else math.inf)
        columns = [*self.keys, *([metric] if metric else []), "wall_s", "status"]
        cells = [[value_text(r.get(c)) if c != "status" else (r["status"] if r["status"] == "ok" else
                                                           f"FAILED {r['error']}") for c in columns]
                 for r in rows]
        cells = [[f"{r.get(c):.4g}" if c == metric and _is_number(r.get(c)) else cell
                  for c, cell in zip(columns, line)] for r, line in zip(rows, cells)]
        widths = [max(len(c), *(len(line[i]) for line in cells)) if cells else len(c) for i, c in enumerate(columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells]
        return "\n".join(lines)


def open_scan(directory: str | os.PathLike) -> Scan:
    """The scan in ``directory`` (its ``scan.json``). Raises :class:`ArgumentError` naming the file when it is
    missing or not a scan table."""
    directory = Path(directory)
    document = read_object(directory / SCAN_JSON, error=ArgumentError, what="scan table (deepjet-nb scan)")
    if not isinstance(document.get("points"), list) or not isinstance(document.get("grid"), dict):
        raise ArgumentError(f"{directory / SCAN_JSON}: not a scan table (no 'points' list or 'grid' mapping)")
    return Scan(directory, document)


def write_plots(result: Scan | str | os.PathLike, metric: str | None = None, *,
                formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write the static comparison plots into ``DIR/plots/``: ``<metric>_vs_<parameter>`` for each varied
    parameter (seed spread as error bars) and, when points left prediction files, ``roc`` with the ROC curves
    of the best :data:`MAX_ROC_POINTS` points by the metric. Returns the written paths."""
    result = result if isinstance(result, Scan) else open_scan(result)
    metric = result.check_metric(metric) if metric else result.default_metric()
    plot_dir = result.directory / PLOTS
    written = []
    for parameter in result.varied:
        plot = result.parameter_plot(metric, parameter)
        written += plot.savefig(plot_dir / f"{_file_stem(metric)}_vs_{_file_stem(parameter)}", formats)
    roc = result.roc_plot(result.best(metric, MAX_ROC_POINTS))
    if roc is not None:
        written += roc.savefig(plot_dir / "roc", formats)
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


# ---------------------------------------------------------------------------------------------------------
# private


def _split_values(text: str) -> list[str]:
    values, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    values.append("".join(current).strip())
    return values


def _literal(source):
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError):
        return source


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _typed(path, key, value, default):
    """``value`` parsed to the type of ``default`` (text values only)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError("not a boolean")
            return text.lower() in _TRUE
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
        parsed = _literal(text)
        if isinstance(default, (list, tuple, dict)) and not isinstance(parsed, type(default)):
            raise ValueError(f"not a {type(default).__name__} literal")
        return parsed
    except ValueError as err:
        raise ArgumentError(f"{path}: parameter {key!r} (default {default!r}) cannot take {value!r}: {err}") from None


def _check_key(path, key, defaults):
    if key in RESERVED:
        raise ArgumentError(f"scan: parameter {key!r} is set by the scan for each point (DIR/points/<id>/{OUT})")
    if key not in defaults:
        near = difflib.get_close_matches(key, list(defaults), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; its parameters: {', '.join(defaults)}"
        raise ArgumentError(f"{path}: no parameter {key!r}{hint}")


def value_key(value) -> str:
    """An exact, hashable key of a parameter value (lists and mappings too): canonical JSON."""
    return json.dumps(to_strict(value), sort_keys=True)


def value_text(value) -> str:
    """A parameter value or number as people read it: ``0.001``, ``256``, ``deepcsv``, ``None``, ``[1, 2]``."""
    if value is None:
        return "None"
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(to_strict(value))


def _absolute_paths(value):
    """Text naming an existing file or directory, made absolute: a point's notebook runs in the point's own
    directory, where a relative path would name nothing."""
    if isinstance(value, str) and value and not os.path.isabs(value) and os.path.exists(value):
        return str(Path(value).resolve())
    if isinstance(value, list):
        return [_absolute_paths(v) for v in value]
    return value


def _point_id(parameters: Mapping) -> str:
    if not parameters:
        return "defaults"
    spelled = "_".join(f"{k}={value_text(v)}" for k, v in parameters.items())
    clean = _ID_CHARS.sub("-", spelled)
    if clean == spelled and len(clean) <= 80 and not clean.startswith("."):
        return clean
    digest = hashlib.sha256(value_key(parameters).encode()).hexdigest()[:8]
    return f"{clean.lstrip('.')[:70]}-{digest}"


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _flatten(mapping: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _std(values) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(to_strict(value))
    return str(value)


def _first_line(text: str) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[0].strip() if lines else ""

