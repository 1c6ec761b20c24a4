"""deepjet-nb: Jupyter-first deep-learning jet-flavour tagging.

``import deepjet_nb as djn`` is cheap: every module below loads on first use (``djn.evaluate``), and
TensorFlow and matplotlib load inside the functions that need them (``dashboard``, a Keras callback, is the
one module that imports Keras when it loads). ``dir(djn)`` lists them all.

The pipeline, stage by stage: the ``deepjet-nb`` command of each stage and the modules that do its work::

    command            modules (entry points)
    generate           samples (djn.generate): Pythia 8 + detector model -> ntuples; schema: their branches
    inspect            inspect: a ROOT file's trees and branches, and a starter data config for it
    convert            convert: ntuples -> a converted dataset; jets: the per-chunk jet transform;
                       config (djn.load_config), layouts, expressions, collection: the data config and what it
                       reads; dataset (djn.open_dataset); rootio: ROOT inputs; parallel: local processes or Dask
    train              train (djn.Trainer); train_config: what defines a run; models, components: what is
                       trained; batches: jets streamed from a dataset; run (djn.open_run): the run directory;
                       validation: the metrics of every epoch; dashboard, recipes, tf_runtime, credentials
    predict            predict: run + jets -> prediction file; bdt: a boosted-decision-tree reference tagger
    evaluate           evaluate (djn.load_taggers); performance: the evaluation core; plots, widgets;
                       learning_curve: performance against the number of training jets
    evaluate-boosted   boosted: top and W tagging of fat jets
    export             deploy: run -> exported model; predictor (djn.Predictor): inference without TensorFlow;
                       equivalence: exported model against training
    serve              service: exported models -> a model server, and its client
    scan               scan: a notebook over a parameter grid
    verify             verify: a dataset, run or exported model against its checksums
    init               project: a tagger project of one's own from a template

Shared by the stages: ``flavours`` (flavours, classes, discriminants), ``kernels`` (numba kernels on flat
arrays), ``names`` (what a user-chosen name may be), ``userimport`` (objects named by import path or file),
``progress`` (progress bars), ``errors`` (the exceptions, also here: ``djn.ConfigError``, ...), ``record`` (the
numbers a notebook records), ``cli`` (the command line), ``demo`` (``make demo``). For notebooks and tests:
``tutorial_samples`` (the tutorials' sample cache), ``testing`` (random ntuples in the DeepNTuples schema).
"""

import importlib as _importlib
import os as _os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) hides the progress bars; warnings still show.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The two lines absl writes before that setting is read are filtered from the first TensorFlow import.
from ._tf_startup import quiet_first_import as _quiet_first_import  # noqa: E402

_quiet_first_import()

from .errors import (ArgumentError, ConfigError, DatasetError, DeepJetError, DeployError, InputFileError, RunError,
                     ServiceError)

__version__ = "0.1.0"

_ERRORS = ("ArgumentError", "ConfigError", "DatasetError", "DeepJetError", "DeployError", "InputFileError",
           "RunError", "ServiceError")
# Every public module of the package, in the order of the docstring's map.
_MODULES = ("samples", "schema", "inspect", "convert", "jets", "config", "layouts", "expressions", "collection",
            "dataset", "rootio", "parallel", "train", "train_config", "models", "components", "batches", "run",
            "validation", "dashboard", "recipes", "tf_runtime", "credentials", "predict", "bdt", "evaluate", "performance",
            "learning_curve", "plots",
            "widgets", "boosted", "deploy", "predictor", "equivalence", "service", "scan", "verify", "project",
            "flavours", "kernels", "names", "userimport", "progress", "errors", "record", "cli", "demo",
            "tutorial_samples", "testing")
# Shortcuts: name -> module that defines it.
_SHORTCUTS = {"generate": "samples", "load_config": "config", "open_dataset": "dataset", "Trainer": "train",
              "open_run": "run", "load_taggers": "evaluate", "Predictor": "predictor"}
# Old module names, kept for one release: importing one warns and gives the renamed module.
_RENAMED = {"pipeline": "batches", "summary": "record", "examples": "tutorial_samples"}

__all__ = [*_ERRORS, *sorted(_SHORTCUTS), *sorted(_MODULES)]


def __getattr__(name):
    if name in _MODULES or name in _RENAMED:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in _SHORTCUTS:
        return getattr(_importlib.import_module(f"{__name__}.{_SHORTCUTS[name]}"), name)
    raise AttributeError(f"module 'deepjet_nb' has no attribute {name!r}")


def __dir__():
    return sorted([*__all__, "__version__"])
