"""deepjet-nb: Jupyter-first deep-learning jet-flavour tagging.

``import deepjet_nb as djn`` is cheap: modules (and TensorFlow, matplotlib) load on first use.

The pipeline has one module per stage, named after the command that runs it, and one module per shared idea
or file format::

    djn.samples.generate(...)        generate       Pythia 8 + detector model -> jet ntuples (schema)
    djn.convert.convert(...)         convert        ntuples + data config (config) -> dataset (dataset)
    djn.train.Trainer(...)           train          dataset -> run directory (run), live dashboard
    djn.predict.predict(...)         predict        run + jets -> prediction file
    djn.evaluate.evaluate(...)       evaluate       predictions -> metrics, plots (plots), explorer (widgets)
    djn.deploy.export(...)           export         run -> exported model (ONNX + card); djn.Predictor (no TF)
    djn.service.Client(...)          serve          exported models -> MLServer (OIP v2, TFaaS routes); client
    djn.scan.scan(...)               scan           a notebook x a parameter grid -> table, plots, widget

Shared ideas: ``schema`` (ntuple branches), ``flavours`` (flavours, classes, discriminants), ``dataset``,
``run``, ``parallel`` (local processes or Dask), ``summary`` (numbers a notebook records), ``examples``
(small samples shared by the tutorials). The objects people open or build most often are also here:
``djn.generate``, ``djn.load_config``, ``djn.open_dataset``, ``djn.Trainer``, ``djn.open_run``,
``djn.load_taggers``, ``djn.Predictor``.
"""

import importlib
import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) hides the progress bars; warnings still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .errors import (ArgumentError, ConfigError, DatasetError, DeepJetError, DeployError, InputFileError, RunError,
                     ServiceError)

__version__ = "0.1.0"

_LAZY_MODULES = frozenset(
    ("samples", "kernels", "schema", "flavours", "config", "convert", "dataset", "parallel", "pipeline", "models",
     "train", "run", "dashboard", "predict", "evaluate", "plots", "widgets", "summary", "examples", "cli", "demo",
     "scan", "deploy", "service")
)
# Shortcuts: name -> module that defines it.
_SHORTCUTS = {"generate": "samples", "load_config": "config", "open_dataset": "dataset", "Trainer": "train",
              "open_run": "run", "load_taggers": "evaluate", "Predictor": "deploy"}

__all__ = ["ArgumentError", "ConfigError", "DatasetError", "DeepJetError", "DeployError", "InputFileError",
           "RunError", "ServiceError", *sorted(_SHORTCUTS), *sorted(_LAZY_MODULES)]


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f"{__name__}.{_SHORTCUTS[name]}"), name)
    raise AttributeError(f"module 'deepjet_nb' has no attribute {name!r}")
