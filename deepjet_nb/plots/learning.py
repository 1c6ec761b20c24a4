"""Learning curves (:mod:`deepjet_nb.plots`): :class:`LearningCurvePlot`, a tagger's efficiency at 1 % mistag
against the number of training jets, with the paired difference to the reference below."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ArgumentError
from .base import (Plot, cms_style, experiment_label, plain_log_ticks, room_for_legend, styled_subplots,
                   tagger_colours)

# y-axis labels of the tasks a learning curve scores (deepjet_nb.learning_curve.FAMILIES)
TASK_LABELS = {"b_vs_udsg": ("b", "udsg"), "top_vs_qcd": ("top", "QCD")}
ERRORS_NOTE = "bars: test-sample bootstrap, bands: seed spread"


class LearningCurvePlot(Plot):
    """Efficiency at the curve's mistag against the number of training jets (log2 axis) for the taggers of one
    task of a :func:`deepjet_nb.learning_curve.learning_curve` result: bootstrap errors as error bars, the
    spread over seeds as a band; below, each tagger minus its reference (paired bootstrap errors, seed band),
    the crossing points as dotted vertical lines.

    ``task``: which task to draw (default: the first point's); ``taggers``: which taggers (default: all of that
    task). After :meth:`draw`, ``series[tagger] = (n_train, eff, eff_err, eff_seed_std)`` and
    ``differences[tagger] = (n_train, diff, diff_err, diff_seed_std)``, NaN where undefined. Raises
    :class:`ArgumentError` for a result without points of the task or taggers.
    """

    def __init__(self, result: dict, *, task: str | None = None, taggers: Sequence[str] | None = None,
                 title: str | None = None):
        points = list(result.get("points") or [])
        self.task = task or (points[0]["task"] if points else None)
        self.points = [p for p in points if p["task"] == self.task and (taggers is None or p["tagger"] in taggers)]
        if not self.points:
            raise ArgumentError(f"LearningCurvePlot: no points of task {self.task!r} and taggers {taggers}")
        self.mistag = float(result.get("mistag", 0.01))
        self.crossings = result.get("crossings") or {}
        self.title = title
        self.series, self.differences = {}, {}

    def draw(self):
        """Draw into a new figure and return it."""
        self.close()
        names = list(dict.fromkeys(p["tagger"] for p in self.points))
        colours = tagger_colours(names)
        with cms_style():
            fig, (top, bottom) = styled_subplots(2, 1, figsize=(10, 10), sharex=True,
                                                 gridspec_kw={"height_ratios": (3, 1.4), "hspace": 0.06})
            for name in names:
                mine = sorted((p for p in self.points if p["tagger"] == name), key=lambda p: p["n_train"])
                n = np.array([p["n_train"] for p in mine], dtype=float)
                self.series[name] = _draw(top, n, mine, "eff", colours[name], name)
                if any(p.get("diff") is not None for p in mine):
                    label = f"{name} − {mine[0]['reference']}"
                    self.differences[name] = _draw(bottom, n, mine, "diff", colours[name], label)
                    crossing = (self.crossings.get(name) or {}).get("n_train")
                    if crossing:
                        for ax in (top, bottom):
                            ax.axvline(crossing, color=colours[name], linestyle=":", linewidth=1.5)
            self._axes(top, bottom)
            experiment_label(top)
        self.figure = fig
        return fig

    def _axes(self, top, bottom):
        from matplotlib.ticker import NullLocator

        signal, background = TASK_LABELS.get(self.task, (self.task, "background"))
        top.set_ylabel(f"{signal} eff. at {self.mistag:.0%} {background} mistag")
        title = "\n".join(filter(None, (self.title, ERRORS_NOTE)))
        top.legend(frameon=False, fontsize=16, loc="upper left", title=title, title_fontsize=14)
        room_for_legend(top, len(self.series) + title.count("\n") + 1)
        bottom.axhline(0.0, color="black", linewidth=1)
        bottom.set_ylabel("Δ eff.")
        if self.differences:
            bottom.legend(frameon=False, fontsize=13, loc="best")
        bottom.set_xscale("log", base=2)
        ticks = sorted({p["n_train"] for p in self.points})
        plain_log_ticks(bottom.xaxis, ticks, [f"{t:,}" for t in ticks])
        bottom.tick_params(axis="x", labelrotation=30, labelsize=14)
        bottom.xaxis.set_minor_locator(NullLocator())
        bottom.set_xlabel("Training jets")
        lo, hi = min(ticks), max(ticks)
        bottom.set_xlim(lo / 2 ** 0.35, hi * 2 ** 0.35)


def _draw(ax, n, points, key, colour, label):
    """One tagger's values ``key`` (eff or diff) with bootstrap error bars and a seed-spread band."""
    values = _array(points, key)
    errors = _array(points, f"{key}_err")
    spread = _array(points, f"{key}_seed_std")
    ax.errorbar(n, values, yerr=np.nan_to_num(errors), marker="o", markersize=7, capsize=4, linewidth=2,
                color=colour, label=label)
    if np.isfinite(spread).any():
        ax.fill_between(n, values - np.nan_to_num(spread), values + np.nan_to_num(spread), color=colour,
                        alpha=0.2, linewidth=0)
    return n, values, errors, spread


def _array(points, key) -> np.ndarray:
    return np.array([np.nan if p.get(key) is None else p[key] for p in points], dtype=float)
