"""The results of a parameter scan (:mod:`deepjet_nb.scan`): the scan directory's layout, its table (``scan.json``,
``scan.csv``) read as a :class:`Scan`, the metric's spread over seeds, and the plots of a metric against a
parameter."""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._atomic import write_text_atomic
from .._jsonio import read_object, to_strict, write_json
from ..errors import ArgumentError
from ..names import safe_name
from .grid import OUT, SEED, Point, value_key, value_text

FORMAT_VERSION = 1
SCAN_JSON = "scan.json"
SCAN_CSV = "scan.csv"
POINTS = "points"           # DIR/points/<id>/ one directory per point
POINT_JSON = "point.json"   # the point's record, written last inside its directory
EXECUTED = "notebook.ipynb"  # the executed copy of the notebook
KERNEL_LOG = "kernel.log"   # what the notebook's kernel process itself printed
PLOTS = "plots"
PREDICTIONS = "predictions"  # prediction files (docs/formats.md §4) a notebook leaves in out_dir/predictions/


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
        from ..plots import METRIC_LABELS

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
        from ..plots import ParameterPlot

        plot = ParameterPlot(parameter, metric, title=Path(self.notebook or "").name or None)
        for label, s in self.spread(metric, parameter, rows).items():
            plot.add(s["x"], s["mean"], s["std"], label=label or None)
        return plot

    def roc_label(self, point_id: str, tagger: str | None = None) -> str:
        """Legend label of a point: the values of the scanned parameters (and the tagger, if several)."""
        point = Point(self.records[point_id]["parameters"])
        text = point.label([k for k in self.keys if len(self.grid[k]) > 1] or self.keys)
        return f"{text} · {tagger}" if tagger else text

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


def write_tables(out: Path, identity: dict, grid: dict, seeds: int | None, records: Sequence[dict]) -> Scan:
    """Write ``scan.json`` (``identity``: notebook and fixed parameters; the typed ``grid``; the point
    ``records`` in grid order) and ``scan.csv`` into ``out``; return the :class:`Scan` they hold."""
    document = {"format_version": FORMAT_VERSION, **identity, "grid": to_strict(grid), "seeds": seeds,
                "points": records}
    write_json(out / SCAN_JSON, document)
    result = Scan(out, document)
    write_text_atomic(out / SCAN_CSV, result.csv())
    return result


def write_parameter_plots(result: Scan, metric: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``DIR/plots/<metric>_vs_<parameter>`` for each varied parameter (seed spread as error bars);
    return the written paths."""
    written = []
    for parameter in result.varied:
        plot = result.parameter_plot(metric, parameter)
        written += plot.savefig(result.directory / PLOTS / f"{safe_name(metric)}_vs_{safe_name(parameter)}", formats)
    return written


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
