"""Export: a training run → an exported model directory (docs/formats.md §6): ``model.onnx``, its
graph-optimised copy, optionally ``model.int8.onnx``, and the model card ``model.json``; with check files, the
equivalence report of :mod:`deepjet_nb.equivalence` decides whether the directory is published. The directory's
files are named and read by :mod:`deepjet_nb.predictor`, whose TensorFlow-free
:class:`~deepjet_nb.predictor.Predictor` runs it.

For a config whose classes are not jet flavours (``schema: deepak8`` or ``events``), the card's discriminant
is P(first) / (P(first) + P(last)) (first class the signal, last the background, e.g. ``ttbarvsQCD``), and the
int8 check compares the first class's efficiency at 1 % mistag of the last instead of the b efficiency.

An export is written into a temporary directory and moved into place only when complete (and, with
``check``, only when the deployed model reproduces the training framework): a second export to the same
directory replaces it whole or not at all.

Example::

    from deepjet_nb.deploy import export
    from deepjet_nb.predictor import Predictor
    export("runs/deepjet", "models/deepjet", check=["ttbar_test.root"])   # needs TensorFlow
    predictor = Predictor("models/deepjet")                                 # ONNX Runtime only
    probs = predictor.predict_root(["ttbar_test.root"])                     # {"B": array, "BB": ..., ...}

Command line: ``deepjet-nb export --run RUN --out MODEL_DIR [--check FILE.root ...] [--quantize int8]``.

The inference side is importable from here too (``from deepjet_nb.deploy import Predictor, open_model, CARD``,
``check``, ``latency``, ``TOLERANCE``, ...); those names live in :mod:`deepjet_nb.predictor` and
:mod:`deepjet_nb.equivalence`, and are loaded from there on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import equivalence
from ._atomic import atomic_path, sha256_file
from ._jsonio import write_json
from ._lock import output_lock
from .errors import ArgumentError, DeployError
from .jets import DEFAULT_STEP_SIZE
from .predict import describe_choice
from .predictor import (BATCH_AXIS, CARD, EQUIVALENCE, FORMAT_VERSION, INT8_ONNX, META_CLASSES, META_INPUTS,
                        MODEL_ONNX, OPTIMISED_ONNX, OUTPUT, ModelDirectory, inputs_digest, open_model,
                        write_checksums)
from .progress import StepBar

__all__ = ["export", "register_cli", "OPSET"]

OPSET = 15  # ONNX Runtime >= 1.10 and the CMSSW ONNX Runtime interface run it

# Where the inference names importable from this module live (loaded on first use by __getattr__ below).
_MOVED = {**dict.fromkeys(("Predictor", "ModelDirectory", "open_model", "session_options", "latency", "MODEL_ONNX",
                           "OPTIMISED_ONNX", "INT8_ONNX", "CARD", "EQUIVALENCE", "EQUIVALENCE_PLOT", "OUTPUT",
                           "BATCH_AXIS", "FORMAT_VERSION", "PRECISIONS", "DEFAULT_BATCH_SIZE"), "predictor"),
          **dict.fromkeys(("check", "TOLERANCE", "DIFF_LEVEL", "INT8_MISTAG", "INT8_MAX_BEFF_CHANGE"), "equivalence")}


def __getattr__(name):
    if name in _MOVED:
        return getattr(importlib.import_module(f"{__package__}.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def export(run_dir, out: str | os.PathLike, *, which: str = "auto", check: Sequence[str | os.PathLike] | None = None,
           quantize: str | None = None, step_size: int = DEFAULT_STEP_SIZE, progress: bool = True) -> ModelDirectory:
    """Export the model of a training run into the model directory ``out``; returns it opened.

    Inputs: ``run_dir`` a run directory (or :class:`~deepjet_nb.run.Run`); ``which`` its model file ("auto" =
    the best checkpoint, lowest validation loss, else the final model; "best", "final", "last"; recorded in
    the card's ``source.checkpoint``); ``check`` ROOT ntuples on which the training framework
    (Keras, as ``deepjet-nb predict`` runs it) and the deployed model (the Predictor) are compared
    (:func:`deepjet_nb.equivalence.compare`); ``quantize="int8"`` adds a dynamically quantised model, which
    needs ``check`` files to measure its b efficiency.

    Nothing is published unless every step succeeds: raises :class:`DeployError` when the deployed model
    differs from the training model by more than :data:`~deepjet_nb.equivalence.TOLERANCE` on a check jet, when
    the int8 model changes the b efficiency at 1 % light mistag by more than
    :data:`~deepjet_nb.equivalence.INT8_MAX_BEFF_CHANGE`, or when ``out`` exists and is not an exported model
    directory; :class:`RunError` for the run; :class:`InputFileError` for a check file; :class:`ArgumentError`
    for bad arguments. ``out`` is then left as it was.
    """
    from .run import Run, open_run

    if quantize not in (None, "int8"):
        raise ArgumentError(f"export: quantize must be 'int8' or None, got {quantize!r}")
    check = [Path(p) for p in (check or ())]
    if quantize and not check:
        raise ArgumentError("export: quantize='int8' needs check files (--check FILE.root) to measure the change "
                            "of b efficiency it causes")
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CARD).is_file())):
        raise DeployError(f"{out}: exists and is not an exported model directory; refusing to replace it")
    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    model_path = run.model_path(which)
    steps = ["export to ONNX", "optimise", *(["quantise"] if quantize else []), "model card",
             *(["check"] if check else [])]
    keras_model = run.load_model(which)
    _check_model_inputs(keras_model, run, model_path)
    bar = StepBar(progress, steps, desc="export")
    # The directory is replaced whole, so its lock lives beside it (two exports never interleave).
    with (output_lock(out.parent, what="deepjet-nb export", name=f".{out.name}.lock"), contextlib.closing(bar),
          atomic_path(out, directory=True) as tmp):
        bar.next()
        opset = _write_onnx(keras_model, run, tmp / MODEL_ONNX)
        bar.next()
        files = {"float32": _file_record(tmp / MODEL_ONNX)}
        files["optimised"] = {**_optimise(tmp / MODEL_ONNX, tmp / OPTIMISED_ONNX), **_file_record(tmp / OPTIMISED_ONNX)}
        if quantize:
            bar.next()
            _quantise(tmp / MODEL_ONNX, tmp / INT8_ONNX)
            files["int8"] = {**_file_record(tmp / INT8_ONNX), "method": "onnxruntime.quantization.quantize_dynamic",
                             "weights": "int8 per tensor", "activations": "uint8, quantised at run time"}
        bar.next()
        write_json(tmp / CARD, _card(run, keras_model, model_path, files, opset, which))
        if check:
            bar.next()
            report = equivalence.compare(tmp, check, run=run, model=keras_model, step_size=step_size,
                                         progress=progress)
            _refuse_failures(report, out, run)
        write_checksums(tmp)  # last: the card and every model file, as published
        bar.next()  # all done
    return open_model(out)


# ---------------------------------------------------------------------------------------------------------
# private: export steps


def _check_model_inputs(model, run, model_path):
    names = [t.name for t in model.inputs]
    if sorted(names) != sorted(run.inputs):
        raise DeployError(f"{model_path}: model inputs {names} are not the run's input groups {list(run.inputs)}")
    width = model.outputs[0].shape[-1]
    if width != len(run.classes):
        raise DeployError(f"{model_path}: the model has {width} outputs, the run has {len(run.classes)} classes")


def _write_onnx(model, run, path):
    """Keras → ONNX (tf2onnx through ``keras.Model.export``), then the names of docs/formats.md §6: inputs named
    after the groups with batch axis "batch", one output "probabilities". Returns the opset."""
    import logging
    import warnings

    import onnx
    import tensorflow as tf

    signature = [[tf.TensorSpec((None, *spec["shape"]), tf.float32, name=group) for group, spec in run.inputs.items()]]
    raw = path.with_name("keras-export.onnx")
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's numpy-2 shims and TensorFlow deprecations
        model.export(str(raw), format="onnx", input_signature=signature, opset_version=OPSET, verbose=False)
    graph = onnx.load(str(raw))
    raw.unlink()
    old = graph.graph.output[0].name
    for node in graph.graph.node:
        node.output[:] = [OUTPUT if name == old else name for name in node.output]
    graph.graph.output[0].name = OUTPUT
    for value in (*graph.graph.input, *graph.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_AXIS
    graph.producer_name = "deepjet-nb"
    graph.doc_string = f"{_model_name(run, model)} from deepjet-nb; see {CARD} (docs/formats.md §6)"
    onnx.helper.set_model_props(graph, {META_CLASSES: ",".join(run.classes), "card": CARD,
                                        META_INPUTS: inputs_digest(_input_description(run))})
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    return next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def _optimise(source, target):
    """Save the graph as ONNX Runtime optimises it (extended level: fusions for the CPU, no hardware-specific
    layouts), so a Predictor loads it without optimising again."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return {"onnxruntime": ort.__version__, "level": "extended"}


def _quantise(source, target):
    """Dynamic int8 quantisation of the weights of every op ONNX Runtime quantises (MatMul, Conv, LSTM, ...)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "please pre-process" hints
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def _card(run, model, model_path, files, opset, which):
    import keras
    import onnx
    import onnxruntime
    import tensorflow
    import tf2onnx

    from . import __version__
    from .flavours import class_flavours

    cfg = run.config
    flavours = class_flavours(cfg.classes) or {}
    described = _input_description(run)
    inputs = described["inputs"]
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": _model_name(run, model),
        "parameters": int(model.count_params()),
        "source": {"run": str(run.path.resolve()), "model_file": model_path.relative_to(run.path).as_posix(),
                   "model_sha256": sha256_file(model_path), "model_bytes": model_path.stat().st_size,
                   "status": run.status(), "checkpoint": run.model_choice(which)},
        "versions": {"deepjet_nb": __version__, "keras": keras.__version__, "tensorflow": tensorflow.__version__,
                     "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "opset": opset,
                     "python": platform.python_version()},
        "files": files,
        "onnx": {"inputs": [{"name": g, "shape": [None, *s["shape"]], "dtype": "float32"} for g, s in inputs.items()],
                 "output": {"name": OUTPUT, "shape": [None, len(run.classes)], "dtype": "float32",
                            "meaning": "softmax probabilities, columns in 'classes' order"}},
        "classes": list(run.classes),
        "class_definitions": {c: list(flags) for c, flags in cfg.classes.items()},
        "class_flavours": flavours,
        "discriminants": equivalence.discriminant_definitions(run.classes, flavours, cfg.ntuple),
        "tree": cfg.tree,
        "selection": cfg.selection,
        **described,
        "data_config": cfg.to_dict(),
    }


def _input_description(run) -> dict:
    """What the card says the model's inputs are (``inputs``, ``preprocessing``, ``normalisation``,
    ``data_config_hash``): written into the card, and its digest into the ONNX graph's metadata."""
    cfg = run.config
    inputs = {}
    for group in cfg.inputs:
        spec = {"shape": list(group.shape), "features": list(group.branches), "objects": group.jagged}
        if group.jagged:
            spec.update(max_length=group.max_length, sort_by=group.sort_by, descending=group.descending,
                        pad_value=group.pad_value)
        inputs[group.name] = spec
    pre = cfg.preprocessing
    return {
        "inputs": inputs,
        "preprocessing": {"clip": pre.clip, "default_values": list(pre.default_values),
                          "replace_with": pre.replace_with,
                          "rule": "x' = clip((x - mean) / std, -clip, clip); NaN, inf and default_values become "
                                  "replace_with; object lists sorted by sort_by (descending or not), then "
                                  "truncated to max_length; empty slots hold pad_value (not standardised)"},
        "normalisation": run.normalisation,
        "data_config_hash": cfg.hash,
    }


