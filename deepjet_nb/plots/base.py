"""What every plot shares (:mod:`deepjet_nb.plots`): saving and closing, the CMS style, the experiment label,
tagger colours, labels of flavours, variables and metrics, and file-name-safe plot stems.

Matplotlib is imported on first draw (:func:`load_pyplot`), and the Agg backend is chosen then only when no
backend has been selected yet (a batch job); a notebook keeps its inline backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from .._atomic import atomic_path

FLAVOUR_LABELS = {"b": "b jets", "c": "c jets", "udsg": "udsg jets"}
# CMS ROC convention: light (udsg) background solid, c dashed; b (for c tagging) dotted.
BACKGROUND_LINESTYLES = {"udsg": "-", "c": "--", "b": ":"}
FLAVOUR_COLOURS = {"b": "#1f77b4", "c": "#2ca02c", "udsg": "#d62728"}
DISCRIMINANT_LABELS = {"b": "b discriminant", "CvsL": "CvsL discriminant", "CvsB": "CvsB discriminant"}
VARIABLE_LABELS = {"jet_pt": r"Jet $p_{T}$ [GeV]", "jet_eta": r"Jet $\eta$"}
# Labels of the per-epoch validation metrics; "val_auc_b_vs_udsg" is the name older runs gave "val_auc".
METRIC_LABELS = {"val_beff_at_mistag_0.01": "b eff. at 1% udsg mistag (val.)", "val_auc": "AUC (val.)",
                 "val_auc_b_vs_udsg": "b vs udsg AUC (val.)", "val_accuracy": "Accuracy (val.)"}
COM_TEV = 13  # sqrt(s) of the simulated samples (docs/reference.md §5)


class Plot:
    """Common saving/closing; subclasses implement ``draw() -> Figure``."""

    figure = None

    def savefig(self, stem: str | os.PathLike, formats: Sequence[str] = ("png", "pdf"), *,
                close: bool = True) -> list[Path]:
        """Draw (if not drawn yet) and write ``stem.<fmt>`` for each format atomically; then close the figure,
        unless ``close=False`` (in a notebook: the figure is also shown below the cell).

        Returns the written paths. A suffix on ``stem`` is replaced.
        """
        stem = Path(stem)
        written = []
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            with atomic_path(path) as tmp:
                # The temporary name has no extension, so the format must be given.
                self._render(tmp, fmt)
            written.append(path)
        if close:
            self.close()
        return written

    def png(self, dpi: float = 72) -> bytes:
        """The plot as PNG bytes (drawn first if needed), e.g. for an ``ipywidgets.Image``: always the figure's
        own size times ``dpi``, whatever ``savefig.bbox`` says, so a widget's image keeps its shape."""
        import io

        buffer = io.BytesIO()
        self._render(buffer, "png", dpi=dpi, whole_figure=True)
        return buffer.getvalue()

    def _render(self, target, fmt, dpi=None, whole_figure=False):
        figure = self.figure if self.figure is not None else self.draw()
        # A "tight" box grows to reach any stray artist (a label far outside the axes) and the plot ends up
        # small in a corner of a huge image; the figure's own box cannot.
        box = {"bbox_inches": figure.bbox_inches} if whole_figure else {}
        with cms_style():  # the savefig.* settings of the style too (the figure draws itself in it anyway)
            figure.savefig(target, format=fmt, dpi=dpi if dpi is not None else "figure", **box)

    def close(self) -> None:
        """Release the figure (pyplot keeps a reference to every open figure)."""
        if self.figure is not None:
            load_pyplot().close(self.figure)
            self.figure = None


def experiment_label(ax) -> None:
    """The label of every plot: CMS style, but these are deepjet-nb simulations, not CMS results."""
    import mplhep

    mplhep.label.exp_label(exp="deepjet-nb", llabel="Simulation", rlabel=f"{COM_TEV:g} TeV", ax=ax)


def cms_style():
    """The CMS style (mplhep) as a context: figures are built and drawn inside it."""
    return load_pyplot().style.context(load_mplhep().style.CMS)


def styled_subplots(*args, **kwargs):
    """``plt.subplots`` for a figure that draws itself in the CMS style wherever it is rendered."""
    return load_pyplot().subplots(*args, FigureClass=_styled_figure_class(), **kwargs)


