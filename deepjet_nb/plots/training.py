"""Training and scan plots (:mod:`deepjet_nb.plots`): :class:`HistoryPlot` (a run's loss and a validation metric per
epoch) and :class:`ParameterPlot` (a scan's metric against one parameter)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from .base import FLAVOUR_COLOURS, METRIC_LABELS, Plot, cms_style, experiment_label, plain_log_ticks, styled_subplots


class HistoryPlot(Plot):
    """A training run per epoch: training and validation loss (left), a validation ``metric`` (right).

    ``rows`` are history rows (:meth:`deepjet_nb.run.Run.history`: dicts with ``epoch``, ``loss``,
    ``val_loss``, ...; epochs counted from 1, as in ``history.csv``). After :meth:`draw`,
    ``series[key] = (epochs, values)`` for every curve drawn.
    """

    def __init__(self, rows: Sequence[dict], *, metric: str = "val_beff_at_mistag_0.01",
                 metric_label: str | None = None, title: str | None = None):
        if not rows:
            raise ArgumentError("HistoryPlot: no epochs in the history")
        self.rows = list(rows)
        from ..run import RENAMED_COLUMNS

        self.metric = RENAMED_COLUMNS.get(metric, metric)  # an older run's name reads today's column
        self.metric_label = metric_label or METRIC_LABELS.get(metric, metric)
        self.title = title
        self.series = {}

    @classmethod
    def from_run(cls, run_dir, **kwargs) -> HistoryPlot:
        """The history of the run directory ``run_dir``; the title names its model and directory."""
        from ..run import Run, read_history

        rows = read_history(run_dir)
        path = Path(run_dir)
        model = (Run(path).model_name or "") if "title" not in kwargs else ""
        return cls(rows, title=kwargs.pop("title", f"{model} · {path.parent.name}/{path.name}"), **kwargs)

    def draw(self):
        self.close()
        epochs = np.array([self._epoch(r) for r in self.rows])
        with cms_style():
            fig, (ax_loss, ax_metric) = styled_subplots(1, 2, figsize=(16, 7))
            for key, label in (("loss", "training"), ("val_loss", "validation")):
                values = np.array([r.get(key, np.nan) for r in self.rows], dtype=float)
                if np.isfinite(values).any():
                    self.series[key] = (epochs, values)
                    ax_loss.plot(epochs, values, "o-", label=label)
            ax_loss.set_xlabel("Epoch")
            ax_loss.set_ylabel("Loss")
            ax_loss.legend(frameon=False)
            values = np.array([r.get(self.metric, np.nan) for r in self.rows], dtype=float)
            self.series[self.metric] = (epochs, values)
            ax_metric.plot(epochs, values, "o-", color=FLAVOUR_COLOURS["udsg"])
            ax_metric.set_xlabel("Epoch")
            ax_metric.set_ylabel(self.metric_label)
            for ax in (ax_loss, ax_metric):
                ax.xaxis.get_major_locator().set_params(integer=True)
                experiment_label(ax)
            if self.title:
                fig.suptitle(self.title, y=1.0)
            fig.tight_layout()
        self.figure = fig
        return fig

    @staticmethod
    def _epoch(row) -> int:
        return int(row["epoch"])  # counted from 1, as Run.history() gives them


class ParameterPlot(Plot):
    """A metric against one scanned parameter (:meth:`deepjet_nb.scan.Scan.parameter_plot` fills one).

    Add series with :meth:`add`: the parameter's values, the metric's mean over seeds and its spread (error
    bars), one series per combination of the other scanned parameters. Numeric values spanning a factor 10 or
    more (learning rates) get a log x axis; other values are placed at equal steps in the order given. After
    :meth:`draw`, ``series[label] = (x, mean, err)`` for every series drawn.
    """

    def __init__(self, parameter: str, metric: str, *, metric_label: str | None = None, title: str | None = None):
        self.parameter = parameter
        self.metric = metric
        # a scan's metric may be nested in what a notebook recorded: "last.val_beff_at_mistag_0.01"
        known = [label for name, label in METRIC_LABELS.items() if metric == name or metric.endswith(f".{name}")]
        self.metric_label = metric_label or (known[0] if known else metric)
        self.title = title
        self.added = []
        self.series = {}

    def add(self, x: Sequence, mean: Sequence[float], err: Sequence[float] | None = None, *,
            label: str | None = None) -> ParameterPlot:
        """Add a series: values ``x`` of the parameter, ``mean`` of the metric and its spread ``err``."""
        if len(x) != len(mean) or (err is not None and len(err) != len(mean)):
            raise ArgumentError(f"ParameterPlot({self.parameter!r}): x, mean and err differ in length")
        self.added.append((list(x), np.asarray(mean, float),
                           np.zeros(len(mean)) if err is None else np.asarray(err, float), label))
        return self

    def draw(self):
        """Draw into a new figure and return it. Raises :class:`ArgumentError` with no series."""
        if not self.added:
            raise ArgumentError(f"ParameterPlot({self.parameter!r}): no series added")
        values = list(dict.fromkeys(v for x, *_ in self.added for v in x))
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        logx = numeric and min(values) > 0 and max(values) / min(values) >= 10
        position = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
        self.close()
        self.series = {}
        with cms_style():
            fig, ax = styled_subplots(figsize=(10, 8))
            for x, mean, err, label in self.added:
                xs = np.array([position[v] for v in x], dtype=float)
                ax.errorbar(xs, mean, yerr=err, marker="o", markersize=8, capsize=5, linewidth=2,
                            label=label)
                self.series[label] = (x, mean, err)
            if logx:
                ax.set_xscale("log")
                # Ticks at the scanned values only: over a decade or two the log axis labels its minor ticks
                # too, and those labels run together.
                plain_log_ticks(ax.xaxis, [position[v] for v in values])
            if not numeric:
                ax.set_xticks(range(len(values)), [str(v) for v in values])
            ax.set_xlabel(self.parameter)
            ax.set_ylabel(self.metric_label)
            if any(label for *_, label in self.added):
                ax.legend(frameon=False, fontsize=16, title=self.title, title_fontsize=16)
            experiment_label(ax)
            fig.tight_layout()
        self.figure = fig
        return fig
