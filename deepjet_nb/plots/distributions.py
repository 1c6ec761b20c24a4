"""Distributions (:mod:`deepjet_nb.plots`): :class:`HistogramPlot` (normalised histograms, e.g. a discriminant per
flavour or the soft-drop mass of fat jets), :class:`EfficiencyPlot` (efficiency vs a variable),
:class:`ReweightingPlot` (shapes before and after reweighting), :class:`EquivalencePlot` (deployed vs training
discriminants), and the mass-sculpting histograms of boosted taggers (:func:`sculpting_plot`,
:func:`mass_by_class_plot`)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ArgumentError
from ..flavours import FLAVOUR_CODES
from .base import (DISCRIMINANT_LABELS, FLAVOUR_COLOURS, FLAVOUR_LABELS, VARIABLE_LABELS, Plot, cms_style,
                   experiment_label, load_mplhep, plain_log_ticks, room_for_legend, styled_subplots)

SDMASS_LABEL = "Soft-drop mass [GeV]"


class HistogramPlot(Plot):
    """Distributions of a variable, one histogram per added sample, normalised to unit area.

    ``xlabel`` names the variable; ``bins`` and ``range`` give regular bins. Values outside ``range`` are
    counted in the first/last bin so that every entry is shown. After :meth:`add`,
    ``histograms[label] = (edges, density)``.
    """

    def __init__(self, xlabel: str = "", *, bins: int = 50, range: tuple[float, float] = (0.0, 1.0),
                 title: str | None = None, logy: bool = True):
        self.edges = np.linspace(range[0], range[1], bins + 1)
        self.title = title
        self.logy = logy
        self.xlabel = xlabel
        self.histograms = {}
        self._styles = {}

    @classmethod
    def by_flavour(cls, values, flavour, xlabel: str, *, bins: int = 50, range: tuple[float, float] | None = None,
                   weights=None, logy: bool = True, title: str | None = None) -> HistogramPlot:
        """One histogram per jet flavour (b, c, udsg) of ``values``.

        ``flavour`` is per-jet flavour codes (:func:`deepjet_nb.flavours.truth_flavour`) or a mapping of
        flavour → boolean mask (:func:`deepjet_nb.flavours.flavour_masks`). ``range`` defaults to the
        0.5–99.5 % quantiles of the values. NaN values are left out.
        """
        values = np.asarray(values, dtype=np.float64)
        if isinstance(flavour, dict):
            masks = {f: np.asarray(m, dtype=bool) for f, m in flavour.items()}
        else:
            masks = {f: np.asarray(flavour) == code for f, code in FLAVOUR_CODES.items()}
        finite = np.isfinite(values)
        if range is None:
            lo, hi = (float(q) for q in np.quantile(values[finite], [0.005, 0.995])) if finite.any() else (0, 1)
            range = (lo, hi if hi > lo else lo + 1.0)
        plot = cls(xlabel, bins=bins, range=range, title=title, logy=logy)
        for name, mask in masks.items():
            sel = mask & finite
            if np.any(sel):
                plot.add(values[sel], FLAVOUR_LABELS.get(name, name),
                         weights=None if weights is None else np.asarray(weights)[sel],
                         color=FLAVOUR_COLOURS.get(name))
        return plot

    @classmethod
    def from_tagger(cls, tagger, discriminant: str = "b", *, bins: int = 50) -> HistogramPlot:
        """One histogram per flavour (b, c, udsg) of a :class:`~deepjet_nb.evaluate.Tagger`'s discriminant.

        The range is [0, 1] for probabilities, else the 0.5-99.5 % quantiles (track counting).
        """
        values = tagger.discriminants[discriminant]
        is_probability = float(np.min(values)) >= 0.0 and float(np.max(values)) <= 1.0
        return cls.by_flavour(values, tagger.flavour, DISCRIMINANT_LABELS.get(discriminant, discriminant),
                              bins=bins, range=(0.0, 1.0) if is_probability else None, weights=tagger.weights,
                              title=tagger.name)

    def add(self, values, label: str, *, weights=None, color=None, linestyle: str = "-") -> HistogramPlot:
        """Histogram ``values`` (optionally weighted) under ``label``."""
        values = np.clip(np.asarray(values, dtype=np.float64), self.edges[0], self.edges[-1])
        counts, _ = np.histogram(values, bins=self.edges, weights=weights)
        total = counts.sum()
        density = counts / (total * np.diff(self.edges)) if total > 0 else np.zeros_like(counts, dtype=float)
        self.histograms[label] = (self.edges, density)
        self._styles[label] = {"color": color, "linestyle": linestyle}
        return self

    def draw(self):
        if not self.histograms:
            raise ArgumentError("HistogramPlot: no histograms added")
        mplhep = load_mplhep()
        self.close()
        with cms_style():
            fig, ax = styled_subplots(figsize=(10, 8))
            for label, (edges, density) in self.histograms.items():
                mplhep.histplot(density, edges, ax=ax, label=label, linewidth=2, **self._styles[label])
            if self.logy:
                ax.set_yscale("log")
            ax.set_xlabel(self.xlabel)
            ax.set_ylabel("Normalised to unit area")
            ax.legend(title=self.title, frameon=False)
            room_for_legend(ax, len(self.histograms) + (self.title is not None))
            experiment_label(ax)
        self.figure = fig
        return fig


class EfficiencyPlot(Plot):
    """Efficiency vs jet pT or η, one series per :class:`~deepjet_nb.evaluate.Efficiency` added, with
    asymmetric binomial error bars. ``efficiencies[label]`` keeps what was added."""

    def __init__(self, variable: str = "jet_pt", *, title: str | None = None, logy: bool = True):
        self.variable = variable
        self.title = title
        self.logy = logy
        self.efficiencies = {}

    def add(self, efficiency, label: str | None = None, *, color=None) -> EfficiencyPlot:
        label = label or FLAVOUR_LABELS.get(efficiency.flavour, efficiency.flavour)
        self.efficiencies[label] = (efficiency, color or FLAVOUR_COLOURS.get(efficiency.flavour))
        return self

    def draw(self):
        if not self.efficiencies:
            raise ArgumentError("EfficiencyPlot: no efficiencies added")
        self.close()
        with cms_style():
            fig, ax = styled_subplots(figsize=(10, 8))
            for label, (eff, color) in self.efficiencies.items():
                half = 0.5 * np.diff(eff.edges)
                ax.errorbar(eff.centers, eff.values, xerr=half, yerr=[eff.err_low, eff.err_high],
                            marker="o", linestyle="none", color=color, label=label)
            if self.logy:
                # The legend (one line) goes below the points, a decade under the lowest one, so the axis can
                # end just above 1.
                ax.set_yscale("log")
                lowest = min((float(np.min(e.values[e.values > 0])) for e, _ in self.efficiencies.values()
                              if np.any(e.values > 0)), default=1e-3)
                ax.set_ylim(min(1e-4, lowest / 10), 1.5)
            else:
                ax.set_ylim(0, 1.05)
            if self.variable == "jet_pt":
                ax.set_xscale("log")
            ax.set_xlabel(VARIABLE_LABELS.get(self.variable, self.variable))
            ax.set_ylabel("Tagging efficiency")
            ax.legend(title=self.title, frameon=False, ncols=3, loc="lower right" if self.logy else "upper left",
                      title_fontsize=16)
            if not self.logy:
                room_for_legend(ax, 1 + (self.title is not None))
            experiment_label(ax)
        self.figure = fig
        return fig


class ReweightingPlot(Plot):
    """What pT–η reweighting does: the shape of a jet variable per class with unit weights (left) and with the
    conversion's per-jet weights (right), each normalised to unit sum.

    ``values``, ``label`` (class index) and ``weights`` are per-jet arrays; ``classes`` the class names;
    ``edges`` the bin edges. After construction, ``fractions["before"|"after"][class]`` holds the shapes and
    :meth:`distance_to_reference` the L1 distance of each class's shape to the reference class's.
    """

    def __init__(self, values, label, weights, classes, edges, *, xlabel: str = "", reference: str | None = None):
        values, label, weights = np.asarray(values), np.asarray(label), np.asarray(weights, dtype=np.float64)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.xlabel = xlabel
        self.reference = reference or classes[0]
        self.fractions = {"before": {}, "after": {}}
        for i, cls in enumerate(classes):
            sel = label == i
            for key, w in (("before", np.ones(np.count_nonzero(sel))), ("after", weights[sel])):
                counts, _ = np.histogram(values[sel], bins=self.edges, weights=w)
                if counts.sum() > 0:
                    self.fractions[key][cls] = counts / counts.sum()

    @classmethod
    def from_dataset(cls, dataset, variable: str = "jet_pt", *, max_edge: float = 600.0) -> ReweightingPlot:
        """The plot for a converted dataset made with ``weighting.apply: weight`` (every jet kept, with its
        weight), in the manifest's pT (or η) bins up to ``max_edge``; the reference is the config's."""
        arrays = dataset.load()
        weighting = dataset.manifest["weighting"]
        edges = np.asarray(weighting["pt_edges" if variable == weighting.get("pt_branch", "jet_pt") else "eta_edges"])
        return cls(arrays["spectators"][:, dataset.spectators.index(variable)], arrays["label"], arrays["weight"],
                   dataset.classes, edges[edges <= max_edge], xlabel=VARIABLE_LABELS.get(variable, variable),
                   reference=weighting.get("reference_class"))

    def distance_to_reference(self) -> dict[str, dict[str, float]]:
        """L1 distance between each class's shape and the reference class's, before and after weighting."""
        return {key: {c: float(np.abs(f - shapes[self.reference]).sum()) for c, f in shapes.items()}
                for key, shapes in self.fractions.items() if self.reference in shapes}

    def draw(self):
        mplhep = load_mplhep()
        self.close()
        with cms_style():
            fig, axes = styled_subplots(1, 2, figsize=(16, 7), sharey=True)
            for ax, key in zip(axes, ("before", "after")):
                for cls, fractions in self.fractions[key].items():
                    mplhep.histplot(fractions, self.edges, ax=ax, label=cls, linewidth=2)
                ax.set_yscale("log")
                ax.set_xscale("log")
                # Over a decade the log axis labels its minor ticks too, and they run together: round values only.
                ticks = [t for t in (20, 50, 100, 200, 500, 1000) if self.edges[0] <= t <= self.edges[-1]]
                if ticks:
                    plain_log_ticks(ax.xaxis, ticks)
                ax.set_xlabel(self.xlabel)
                ax.legend(title=f"{key} reweighting", frameon=False, ncols=2)
                room_for_legend(ax, math.ceil(len(self.fractions[key]) / 2) + 1)
                experiment_label(ax)
            axes[0].set_ylabel("Fraction of jets")
            fig.tight_layout()
        self.figure = fig
        return fig


class EquivalencePlot(Plot):
    """Deployed versus training discriminants of the same jets: one 2D histogram per discriminant (x = the
    training framework, y = the deployed model, log colour scale), as the CMSSW integration checks showed it.

    Add discriminants with :meth:`add`; after it, ``histograms[name] = (edges, counts)`` (counts indexed
    ``[x_bin][y_bin]``) and ``max_abs_diff[name]``; ``off_diagonal(name)`` counts the jets outside the
    diagonal bins (0 when the two agree to better than a bin).
    """

    def __init__(self, *, bins: int = 50, range: tuple[float, float] = (0.0, 1.0), title: str | None = None,
                 xlabel: str = "training", ylabel: str = "deployed"):
        self.histograms, self.max_abs_diff = {}, {}
        self.axis_labels = (xlabel, ylabel)
        self.title = title
        self.edges = np.linspace(range[0], range[1], bins + 1)

    def add(self, name: str, training, deployed) -> EquivalencePlot:
        """Histogram discriminant ``name`` (e.g. "b", "CvsL"): per-jet values of both sides, same jets in the same
        order. Values outside the range go to the first/last bin. Raises :class:`ArgumentError` for arrays of
        different lengths."""
        x = np.asarray(training, dtype=np.float64)
        y = np.asarray(deployed, dtype=np.float64)
        if x.shape != y.shape:
            raise ArgumentError(f"EquivalencePlot({name!r}): {len(x)} training and {len(y)} deployed values")
        lo, hi = self.edges[0], self.edges[-1]
        counts, _, _ = np.histogram2d(np.clip(x, lo, hi), np.clip(y, lo, hi), bins=(self.edges, self.edges))
        self.histograms[name] = (self.edges, counts)
        self.max_abs_diff[name] = float(np.max(np.abs(y - x))) if len(x) else 0.0
        return self

    def off_diagonal(self, name: str) -> int:
        _, counts = self.histograms[name]
        return int(counts.sum() - np.trace(counts))

    def draw(self):
        if not self.histograms:
            raise ArgumentError("EquivalencePlot: no discriminants added")
        from matplotlib.colors import LogNorm

        self.close()
        with cms_style():
            fig, axes = styled_subplots(1, len(self.histograms), figsize=(9 * len(self.histograms), 8), squeeze=False)
            for ax, (name, (edges, counts)) in zip(axes[0], self.histograms.items()):
                mesh = ax.pcolormesh(edges, edges, np.where(counts > 0, counts, np.nan).T, cmap="viridis",
                                     norm=LogNorm(vmin=1, vmax=max(counts.max(), 1)))
                ax.plot(edges[[0, -1]], edges[[0, -1]], color="grey", linestyle=":", linewidth=1)
                fig.colorbar(mesh, ax=ax, label="Jets")
                label = DISCRIMINANT_LABELS.get(name, name)
                ax.set_xlabel(f"{label} ({self.axis_labels[0]})")
                ax.set_ylabel(f"{label} ({self.axis_labels[1]})")
                text = "\n".join([*([self.title] if self.title else []), f"max |Δ| = {self.max_abs_diff[name]:.1e}"])
                ax.text(0.04, 0.95, text, transform=ax.transAxes, va="top", fontsize=16)
                experiment_label(ax)
            fig.tight_layout()
        self.figure = fig
        return fig


def sculpting_plot(tagger, task, sculpt: dict, edges) -> HistogramPlot:
    """Normalised soft-drop-mass distributions of the task's background (QCD) jets of a fat-jet tagger: all,
    and those selected at each mistag of ``sculpt`` (:func:`deepjet_nb.boosted.sculpting`'s result; step
    histograms over ``edges``)."""
    _, background = tagger.jets(task)
    mass, scores = tagger.sdmass[background], tagger.scores[task][background]
    spec = tagger.tasks[task]
    plot = HistogramPlot(SDMASS_LABEL, bins=len(edges) - 1, range=(edges[0], edges[-1]),
                         title=f"{tagger.name}, {spec.signal} vs {spec.background}", logy=False)
    plot.add(mass, f"{spec.background}, inclusive", color="black")
    for (key, entry), style in zip(((k, v) for k, v in sculpt.items() if k != "inclusive"), ("-", "--", ":", "-.")):
        if entry is None or entry["js"] is None:
            continue
        selected = scores >= entry["cut"]
        plot.add(mass[selected], f"{spec.background}, {float(key):.0%} mistag (JS {entry['js']:.3f})",
                 linestyle=style)
    return plot


def mass_by_class_plot(tagger, edges) -> HistogramPlot:
    """Normalised soft-drop-mass distribution of each truth class of a fat-jet tagger that has jets."""
    plot = HistogramPlot(SDMASS_LABEL, bins=len(edges) - 1, range=(edges[0], edges[-1]), title="truth class",
                         logy=False)
    for cls, mask in tagger.truth.items():
        if mask.any():
            plot.add(tagger.sdmass[mask], f"{cls} ({int(mask.sum())} jets)")
    return plot