def _styled_figure_class():
    """A Figure subclass whose ``draw`` (and ``get_tightbbox``, which lays out its text) runs inside the CMS style.

    Fonts of math text (log-axis tick labels, the experiment label) are looked up in rcParams when the figure
    is rendered, not when it is built. A notebook's inline backend renders figures after the cell, outside any
    style context; without this the labels lose their fonts and collide, and matplotlib warns about missing
    font families. Saved files and inline output then look the same.
    """
    global _StyledFigure
    if _StyledFigure is None:
        from matplotlib.figure import Figure

        class StyledFigure(Figure):
            def draw(self, renderer):
                with cms_style():
                    return super().draw(renderer)

            def get_tightbbox(self, *args, **kwargs):  # the inline backend's bbox_inches="tight" lays text out
                with cms_style():
                    return super().get_tightbbox(*args, **kwargs)

        _StyledFigure = StyledFigure
    return _StyledFigure


_StyledFigure = None


def load_pyplot():
    """pyplot, after choosing Agg if no backend has been selected (batch job); never overrides a choice."""
    import matplotlib

    global _backend_loaded
    if matplotlib.get_backend(auto_select=False) is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not _backend_loaded:
        # Load the backend now, outside any style context: loading a notebook's inline backend switches on
        # interactive mode, and a style context would undo that on exit (later figures would not show).
        plt.switch_backend(matplotlib.get_backend())
        _backend_loaded = True
    return plt


_backend_loaded = False


def load_mplhep():
    import mplhep

    return mplhep


def plain_log_ticks(axis, ticks: Sequence[float] | None = None, labels: Sequence[str] | None = None) -> None:
    """Label the log-scale ``axis`` (``ax.xaxis`` or ``ax.yaxis``) with plain numbers and leave its minor ticks
    unlabelled: at ``ticks`` (``labels``, default ``f"{t:g}"``), or at 1, 2 and 5 × 10ⁿ. Over a decade or two
    a log axis labels its minor ticks too, in scientific notation, and the labels run into each other."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if ticks is None:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    else:
        axis.set_major_locator(FixedLocator(list(ticks)))
        axis.set_major_formatter(FixedFormatter(list(labels) if labels is not None else [f"{t:g}" for t in ticks]))
    axis.set_minor_formatter(NullFormatter())


def room_for_legend(ax, lines: int, *, line_share: float = 0.075) -> None:
    """Raise the top of ``ax``'s y axis so that a legend of ``lines`` lines (and a title) at the top of the axes
    sits above the data instead of over it; each line takes about ``line_share`` of the axes' height. Works on
    linear and log y axes; call it after the data are drawn and the y scale is set."""
    low, high = ax.get_ylim()
    data_share = max(0.35, 1.0 - line_share * (lines + 1))
    if ax.get_yscale() == "log":
        top = 10 ** (math.log10(low) + (math.log10(high) - math.log10(low)) / data_share)
    else:
        top = low + (high - low) / data_share
    ax.set_ylim(low, top)


def tagger_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per tagger name from the CMS style's colour cycle, in the order given: pass the full list of
    taggers once, so a tagger keeps its colour when others are left out of a plot."""
    cycle = load_mplhep().style.CMS.get("axes.prop_cycle")
    colours = cycle.by_key().get("color") if cycle is not None else None
    colours = list(colours or [f"C{i}" for i in range(10)])
    if len(names) > len(colours):  # the CMS cycle has 6 colours: go on with distinct ones before repeating
        from matplotlib import colormaps
        from matplotlib.colors import to_hex

        known = {to_hex(c) for c in colours}
        colours += [c for c in map(to_hex, colormaps["tab20"].colors) if c not in known]
    return {name: colours[i % len(colours)] for i, name in enumerate(names)}


def plot_stems(names: Sequence[str]) -> dict[str, str]:
    """A file-name stem for each tagger name (:func:`deepjet_nb.names.safe_name`): stays inside the plot
    directory, at most 64 characters, and a name that had to change ends in a short hash of itself, so
    "deepjet.v1" and "deepjet.v2" stay apart."""
    from ..names import safe_name

    return {name: safe_name(name) for name in names}
