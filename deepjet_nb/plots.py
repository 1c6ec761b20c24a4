"""CMS-style plots of tagger performance (mplhep), one object per plot kind, in the manner of puma.

- :class:`RocPlot`: x = signal efficiency, y = misidentification probability (log), udsg background solid,
  c dashed (CMS convention, docs/reference.md §6); several taggers, one ratio panel per background with the
  mistag of each tagger divided by that of a reference tagger.
- :class:`HistogramPlot`: distributions normalised to unit area, e.g. any jet variable or a discriminant per
  flavour (:meth:`HistogramPlot.by_flavour`, :meth:`HistogramPlot.from_tagger`).
- :class:`EfficiencyPlot`: efficiency of a working point vs jet pT or η with binomial uncertainties.
- :class:`ReweightingPlot`: shapes of a jet variable per class before and after pT–η reweighting.
- :class:`HistoryPlot`: a training run's loss and a validation metric per epoch.
- :class:`EquivalencePlot`: deployed versus training discriminants of the same jets (2D histograms).
- :class:`ParameterPlot`: a parameter scan's metric against one parameter, seed spread as error bars.

Each object keeps the numbers it draws (``RocPlot.ratios``, ``HistogramPlot.histograms``,
``EfficiencyPlot.efficiencies``, ``ReweightingPlot.fractions``, ``HistoryPlot.series``,
``ParameterPlot.series``), so tests check plots by their numbers. ``draw()`` returns the matplotlib figure
(shown inline in a notebook); ``savefig(stem)`` writes ``stem.png`` and ``stem.pdf`` atomically.

Matplotlib is imported on first draw, and the Agg backend is chosen then only when no backend has been
selected yet (a batch job); a notebook keeps its inline backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._atomic import atomic_path
from .errors import ArgumentError
from .flavours import FLAVOUR_CODES

__all__ = ["RocPlot", "HistogramPlot", "EfficiencyPlot", "ReweightingPlot", "HistoryPlot", "ParameterPlot",
           "EquivalencePlot", "FLAVOUR_LABELS",
           "BACKGROUND_LINESTYLES", "tagger_colours", "experiment_label", "Plot", "cms_style", "styled_subplots"]

FLAVOUR_LABELS = {"b": "b jets", "c": "c jets", "udsg": "udsg jets"}
# CMS ROC convention: light (udsg) background solid, c dashed; b (for c tagging) dotted.
BACKGROUND_LINESTYLES = {"udsg": "-", "c": "--", "b": ":"}
FLAVOUR_COLOURS = {"b": "#1f77b4", "c": "#2ca02c", "udsg": "#d62728"}
DISCRIMINANT_LABELS = {"b": "b discriminant", "CvsL": "CvsL discriminant", "CvsB": "CvsB discriminant"}
VARIABLE_LABELS = {"jet_pt": r"Jet $p_{T}$ [GeV]", "jet_eta": r"Jet $\eta$"}
METRIC_LABELS = {"val_beff_at_mistag_0.01": "b eff. at 1% udsg mistag (val.)",
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
        """The plot as PNG bytes (drawn first if needed), e.g. for an ``ipywidgets.Image``."""
        import io

        buffer = io.BytesIO()
        self._render(buffer, "png", dpi=dpi)
        return buffer.getvalue()

    def _render(self, target, fmt, dpi=None):
        figure = self.figure if self.figure is not None else self.draw()
        with cms_style():  # the savefig.* settings of the style too (the figure draws itself in it anyway)
            figure.savefig(target, format=fmt, dpi=dpi if dpi is not None else "figure")

    def close(self) -> None:
        """Release the figure (pyplot keeps a reference to every open figure)."""
        if self.figure is not None:
            _pyplot().close(self.figure)
            self.figure = None


class RocPlot(Plot):
    """ROC curves of several taggers against one or two backgrounds, with ratio panels.

    ``signal``: ``"b"`` or ``"c"``; ``reference``: name of the tagger in the denominators of the ratio
    panels (default: the first tagger added); ``eff_range``: x range, also the range of the ratio grid;
    ``colours``: tagger → colour (others take the style's colours in the order added, see :func:`tagger_colours`).
    Add curves (:class:`deepjet_nb.evaluate.RocCurve`) with :meth:`add`; optionally :meth:`mark` working
    points; :meth:`draw`. After drawing, ``ratios[(tagger, background)] = (eff_grid, mistag / mistag_ref)``.
    """

    def __init__(self, signal: str = "b", *, reference: str | None = None,
                 eff_range: tuple[float, float] = (0.3, 1.0), mistag_range: tuple[float, float] = (1e-4, 1.0),
                 n_ratio_points: int = 100, title: str | None = None, ratio_panels: bool = True,
                 colours: dict[str, str] | None = None):
        if signal not in FLAVOUR_LABELS:
            raise ArgumentError(f"RocPlot: signal must be one of {list(FLAVOUR_LABELS)}, got {signal!r}")
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
        """Add a :class:`~deepjet_nb.evaluate.RocCurve` whose signal is this plot's signal."""
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
        found = {c.background for c, _ in self.curves}
        return [b for b in BACKGROUND_LINESTYLES if b in found]

    def draw(self):
        """Draw into a new figure and return it. Raises :class:`ArgumentError` with no curves."""
        if not self.curves:
            raise ArgumentError("RocPlot: no curves added")
        plt = _pyplot()
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
                        linestyle=BACKGROUND_LINESTYLES[curve.background], linewidth=2)
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
            handles += [plt.Line2D([], [], color="black", linestyle=BACKGROUND_LINESTYLES[b],
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
                              linestyle=BACKGROUND_LINESTYLES[background], linewidth=2)
                ax_r.set_ylabel(f"{background} ratio", fontsize=18)
                ax_r.grid(True, alpha=0.3)
            axes[-1].set_xlabel(f"{self.signal}-jet efficiency")
            if n_ratio:
                axes[1].set_title(f"mistag / mistag({reference})", fontsize=14, loc="right", pad=3)
        self.figure = fig
        return fig


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
        mplhep = _mplhep()
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
                ax.set_yscale("log")
                ax.set_ylim(1e-4, 30)  # room above 1 for the legend: it must not cover the b-jet points
            else:
                ax.set_ylim(0, 1.2)
            if self.variable == "jet_pt":
                ax.set_xscale("log")
            ax.set_xlabel(VARIABLE_LABELS.get(self.variable, self.variable))
            ax.set_ylabel("Tagging efficiency")
            ax.legend(title=self.title, frameon=False, ncols=3, loc="upper left", title_fontsize=16)
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
        mplhep = _mplhep()
        self.close()
        with cms_style():
            fig, axes = styled_subplots(1, 2, figsize=(16, 7), sharey=True)
            for ax, key in zip(axes, ("before", "after")):
                for cls, fractions in self.fractions[key].items():
                    mplhep.histplot(fractions, self.edges, ax=ax, label=cls, linewidth=2)
                ax.set_yscale("log")
                ax.set_xscale("log")
                ax.set_xlabel(self.xlabel)
                ax.legend(title=f"{key} reweighting", frameon=False, ncols=2)
                experiment_label(ax)
            axes[0].set_ylabel("Fraction of jets")
            fig.tight_layout()
        self.figure = fig
        return fig


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
        self.metric = metric
        self.metric_label = metric_label or METRIC_LABELS.get(metric, metric)
        self.title = title
        self.series = {}

    @classmethod
    def from_run(cls, run_dir, **kwargs) -> HistoryPlot:
        """The history of the run directory ``run_dir``; the title names its model and directory."""
        from .run import Run, read_history

        rows = read_history(run_dir)
        path = Path(run_dir)
        model = Run(path).train_config().get("model", "") if "title" not in kwargs else ""
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


def experiment_label(ax) -> None:
    """The label of every plot: CMS style, but these are deepjet-nb simulations, not CMS results."""
    import mplhep

    mplhep.label.exp_label(exp="deepjet-nb", llabel="Simulation", rlabel=f"{COM_TEV:g} TeV", ax=ax)


def cms_style():
    """The CMS style (mplhep) as a context: figures are built and drawn inside it."""
    return _pyplot().style.context(_mplhep().style.CMS)


def styled_subplots(*args, **kwargs):
    """``plt.subplots`` for a figure that draws itself in the CMS style wherever it is rendered."""
    return _pyplot().subplots(*args, FigureClass=_styled_figure_class(), **kwargs)


def _styled_figure_class():
    """A Figure subclass whose ``draw`` runs inside the CMS style.

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

        _StyledFigure = StyledFigure
    return _StyledFigure


_StyledFigure = None


def _pyplot():
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


def _mplhep():
    import mplhep

    return mplhep


def tagger_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per tagger name from the CMS style's colour cycle, in the order given: pass the full list of
    taggers once, so a tagger keeps its colour when others are left out of a plot."""
    cycle = _mplhep().style.CMS.get("axes.prop_cycle")
    colours = cycle.by_key().get("color") if cycle is not None else None
    colours = colours or [f"C{i}" for i in range(10)]
    return {name: colours[i % len(colours)] for i, name in enumerate(names)}
