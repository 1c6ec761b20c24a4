"""Interactive widgets for notebooks: the ROC explorer.

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
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from .errors import ArgumentError

__all__ = ["RocExplorer"]

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
