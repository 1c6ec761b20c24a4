"""Interactive widgets for notebooks: the ROC explorer and the scan explorer.

:class:`RocExplorer` compares taggers on the same jets: pick taggers, the signal (b or c) and background,
a jet-pT window, and move a working-point slider (target mistag, log scale). A table shows, per tagger, the
AUC, the cut that realises the working point and the efficiency and mistag it gives; the ROC plot marks the
working point. Each tagger keeps its colour whatever else is selected. When the pT window leaves fewer than
``MIN_BACKGROUND`` background jets, a warning says so: a mistag of 1 % then rests on a jet or two. Every
displayed number is also in ``explorer.numbers`` (and the warning in ``explorer.warning``) so it can be
tested without a browser.

Example (in a notebook)::

    import deepjet_nb.evaluate as ev
    from deepjet_nb.widgets import RocExplorer
    RocExplorer(ev.load_taggers(["deepjet.root", "deepcsv.root"]))

:class:`ScanExplorer` compares the points of a parameter scan (:mod:`deepjet_nb.scan`): the table sorted and
filtered by parameter values, the metric of choice against each scanned parameter with the seed spread as
error bars, and the ROC curves of selected points overlaid (from the prediction files their notebooks left).
``ScanExplorer("runs/scan")`` opens a scan directory; ``deepjet-nb scan`` writes the same plots to its
``plots/``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from .errors import ArgumentError
from .scan import Scan, open_scan, value_key, value_text

__all__ = ["RocExplorer", "ScanExplorer"]

_BACKGROUNDS = {"b": ("udsg", "c"), "c": ("udsg", "b")}
MIN_BACKGROUND = 100  # fewer background jets than this in the window: the mistag is too coarse to trust


class RocExplorer:
    """ROC explorer widget over :class:`~deepjet_nb.evaluate.Tagger` objects (see the module docstring).

    Controls (ipywidgets, public so code can set them): ``taggers`` (SelectMultiple), ``signal`` and
    ``background`` (ToggleButtons), ``pt_range`` (FloatRangeSlider, GeV), ``mistag`` (FloatLogSlider, the
    working point's target background efficiency). Outputs: ``table`` (HTML), ``plot`` (Image, PNG bytes).
    After each change ``numbers[tagger] = {"auc", "cut", "efficiency", "mistag", "n_signal",
    "n_background"}`` (None for a tagger without both flavours in the window) and ``task`` hold what is shown.
    ``plot=False`` skips drawing (faster; the numbers are the same). Raises :class:`ArgumentError` for no
    taggers or duplicate names.
    """

    def __init__(self, taggers: Sequence, *, signal: str = "b", background: str = "udsg", mistag: float = 0.01,
                 pt_range: tuple[float, float] | None = None, plot: bool = True):
        import ipywidgets as w

        self._taggers = {t.name: t for t in taggers}
        if not self._taggers or len(self._taggers) != len(taggers):
            raise ArgumentError("RocExplorer: give at least one tagger, with unique names")
        if signal not in _BACKGROUNDS or background not in _BACKGROUNDS[signal]:
            raise ArgumentError(f"RocExplorer: signal {signal!r} vs background {background!r} is not offered")
        self._draw_plot = plot
        self._cache = {}
        self.numbers = {}
        self.task = None
        self.warning = ""
        from .plots import tagger_colours

        self.colours = tagger_colours(list(self._taggers))  # by tagger, fixed: deselecting one recolours none
        pt_all = np.concatenate([t.jet_pt for t in taggers])
        lo, hi = math.floor(float(pt_all.min())), math.ceil(float(pt_all.max())) + 1
        names = list(self._taggers)
        self.taggers = w.SelectMultiple(options=names, value=tuple(names), description="Taggers",
                                        rows=min(len(names), 6))
        self.signal = w.ToggleButtons(options=list(_BACKGROUNDS), value=signal, description="Signal")
        self.background = w.ToggleButtons(options=list(_BACKGROUNDS[signal]), value=background,
                                          description="Background")
        self.pt_range = w.FloatRangeSlider(value=pt_range or (lo, hi), min=lo, max=hi, step=1.0,
                                           description="Jet pT", readout_format=".0f", continuous_update=False,
                                           layout=w.Layout(width="500px"))
        self.mistag = w.FloatLogSlider(value=mistag, base=10, min=-4, max=0, step=0.05, description="Mistag",
                                       readout_format=".2e", continuous_update=False,
                                       layout=w.Layout(width="500px"))
        self.table = w.HTML()
        self.notice = w.HTML()
        # The plot is a PNG in an Image widget rather than a figure in an Output widget: it renders the same
        # with any matplotlib backend, in a live kernel or headless (tests, papermill).
        self.plot = w.Image(format="png", layout=w.Layout(width="560px"))
        self.signal.observe(self._on_signal, names="value")
        for control in (self.taggers, self.background, self.pt_range, self.mistag):
            control.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([
            w.HBox([self.taggers, w.VBox([self.signal, self.background])]),
            self.pt_range, self.mistag, self.notice, self.table, self.plot,
        ])
        self.update()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def _on_signal(self, change):
        # Changing the options fires a background change; hold the update until both are consistent.
        self._updating = True
        try:
            self.background.options = list(_BACKGROUNDS[change["new"]])
            self.background.value = _BACKGROUNDS[change["new"]][0]
        finally:
            self._updating = False
        self.update()

    def update(self) -> None:
        """Recompute the numbers for the current control values and redraw."""
        if getattr(self, "_updating", False):
            return
        self.task = f"{self.signal.value}_vs_{self.background.value}"
        window = tuple(float(x) for x in self.pt_range.value)
        mistag = float(self.mistag.value)
        self.numbers = {}
        curves = {}
        for name in self.taggers.value:
            curve = self._curve(name, self.task, window)
            if curve is None:
                self.numbers[name] = None
                continue
            wp = curve.working_point(mistag)
            curves[name] = curve
            self.numbers[name] = {"auc": curve.auc, "cut": wp.cut, "efficiency": wp.efficiency,
                                  "mistag": wp.mistag, "n_signal": curve.n_signal,
                                  "n_background": curve.n_background}
        self.warning = self._warning(window)
        self.notice.value = (f'<div style="color:#9c4a00;font-weight:bold">&#9888; {html.escape(self.warning)}</div>'
                             if self.warning else "")
        self.table.value = self._table_html(mistag, window)
        if self._draw_plot:
            self._draw(curves, mistag)

    def _curve(self, name, task, window):
        key = (name, task, window)
        if key not in self._cache:
            from .evaluate import roc

            try:
                self._cache[key] = roc(self._taggers[name], task, pt_range=window)
            except ArgumentError:  # no signal or no background jets in the window
                self._cache[key] = None
        return self._cache[key]

    def _warning(self, window) -> str:
        counts = [n["n_background"] for n in self.numbers.values() if n is not None]
        if not counts or min(counts) >= MIN_BACKGROUND:
            return ""
        n, bkg = min(counts), self.background.value
        return (f"only {n} {bkg} jets in pT [{window[0]:.0f}, {window[1]:.0f}) GeV: a mistag below {1 / n:.1%} "
                f"cannot be measured here and the working points rest on a handful of jets; widen the window")

    def _table_html(self, mistag, window):
        sig, bkg = self.signal.value, self.background.value
        head = (f"<b>{sig} vs {bkg}</b>, jet pT in [{window[0]:.0f}, {window[1]:.0f}) GeV, "
                f"working point at {bkg} mistag &le; {mistag:.2e}")
        rows = ["<tr><th>tagger</th><th>AUC</th><th>cut</th><th>efficiency</th><th>mistag</th>"
                "<th>jets (sig / bkg)</th></tr>"]
        for name, n in self.numbers.items():
            if n is None:
                rows.append(f"<tr><td>{html.escape(name)}</td><td colspan=5>no {sig} or {bkg} jets</td></tr>")
            else:
                rows.append(f"<tr><td>{html.escape(name)}</td><td>{n['auc']:.4f}</td><td>{n['cut']:.4g}</td>"
                            f"<td>{n['efficiency']:.4f}</td><td>{n['mistag']:.2e}</td>"
                            f"<td>{n['n_signal']} / {n['n_background']}</td></tr>")
        style = "<style>.deepjet-nb-roc td, .deepjet-nb-roc th {padding: 2px 10px; text-align: right}</style>"
        return f"{style}{head}<table class='deepjet-nb-roc'>{''.join(rows)}</table>"

    def _draw(self, curves, mistag):
        from .plots import RocPlot

        if not curves:
            self.plot.value = b""
            return
        plot = RocPlot(self.signal.value, eff_range=(0.0, 1.0), ratio_panels=len(curves) > 1, colours=self.colours)
        for name, curve in curves.items():
            plot.add(curve)
            n = self.numbers[name]
            plot.mark(n["efficiency"], max(n["mistag"], plot.mistag_range[0]))
        self.plot.value = plot.png(dpi=60)
        plot.close()


class ScanExplorer:
    """Comparison widget of a parameter scan (see the module docstring): a :class:`~deepjet_nb.scan.Scan` or
    the path of a scan directory.

    Controls (ipywidgets, public): ``metric`` (Dropdown of the recorded numbers), ``sort_by`` (Dropdown of the
    table's columns) and ``descending`` (Checkbox), ``filters[parameter]`` (SelectMultiple of its values; a
    point is shown when each of its values is selected), ``roc_points`` (SelectMultiple of the points that
    left prediction files; the best three by the metric at first). Outputs: ``table`` (HTML), ``plots``
    (parameter → Image of the metric against it), ``roc`` (Image). After each change, ``rows`` (the table's
    rows, in order), ``series`` (parameter → :meth:`~deepjet_nb.scan.Scan.spread` of the shown points) and
    ``roc_labels`` (the curves drawn) hold what is shown. ``plot=False`` skips drawing (the numbers are the
    same). Raises :class:`ArgumentError` when no point of the scan recorded a number.
    """

    def __init__(self, scan, *, metric: str | None = None, plot: bool = True):
        import ipywidgets as w

        from .plots import tagger_colours

        self.scan = scan if isinstance(scan, Scan) else open_scan(scan)
        metric = self.scan.check_metric(metric) if metric else self.scan.default_metric()
        self._draw_plots = plot
        self._roc_cache = {}
        self.rows, self.series, self.roc_labels = [], {}, []
        self._all_rows = self.scan.rows()
        columns = [*self.scan.keys, *self.scan.metrics, "wall_s", "status"]
        self.metric = w.Dropdown(options=self.scan.metrics, value=metric, description="Metric")
        self.sort_by = w.Dropdown(options=columns, value=metric, description="Sort by")
        self.descending = w.Checkbox(value=True, description="descending")
        self.filters = {k: w.SelectMultiple(options=[(_cell(v), value_key(v)) for v in values],
                                            value=tuple(value_key(v) for v in values), description=k,
                                            rows=min(len(values), 5))
                        for k, values in self.scan.grid.items()}
        with_predictions = [r["id"] for r in self._all_rows if self.scan.predictions(r["id"])]
        best = [i for i in self.scan.best(metric) if i in with_predictions][:3]
        self.roc_points = w.SelectMultiple(options=[(self.scan.roc_label(i), i) for i in with_predictions],
                                           value=tuple(best), description="ROC of",
                                           rows=min(len(with_predictions) or 1, 6),
                                           layout=w.Layout(width="500px"))
        self.colours = tagger_colours([self.scan.roc_label(i) for i in with_predictions])
        self.table = w.HTML()
        # PNGs in Image widgets (as in RocExplorer): the same with any matplotlib backend, live or headless.
        self.plots = {k: w.Image(format="png", layout=w.Layout(width="420px")) for k in self.scan.varied}
        self.roc = w.Image(format="png", layout=w.Layout(width="520px"))
        for control in (self.metric, self.sort_by, self.descending, self.roc_points, *self.filters.values()):
            control.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([
            w.HBox([self.metric, self.sort_by, self.descending]),
            w.HBox(list(self.filters.values())),
            self.table,
            w.HBox(list(self.plots.values())),
            *([self.roc_points, self.roc] if with_predictions else []),
        ])
        self.update()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def update(self) -> None:
        """Recompute the shown rows, the metric's spread and the ROC overlay for the current controls."""
        metric = self.metric.value
        shown = [r for r in self._all_rows
                 if all(value_key(r[k]) in set(control.value) for k, control in self.filters.items())]
        key = self.sort_by.value
        numbers = [r for r in shown if isinstance(r.get(key), (int, float)) and r.get(key) == r.get(key)]
        others = [r for r in shown if r not in numbers]
        numbers.sort(key=lambda r: r[key], reverse=self.descending.value)
        others.sort(key=lambda r: _cell(r.get(key)), reverse=self.descending.value)
        self.rows = numbers + others
        self.series = {k: self.scan.spread(metric, k, self.rows) for k in self.plots}
        self.table.value = self._table_html(metric)
        plot = self.scan.roc_plot(list(self.roc_points.value), colours=self.colours, cache=self._roc_cache)
        self.roc_labels = plot.taggers if plot is not None else []
        if self._draw_plots:
            self._draw(metric, plot)
        elif plot is not None:
            plot.close()

    def _table_html(self, metric):
        columns = [*self.scan.keys, metric, *(m for m in self.scan.metrics if m != metric), "wall_s"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in [*columns, "status"])
        lines = []
        for row in self.rows:
            cells = "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns)
            status = ("ok" if row["status"] == "ok" else
                      f'<span style="color:#b00020">failed: {html.escape(str(row["error"]))}</span>')
            lines.append(f"<tr>{cells}<td style='text-align:left'>{status}</td></tr>")
        style = "<style>.deepjet-nb-scan td, .deepjet-nb-scan th {padding: 2px 8px; text-align: right}</style>"
        caption = (f"<b>{len(self.rows)} of {len(self._all_rows)} points</b>, "
                   f"sorted by {html.escape(self.sort_by.value)}")
        return f"{style}{caption}<table class='deepjet-nb-scan'><tr>{head}</tr>{''.join(lines)}</table>"

    def _draw(self, metric, roc_plot):
        for parameter, image in self.plots.items():
            if not any(s["x"] for s in self.series[parameter].values()):
                image.value = b""
                continue
            plot = self.scan.parameter_plot(metric, parameter, self.rows)
            image.value = plot.png(dpi=50)
            plot.close()
        if roc_plot is None:
            self.roc.value = b""
        else:
            self.roc.value = roc_plot.png(dpi=50)
            roc_plot.close()


def _cell(value) -> str:
    """A table cell: empty for a missing value."""
    return "" if value is None else value_text(value)