def _model_name(run, model):
    """The model's registry name from the run's training config (the Keras model's name without one)."""
    return run.model_name or model.name  # a user's builder: its function name, not the whole import path


def _refuse_failures(report, out, run):
    if not report["passed"]:
        worst = max(report["classes"], key=lambda c: report["classes"][c]["max_abs_diff"])
        raise DeployError(f"{out}: not exported: the deployed model differs from the training model {run.path} by "
                          f"max |Δp| = {report['max_abs_diff']:.3g} (class {worst}) on {report['jets']} jets of "
                          f"{', '.join(report['files'])}; the tolerance is {report['tolerance']:g}")
    int8 = report.get("int8")
    if int8 and not int8["accepted"]:
        if "beff_change" in int8:
            what, before, after, change, allowed = ("the b efficiency at 1 % light mistag", int8["beff_float32"],
                                                    int8["beff_int8"], int8["beff_change"], int8["max_beff_change"])
            counted = f"{int8['light_jets']} light jets"
        else:
            what, before, after, change, allowed = (
                f"the {int8['signal']} efficiency at 1 % {int8['background']} mistag", int8["eff_float32"],
                int8["eff_int8"], int8["eff_change"], int8["max_eff_change"])
            counted = f"{int8['background_entries']} {int8['background']} entries"
        raise DeployError(f"{out}: not exported: the int8 model changes {what} by {100 * change:+.2f} points "
                          f"({before:.4f} → {after:.4f}, {counted}); at most {100 * allowed:.1f} "
                          f"points are allowed: export without --quantize")


