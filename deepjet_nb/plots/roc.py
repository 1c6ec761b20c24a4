"""ROC plots (:mod:`deepjet_nb.plots`): :class:`RocPlot` in the CMS flavour-tagging convention with ratio panels,
:class:`BoostedRocPlot` for one boosted task with its cut-based baselines dashed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import ArgumentError
from .base import (BACKGROUND_LINESTYLES, Plot, cms_style, experiment_label, load_pyplot, styled_subplots,
                   plain_log_ticks, tagger_colours)


class RocPlot(Plot):
    """ROC curves of several taggers against one or two backgrounds, with ratio panels.

    ``signal``: the signal class of the curves (``"b"``, ``"c"``, or any other truth class; a background other
    than udsg, c or b is drawn solid); ``reference``: name of the tagger in the denominators of the ratio panels
    (default: the first tagger added); ``eff_range``: x range, also the range of the ratio grid; ``colours``:
    tagger → colour (others take the style's colours in the order added, see :func:`tagger_colours`).
    Add curves (:class:`deepjet_nb.performance.RocCurve`) with :meth:`add`; optionally :meth:`mark` working
    points; :meth:`draw`. After drawing, ``ratios[(tagger, background)] = (eff_grid, mistag / mistag_ref)``.
    """

    def __init__(self, signal: str = "b", *, reference: str | None = None,
                 eff_range: tuple[float, float] = (0.3, 1.0), mistag_range: tuple[float, float] = (1e-4, 1.0),
                 n_ratio_points: int = 100, title: str | None = None, ratio_panels: bool = True,
                 colours: dict[str, str] | None = None):
        self.signal = signal
        self.reference = reference
        self.eff_range = eff_range
        self.mistag_range = mistag_range
        self.n_ratio_points = n_ratio_points
        self.title = title
        self.ratio_panels = ratio_panels
        self.colours = dict(colours or {})
        self.curves = []
        self.markers = []
        self.ratios = {}

    def add(self, curve, *, label: str | None = None) -> RocPlot:
        """Add a :class:`~deepjet_nb.performance.RocCurve` whose signal is this plot's signal."""
        if curve.signal != self.signal:
            raise ArgumentError(f"RocPlot({self.signal!r}): curve {curve.tagger}/{curve.task} has signal "
                                f"{curve.signal!r}")
        self.curves.append((curve, label or curve.tagger))
        return self

    def mark(self, efficiency: float, mistag: float, label: str | None = None) -> RocPlot:
        """Mark a point (e.g. a working point) on the ROC panel."""
        self.markers.append((float(efficiency), float(mistag), label))
        return self

    @property
    def taggers(self) -> list[str]:
        return list(dict.fromkeys(label for _, label in self.curves))

    @property
    def backgrounds(self) -> list[str]:
        found = list(dict.fromkeys(c.background for c, _ in self.curves))
        return [b for b in BACKGROUND_LINESTYLES if b in found] + [b for b in found if b not in BACKGROUND_LINESTYLES]

    def draw(self):
        """Draw into a new figure and return it. Raises :class:`ArgumentError` with no curves."""
        if not self.curves:
            raise ArgumentError("RocPlot: no curves added")
        plt = load_pyplot()
        taggers, backgrounds = self.taggers, self.backgrounds
        reference = self.reference or taggers[0]
        if reference not in taggers:
            raise ArgumentError(f"RocPlot: reference tagger {reference!r} not among {taggers}")
        n_ratio = len(backgrounds) if self.ratio_panels and len(taggers) > 1 else 0
        self.close()
        with cms_style():
            fig, axes = styled_subplots(1 + n_ratio, 1, sharex=True, figsize=(10, 8 + 2.2 * n_ratio),
                                     gridspec_kw={"height_ratios": [3] + [1] * n_ratio, "hspace": 0.07},
                                     squeeze=False)
            axes = axes[:, 0]
            ax = axes[0]
            colour_of = {**tagger_colours(taggers), **self.colours}
            by_key = {}
            for curve, label in self.curves:
                by_key[(label, curve.background)] = curve
                ax.plot(curve.sig_eff, curve.bkg_eff, color=colour_of[label],
                        linestyle=_linestyle(curve.background), linewidth=2)
            for eff, mistag, label in self.markers:
                ax.plot([eff], [mistag], marker="o", color="black", linestyle="none")
                if label:
                    ax.annotate(label, (eff, mistag), textcoords="offset points", xytext=(6, -14), fontsize=14)
            ax.set_yscale("log")
            ax.set_xlim(*self.eff_range)
            ax.set_ylim(*self.mistag_range)
            ax.set_ylabel("Misidentification probability")
            ax.grid(True, which="major", alpha=0.3)
            handles = [plt.Line2D([], [], color=colour_of[t], linewidth=2, label=t) for t in taggers]
            handles += [plt.Line2D([], [], color="black", linestyle=_linestyle(b),
                                   label=f"{self.signal} vs {b}") for b in backgrounds]
            # ROC curves rise to the upper right: the lower right corner is free
            ax.legend(handles=handles, loc="lower right", fontsize=16, title=self.title, title_fontsize=16,
                      frameon=False)
            experiment_label(ax)
            grid = np.linspace(*self.eff_range, self.n_ratio_points)
            self.ratios = {}
            for ax_r, background in zip(axes[1:], backgrounds[:n_ratio]):
                ref_curve = by_key.get((reference, background))
                if ref_curve is None:
                    continue
                ref = ref_curve.mistag_at(grid)
                for tagger in taggers:
                    curve = by_key.get((tagger, background))
                    if curve is None:
                        continue
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ratio = np.where(ref > 0, curve.mistag_at(grid) / ref, np.nan)
                    self.ratios[(tagger, background)] = (grid, ratio)
                    ax_r.plot(grid, ratio, color=colour_of[tagger],
                              linestyle=_linestyle(background), linewidth=2)
                ax_r.set_ylabel(f"{background} ratio", fontsize=18)
                # Log: ratios of mistags span decades where a tagger is far behind the reference.
                ax_r.set_yscale("log")
                plain_log_ticks(ax_r.yaxis)
                ax_r.axhline(1.0, color="grey", linewidth=1)
                ax_r.grid(True, which="major", alpha=0.3)
            axes[-1].set_xlabel(f"{self.signal}-jet efficiency")
            if n_ratio:
                axes[1].set_title(f"mistag / mistag({reference})", fontsize=14, loc="right", pad=3)
        self.figure = fig
        return fig


class BoostedRocPlot(Plot):
    """ROC curves of one task in the CMS convention: x = signal efficiency, y = background (QCD) mistag (log);
    trained taggers solid, baselines dashed, the ``mistags`` of the metrics as grey lines. Add
    :class:`~deepjet_nb.performance.RocCurve` with :meth:`add`; ``curves`` keeps them (a baseline's curve ends
    at its window's acceptance)."""

    def __init__(self, task: str, *, colours: Mapping[str, str] | None = None,
                 mistag_range: tuple[float, float] = (1e-4, 1.0), mistags: Sequence[float] = (0.05, 0.01)):
        self.task = task
        self.colours = dict(colours or {})
        self.mistag_range = mistag_range
        self.mistags = tuple(mistags)
        self.curves = []

    def add(self, curve, *, dashed: bool = False) -> BoostedRocPlot:
        if curve.task != self.task:
            raise ArgumentError(f"BoostedRocPlot({self.task!r}): curve {curve.tagger}/{curve.task} is of another task")
        self.curves.append((curve, dashed))
        return self

    def draw(self):
        if not self.curves:
            raise ArgumentError("BoostedRocPlot: no curves added")
        self.close()
        signal, background = self.curves[0][0].signal, self.curves[0][0].background
        with cms_style():
            fig, ax = styled_subplots(figsize=(10, 8))
            colours = {**tagger_colours([c.tagger for c, _ in self.curves]), **self.colours}
            for mistag in self.mistags:
                ax.axhline(mistag, color="grey", linestyle=":", linewidth=1)
            for curve, dashed in self.curves:
                ax.plot(curve.sig_eff, curve.bkg_eff, color=colours[curve.tagger], linestyle="--" if dashed else "-",
                        linewidth=2, label=f"{curve.tagger} (AUC {curve.auc:.3f})")
            ax.set_yscale("log")
            ax.set_xlim(0.0, 1.0)
            ax.set_ylim(*self.mistag_range)
            ax.set_xlabel(f"{signal} tagging efficiency")
            ax.set_ylabel(f"{background} misidentification probability")
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(loc="lower right", fontsize=16, frameon=False, title=f"{signal} vs {background}",
                      title_fontsize=16)
            experiment_label(ax)
        self.figure = fig
        return fig


def _linestyle(background: str) -> str:
    """CMS convention for the known flavours; solid for any other background class."""
    return BACKGROUND_LINESTYLES.get(background, "-")
