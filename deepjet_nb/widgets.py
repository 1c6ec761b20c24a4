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
error bars, and the ROC curves of selected points overlaid (from the prediction files their notebooks left:
flavour or fat-jet taggers, on the tasks those files hold, :func:`scan_roc_plot`). ``ScanExplorer("runs/scan")``
opens a scan directory; ``deepjet-nb scan`` writes the same plots to its ``plots/``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from .errors import ArgumentError
from .scan.grid import value_key, value_text
from .scan.results import Scan, open_scan

__all__ = ["RocExplorer", "ScanExplorer", "scan_roc_plot", "scan_roc_curves"]

_BACKGROUNDS = {"b": ("udsg", "c"), "c": ("udsg", "b")}
MIN_BACKGROUND = 100  # fewer background jets than this in the window: the mistag is too coarse to trust


class RocExplorer:
    """ROC explorer widget over :class:`~deepjet_nb.evaluate.Tagger` objects (see the module docstring).

    Controls (ipywidgets, public so code can set them): ``taggers`` (SelectMultiple), ``signal`` and
    ``background`` (ToggleButtons), ``pt_range`` (FloatRangeSlider, GeV; shown as ``pt_log_range``, the same
    window on a log scale), ``mistag`` (FloatLogSlider, the
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
        # What is shown is a slider over log10(pT): jets crowd at low pT, and a linear 20-1000 GeV slider leaves
        # the interesting 20-100 GeV to a few pixels. It moves pt_range (GeV, the control code sets) and follows it.
        self.pt_log_range = w.FloatRangeSlider(value=_log10(self.pt_range.value), min=math.log10(max(lo, 1)),
                                               max=math.log10(hi), step=0.01, description="Jet pT", readout=False,
                                               continuous_update=False, layout=w.Layout(width="440px"))
        self.pt_readout = w.Label()
        self._follow_pt_window({"new": self.pt_range.value})
        self.pt_log_range.observe(self._set_pt_window, names="value")
        self.pt_range.observe(self._follow_pt_window, names="value")
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
            w.HBox([self.pt_log_range, self.pt_readout]), self.mistag, self.notice, self.table, self.plot,
        ])
        self.update()

    def _set_pt_window(self, change):
        lo, hi = (min(max(round(10 ** x), self.pt_range.min), self.pt_range.max) for x in change["new"])
        self.pt_range.value = (lo, hi)

    def _follow_pt_window(self, change):
        lo, hi = change["new"]
        self.pt_readout.value = f"{lo:.0f} – {hi:.0f} GeV"
        log_window = _log10((lo, hi))
        if not all(math.isclose(a, b, abs_tol=0.005) for a, b in zip(log_window, self.pt_log_range.value)):
            self.pt_log_range.value = log_window  # its observer sets the rounded window again: no change, no loop

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
    left prediction files; the best three by the metric at first), ``roc_signal`` (Dropdown of the signal
    classes of the tasks those files hold, e.g. b and c, or Top and W for fat jets). Outputs: ``table`` (HTML),
    ``plots`` (parameter → Image of the metric against it), ``roc`` (Image). After each change, ``rows`` (the
    table's rows, in order), ``series`` (parameter → :meth:`~deepjet_nb.scan.Scan.spread` of the shown
    points), ``roc_labels`` (the curves drawn) and ``roc_tasks`` (their tasks) hold what is shown.
    ``plot=False`` skips drawing (the numbers are the same). Raises :class:`ArgumentError` when no point of the
    scan recorded a number.
    """

    def __init__(self, scan, *, metric: str | None = None, plot: bool = True):
        import ipywidgets as w

        from .plots import tagger_colours

        self.scan = scan if isinstance(scan, Scan) else open_scan(scan)
        metric = self.scan.check_metric(metric) if metric else self.scan.default_metric()
        self._draw_plots = plot
        self._roc_cache = {}
        self.rows, self.series, self.roc_labels, self.roc_tasks = [], {}, [], []
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
        self._roc_options = [(self.scan.roc_label(i), i) for i in with_predictions]
        self.roc_points = w.SelectMultiple(options=self._roc_options,
                                           value=tuple(best), description="ROC of",
                                           rows=min(len(with_predictions) or 1, 6),
                                           layout=w.Layout(width="500px"))
        self.colours = tagger_colours([self.scan.roc_label(i) for i in with_predictions])
        # the signals of the tasks the prediction files hold, read from the points shown first
        curves = [c for i in (best or with_predictions[:1]) for c in scan_roc_curves(self.scan, i, self._roc_cache)]
        signals = list(dict.fromkeys(curve.signal for _, curve in curves))
        self.roc_signal = w.Dropdown(options=signals, value=signals[0] if signals else None, description="Signal")
        self.table = w.HTML()
        # PNGs in Image widgets (as in RocExplorer): the same with any matplotlib backend, live or headless.
        self.plots = {k: w.Image(format="png", layout=w.Layout(width="420px")) for k in self.scan.varied}
        self.roc = w.Image(format="png", layout=w.Layout(width="520px"))
        for control in (self.metric, self.sort_by, self.descending, self.roc_points, self.roc_signal,
                        *self.filters.values()):
            control.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([
            w.HBox([self.metric, self.sort_by, self.descending]),
            w.HBox(list(self.filters.values())),
            self.table,
            w.HBox(list(self.plots.values())),
            *([w.HBox([self.roc_points, self.roc_signal]), self.roc] if with_predictions else []),
        ])
        self.update()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def update(self) -> None:
        """Recompute the shown rows, the metric's spread and the ROC overlay for the current controls."""
        if getattr(self, "_updating", False):
            return
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
        self._offer_shown_points({r["id"] for r in self.rows})
        plot = scan_roc_plot(self.scan, list(self.roc_points.value), self.roc_signal.value, colours=self.colours,
                             cache=self._roc_cache)
        self.roc_labels = plot.taggers if plot is not None else []
        self.roc_tasks = list(dict.fromkeys(c.task for c, _ in plot.curves)) if plot is not None else []
        if self._draw_plots:
            self._draw(metric, plot)
        elif plot is not None:
            plot.close()

    def _offer_shown_points(self, shown: set[str]) -> None:
        """The filters reach the "ROC of" list: it offers only the shown points, and a point the filters hide is
        no longer selected (its curve is not drawn)."""
        options = [(label, i) for label, i in self._roc_options if i in shown]
        if options == [tuple(o) for o in self.roc_points.options]:
            return
        selected = tuple(i for i in self.roc_points.value if i in shown)
        self._updating = True  # setting the options and value fires observers: one update is running already
        try:
            self.roc_points.options = options
            self.roc_points.value = selected
        finally:
            self._updating = False

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


