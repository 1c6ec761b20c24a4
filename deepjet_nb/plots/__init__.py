"""CMS-style plots of tagger performance (mplhep), one object per plot kind, in the manner of puma.

- :class:`RocPlot`: x = signal efficiency, y = misidentification probability (log), udsg background solid,
  c dashed (CMS convention, docs/reference.md §6); several taggers, one ratio panel per background with the
  mistag of each tagger divided by that of a reference tagger.
- :class:`BoostedRocPlot`: one boosted task (e.g. top vs QCD), cut-based baselines dashed.
- :class:`HistogramPlot`: distributions normalised to unit area, e.g. any jet variable or a discriminant per
  flavour (:meth:`HistogramPlot.by_flavour`, :meth:`HistogramPlot.from_tagger`).
- :class:`EfficiencyPlot`: efficiency of a working point vs jet pT or η with binomial uncertainties.
- :class:`ReweightingPlot`: shapes of a jet variable per class before and after pT–η reweighting.
- :class:`HistoryPlot`: a training run's loss and a validation metric per epoch.
- :class:`EquivalencePlot`: deployed versus training discriminants of the same jets (2D histograms).
- :class:`ParameterPlot`: a parameter scan's metric against one parameter, seed spread as error bars.
- :class:`LearningCurvePlot`: efficiency at 1 % mistag against the number of training jets, and the difference
  to a reference tagger below (:mod:`deepjet_nb.learning_curve`).
- :func:`sculpting_plot`, :func:`mass_by_class_plot`: soft-drop-mass distributions of fat jets.

One module per plot kind: ``roc``, ``distributions``, ``training``, ``learning``; ``base`` holds what they share.

Each object keeps the numbers it draws (``RocPlot.ratios``, ``HistogramPlot.histograms``,
``EfficiencyPlot.efficiencies``, ``ReweightingPlot.fractions``, ``HistoryPlot.series``,
``ParameterPlot.series``), so tests check plots by their numbers. ``draw()`` returns the matplotlib figure
(shown inline in a notebook); ``savefig(stem)`` writes ``stem.png`` and ``stem.pdf`` atomically.

Matplotlib is imported on first draw, and the Agg backend is chosen then only when no backend has been
selected yet (a batch job); a notebook keeps its inline backend.
"""

from .base import (BACKGROUND_LINESTYLES, FLAVOUR_LABELS, METRIC_LABELS, Plot, cms_style, experiment_label,
                   plot_stems, room_for_legend, styled_subplots, tagger_colours)
from .distributions import (EfficiencyPlot, EquivalencePlot, HistogramPlot, ReweightingPlot, mass_by_class_plot,
                            sculpting_plot)
from .learning import LearningCurvePlot
from .roc import BoostedRocPlot, RocPlot
from .training import HistoryPlot, ParameterPlot

__all__ = ["RocPlot", "BoostedRocPlot", "HistogramPlot", "EfficiencyPlot", "ReweightingPlot", "HistoryPlot",
           "ParameterPlot", "LearningCurvePlot",
           "EquivalencePlot", "FLAVOUR_LABELS", "METRIC_LABELS", "BACKGROUND_LINESTYLES",
           "tagger_colours", "experiment_label", "Plot", "cms_style", "styled_subplots", "plot_stems",
           "sculpting_plot", "mass_by_class_plot", "room_for_legend"]