def _file_record(path):
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


# ---------------------------------------------------------------------------------------------------------
# command line


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb export``."""
    p = subparsers.add_parser(
        "export", help="export a trained model for production (ONNX + model card), check it against training",
        description="Export a training run's model into a model directory: model.onnx (inputs named after the "
                    "input groups, dynamic batch axis), a graph-optimised copy, model.json (everything needed "
                    "to go from DeepNTuples branches to probabilities). With --check, the training framework "
                    "and the deployed model run on the same jets; equivalence.json and equivalence.png are "
                    "written, and the export is refused (exit code 1) when they differ by more than 1e-4.")
    p.add_argument("--run", required=True, metavar="RUN", help="training run directory")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory to write (replaced whole)")
    p.add_argument("--model", default="auto", metavar="WHICH",
                   help="best, final or last (default: the best checkpoint, lowest validation loss; last/final: "
                        "the last finished epoch)")
    p.add_argument("--check", nargs="+", default=None, metavar="FILE.root",
                   help="ntuples on which training and deployed model are compared")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="also write a dynamically quantised model (needs --check; refused when the b efficiency "
                        "at 1%% light mistag changes by more than 0.5 points)")
    p.add_argument("--step-size", type=int, default=DEFAULT_STEP_SIZE, metavar="N", help="jets per chunk")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    model = export(args.run, args.out, which=args.model, check=args.check, quantize=args.quantize,
                   step_size=args.step_size, progress=not args.no_progress)
    files = model.card["files"]
    keras_bytes = model.card["source"]["model_bytes"]
    print(f"deepjet-nb export: {args.run} → {model.path}: {MODEL_ONNX} {files['float32']['bytes'] / 1e6:.2f} MB "
          f"(Keras checkpoint {keras_bytes / 1e6:.2f} MB; {describe_choice(model.card['source'].get('checkpoint', {}))})")
    report = model.equivalence
    if report:
        print(f"deepjet-nb export: equivalence on {report['jets']} jets: max |Δp| = {report['max_abs_diff']:.2e} "
              f"(tolerance {report['tolerance']:g}) → {model.file(EQUIVALENCE)}")
        if "int8" in report:
            q = report["int8"]
            if "beff_change" in q:
                print(f"deepjet-nb export: int8: b efficiency at 1 % light mistag {q['beff_float32']:.4f} → "
                      f"{q['beff_int8']:.4f} ({100 * q['beff_change']:+.2f} points)")
            else:
                print(f"deepjet-nb export: int8: {q['signal']} efficiency at 1 % {q['background']} mistag "
                      f"{q['eff_float32']:.4f} → {q['eff_int8']:.4f} ({100 * q['eff_change']:+.2f} points)")
    return 0