def scan_roc_plot(scan: Scan, point_ids: Sequence[str], signal: str | None = None, *,
                  colours: dict[str, str] | None = None, cache: dict | None = None):
    """A :class:`~deepjet_nb.plots.RocPlot` overlaying the ROC curves of the points' prediction files for the
    tasks of ``signal`` (default: the signal of the first task found): one curve per point, tagger and task,
    labelled by the point's parameters (:func:`scan_roc_curves`). None when no point has such a curve.
    ``cache`` (a dict) keeps the curves between calls."""
    from .plots import RocPlot

    curves = [c for point_id in point_ids for c in scan_roc_curves(scan, point_id, cache)]
    signal = signal or (curves[0][1].signal if curves else None)
    curves = [(label, curve) for label, curve in curves if curve.signal == signal]
    if not curves:
        return None
    plot = RocPlot(signal, eff_range=(0.0, 1.0), colours=colours)
    for label, curve in curves:
        plot.add(curve, label=label)
    return plot


def scan_roc_curves(scan: Scan, point_id: str, cache: dict | None = None) -> list[tuple[str, object]]:
    """``(label, RocCurve)`` for each tagger the point's notebook left in ``out_dir/predictions/`` (flavour or
    fat-jet prediction files, :func:`deepjet_nb.boosted.is_fat_jet_file`) and each task it can score and has
    jets for: the tasks come from the files, none is assumed. Label: :meth:`~deepjet_nb.scan.Scan.roc_label`.
    ``cache`` (a dict) keeps them by point."""
    cache = {} if cache is None else cache
    if point_id not in cache:
        from .performance import evaluable_tasks, roc

        taggers = _prediction_taggers(scan.predictions(point_id))
        several = len(taggers) > 1
        cache[point_id] = [(scan.roc_label(point_id, t.name if several else None), roc(t, task))
                           for t in taggers for task in evaluable_tasks(t)]
    return cache[point_id]


def _prediction_taggers(files):
    """The taggers of prediction files, with the reader of their kind (no baselines: a scan compares its points)."""
    if not files:
        return []
    from .boosted import is_fat_jet_file, load_fat_jet_taggers
    from .evaluate import load_taggers

    if is_fat_jet_file(files[0]):
        return load_fat_jet_taggers(files, baselines=False)
    return load_taggers(files, baseline=False)


def _log10(window) -> tuple[float, float]:
    return tuple(math.log10(max(float(x), 1.0)) for x in window)


def _cell(value) -> str:
    """A table cell: empty for a missing value."""
    return "" if value is None else value_text(value)
