"""Deployment: a training run → an exported model directory (docs/formats.md §6) → a TensorFlow-free
:class:`Predictor` on ONNX Runtime. This module is the one place that names, reads and writes that directory::

    MODEL_DIR/model.onnx         the network: ONNX, inputs named after the input groups, dynamic batch axis, float32
    MODEL_DIR/model.opt.onnx     the same graph after ONNX Runtime's graph optimisations, for fast start-up
    MODEL_DIR/model.int8.onnx    dynamically quantised weights (only with ``quantize="int8"``)
    MODEL_DIR/model.json         the model card: everything from DeepNTuples branches to probabilities
    MODEL_DIR/equivalence.json   training vs deployed on the same jets (after a check)
    MODEL_DIR/equivalence.png    2D histograms of the b and CvsL discriminants, training vs deployed

For a config whose classes are not jet flavours (``schema: deepak8`` or ``events``), the card's discriminant
is P(first) / (P(first) + P(last)) (first class the signal, last the background, e.g. ``ttbarvsQCD``), and the
int8 check compares the first class's efficiency at 1 % mistag of the last instead of the b efficiency.

An export is written into a temporary directory and moved into place only when complete (and, with
``check``, only when the deployed model reproduces the training framework): a second export to the same
directory replaces it whole or not at all.

Example::

    from deepjet_nb.deploy import Predictor, export
    export("runs/deepjet", "models/deepjet", check=["ttbar_test.root"])   # needs TensorFlow
    predictor = Predictor("models/deepjet")                                 # ONNX Runtime only
    probs = predictor.predict_root(["ttbar_test.root"])                     # {"B": array, "BB": ..., ...}

Command line: ``deepjet-nb export --run RUN --out MODEL_DIR [--check FILE.root ...] [--quantize int8]``.

:class:`Predictor` imports neither TensorFlow nor Keras: it reads ntuples through the conversion of
:func:`deepjet_nb.convert.iter_arrays` (the code path the training data went through) with the card's data
config and normalisation, and runs one ONNX Runtime session, single-threaded by default. One Predictor may be
shared by many threads: ``InferenceSession.run`` is thread-safe and the Predictor keeps no per-call state, so
concurrent calls give the results of sequential ones, each on its calling thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._atomic import atomic_path, sha256_file
from ._lock import output_lock
from ._jsonio import read_object, write_json
from .convert import DEFAULT_STEP_SIZE
from .errors import ArgumentError, DeployError

__all__ = ["export", "check", "open_model", "ModelDirectory", "Predictor", "latency", "register_cli",
           "MODEL_ONNX", "OPTIMISED_ONNX", "INT8_ONNX", "CARD", "EQUIVALENCE", "EQUIVALENCE_PLOT",
           "OUTPUT", "TOLERANCE", "INT8_MAX_BEFF_CHANGE"]

MODEL_ONNX = "model.onnx"
OPTIMISED_ONNX = "model.opt.onnx"
INT8_ONNX = "model.int8.onnx"
CARD = "model.json"
EQUIVALENCE = "equivalence.json"
EQUIVALENCE_PLOT = "equivalence.png"
FORMAT_VERSION = 1

BATCH_AXIS = "batch"
OUTPUT = "probabilities"
OPSET = 15  # ONNX Runtime >= 1.10 and the CMSSW ONNX Runtime interface run it
TOLERANCE = 1e-4  # largest |Δp| between training and deployed model that passes the check
DIFF_LEVEL = 1e-5  # the report counts the jets whose largest |Δp| exceeds this
INT8_MISTAG = 0.01  # b efficiency compared at 1 % light mistag (CMS medium working point)
INT8_MAX_BEFF_CHANGE = 0.005  # 0.5 points absolute: a larger change refuses the int8 model
PRECISIONS = ("float32", "int8")
DEFAULT_BATCH_SIZE = 1024  # jets per session run: bounds the memory of the intermediate tensors


# ---------------------------------------------------------------------------------------------------------
# the exported model directory


@dataclass(frozen=True)
class ModelDirectory:
    """An exported model directory, validated: ``path`` and its model card ``card`` (a dict, docs/formats.md §6).

    Use :func:`open_model`. ``classes``, ``inputs`` (group → {"shape", "features", ...}), ``config`` (the data
    config), ``normalisation`` and ``equivalence`` (the report, or None) come from the files.
    """

    path: Path
    card: dict

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    @property
    def inputs(self) -> dict[str, dict]:
        return dict(self.card["inputs"])

    @property
    def normalisation(self) -> dict:
        return self.card["normalisation"]

    @functools.cached_property
    def config(self):
        """The data config of the training dataset (:class:`~deepjet_nb.config.DataConfig`), validated once."""
        from .config import config_from_dict

        return config_from_dict(self.card["data_config"], source=str(self.path / CARD))

    @property
    def class_flavours(self) -> dict[str, str]:
        return dict(self.card["class_flavours"])

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, precision: str) -> bool:
        """Whether the directory holds the model of ``precision`` ("float32" always, "int8" when quantised)."""
        return _precision_key(precision) in self.card["files"]

    @property
    def equivalence(self) -> dict | None:
        path = self.file(EQUIVALENCE)
        return read_object(path, error=DeployError, what="equivalence report") if path.is_file() else None

    def __repr__(self):
        return f"<ModelDirectory {str(self.path)!r}: {self.card.get('model')}, classes {self.classes}>"


def open_model(path: str | os.PathLike) -> ModelDirectory:
    """Open an exported model directory. Raises :class:`DeployError` naming the directory and the missing or
    inconsistent file or key (no model card, another format version, a data config whose hash differs from
    the recorded one, a model file that is missing)."""
    path = Path(path)
    if not path.is_dir():
        raise DeployError(f"{path}: no such exported model directory")
    card_path = path / CARD
    card = read_object(card_path, error=DeployError, what=f"model card (is {path} an exported model?)")
    if card.get("format_version") != FORMAT_VERSION:
        raise DeployError(f"{card_path}: format_version {card.get('format_version')!r}, this reader knows "
                          f"{FORMAT_VERSION}")
    for key in ("classes", "inputs", "normalisation", "data_config", "data_config_hash", "files", "class_flavours"):
        if key not in card:
            raise DeployError(f"{card_path}: missing key {key!r}")
    model = ModelDirectory(path, card)
    if model.config.hash != card["data_config_hash"]:
        raise DeployError(f"{card_path}: data_config does not match data_config_hash (edited by hand?)")
    for record in card["files"].values():
        if not (path / record["file"]).is_file():
            raise DeployError(f"{path / record['file']}: missing (listed in {CARD}); export again")
    return model


# ---------------------------------------------------------------------------------------------------------
# export (needs TensorFlow and tf2onnx; everything below the Predictor does not)


def export(run_dir, out: str | os.PathLike, *, which: str = "auto", check: Sequence[str | os.PathLike] | None = None,
           quantize: str | None = None, step_size: int = DEFAULT_STEP_SIZE, progress: bool = True) -> ModelDirectory:
    """Export the model of a training run into the model directory ``out``; returns it opened.

    Inputs: ``run_dir`` a run directory (or :class:`~deepjet_nb.run.Run`); ``which`` its model file ("auto" =
    final, else best; "final", "best", "last"); ``check`` ROOT ntuples on which the training framework
    (Keras, as ``deepjet-nb predict`` runs it) and the deployed model (:meth:`Predictor.predict_root`) are
    compared (:func:`check`); ``quantize="int8"`` adds a dynamically quantised model, which needs ``check``
    files to measure its b efficiency.

    Nothing is published unless every step succeeds: raises :class:`DeployError` when the deployed model
    differs from the training model by more than :data:`TOLERANCE` on a check jet, when the int8 model changes
    the b efficiency at 1 % light mistag by more than :data:`INT8_MAX_BEFF_CHANGE`, or when ``out`` exists and
    is not an exported model directory; :class:`RunError` for the run; :class:`InputFileError` for a check file;
    :class:`ArgumentError` for bad arguments. ``out`` is then left as it was.
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
    bar = _StepBar(progress, steps)
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
        write_json(tmp / CARD, _card(run, keras_model, model_path, files, opset))
        if check:
            bar.next()
            report = _check(tmp, check, run=run, model=keras_model, step_size=step_size, progress=progress)
            _refuse_failures(report, out, run)
        bar.next()  # all done
    return open_model(out)


def check(model_dir: str | os.PathLike, files: Sequence[str | os.PathLike], *, run_dir=None,
          step_size: int = DEFAULT_STEP_SIZE, progress: bool = True) -> dict:
    """Compare an exported model with the training framework on the jets of ``files`` (ROOT ntuples) and write
    ``equivalence.json`` and ``equivalence.png`` into ``model_dir``; returns the report (docs/formats.md §6).

    ``run_dir`` is the training run (default: the run recorded in the model card); its model file must be the
    one exported (same sha256). The report says whether the check ``passed`` (``max_abs_diff`` <=
    :data:`TOLERANCE`); this function does not raise on a failed check (:func:`export` does). Needs
    TensorFlow (the training side is Keras).
    """
    from .run import open_run

    model = open_model(model_dir)
    source = model.card["source"]
    run = open_run(run_dir if run_dir is not None else source["run"])
    model_path = run.model_path(source["model_file"])
    if sha256_file(model_path) != source["model_sha256"]:
        raise DeployError(f"{model_path}: not the model exported to {model.path} (its sha256 differs): export again")
    return _check(model.path, [Path(p) for p in files], run=run, model=run.load_model(source["model_file"]),
                  step_size=step_size, progress=progress)


def _check(model_dir, files, *, run, model, step_size, progress) -> dict:
    """:func:`check` with the run opened and its Keras ``model`` loaded (shared with :func:`export`)."""
    from .predict import predict

    if not files:
        raise ArgumentError("check: no ROOT files given")
    for path in files:
        if Path(path).is_dir():
            raise ArgumentError(f"{path}: the check needs ROOT ntuples (the deployed side converts them), "
                                f"not a converted dataset")
    predictor = Predictor(model_dir)
    with tempfile.TemporaryDirectory(prefix="deepjet-nb-check-") as scratch:
        training_file = predict(run, files, Path(scratch) / "training.root", model=model, step_size=step_size,
                                progress=progress)
        training = _read_training(training_file, predictor.classes, predictor.model.config)
    quantised = Predictor(model_dir, precision="int8") if predictor.model.has("int8") else None
    deployed, int8 = _collect(predictor.iter_root(files, step_size=step_size, progress=progress), predictor,
                              quantised)
    report = _report(predictor, files, training, deployed, int8)
    write_json(Path(model_dir) / EQUIVALENCE, report)
    _equivalence_plot(predictor, training, deployed, report).savefig(Path(model_dir) / EQUIVALENCE_PLOT,
                                                                     formats=("png",))
    return report


# ---------------------------------------------------------------------------------------------------------
# the predictor (ONNX Runtime only)


class Predictor:
    """Class probabilities from an exported model directory, on ONNX Runtime, without TensorFlow.

    ``threads`` intra-op threads of the one session (default 1: inter-op 1, sequential execution, no thread
    pool started: the calling thread does the work, as a CMSSW module wants); ``precision`` "float32" (the
    graph-optimised model when it was written by this ONNX Runtime version, else ``model.onnx``) or "int8"
    (the quantised model, when exported); ``batch_size`` jets per session run in :meth:`predict`.

    Thread safety: one Predictor may be shared by any number of threads. The session's graph and weights are
    in memory once; each concurrent call gets its own intermediate buffers and runs on its caller's thread.

    Raises :class:`DeployError` for a missing or inconsistent model directory or a model file whose checksum
    differs from the card's; :class:`ArgumentError` for bad arguments.
    """

    def __init__(self, model_dir: str | os.PathLike, threads: int = 1, *, precision: str = "float32",
                 batch_size: int = DEFAULT_BATCH_SIZE):
        import onnxruntime as ort

        if not isinstance(threads, int) or threads < 1:
            raise ArgumentError(f"Predictor: threads must be an integer >= 1, got {threads!r}")
        if precision not in PRECISIONS:
            raise ArgumentError(f"Predictor: precision must be one of {list(PRECISIONS)}, got {precision!r}")
        if batch_size < 1:
            raise ArgumentError(f"Predictor: batch_size must be >= 1, got {batch_size}")
        self.model = model_dir if isinstance(model_dir, ModelDirectory) else open_model(model_dir)
        if not self.model.has(precision):
            raise DeployError(f"{self.model.path}: no {precision} model (export with --quantize int8)")
        self.precision = precision
        self.threads = threads
        self.batch_size = int(batch_size)
        self.path, optimised = self._model_file(ort.__version__)
        options = session_options(threads, optimised=optimised)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime raises its own exception types for invalid graphs
            raise DeployError(f"{self.path}: ONNX Runtime cannot load it ({type(err).__name__}: {err})") from None
        self.classes = self.model.classes
        self.shapes = {g: tuple(spec["shape"]) for g, spec in self.model.inputs.items()}

    def _model_file(self, ort_version):
        files = self.model.card["files"]
        key = _precision_key(self.precision)
        optimised = files.get("optimised")
        if key == "float32" and optimised and optimised.get("onnxruntime") == ort_version:
            key = "optimised"  # optimised by this very version: loads without optimising again
        path = self.model.file(files[key]["file"])
        if sha256_file(path) != files[key]["sha256"]:
            raise DeployError(f"{path}: its sha256 differs from the one in {CARD} (changed or corrupt); export again")
        return path, key == "optimised"

    # -- converted arrays -------------------------------------------------------------------------------

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Probabilities of converted jets: ``inputs`` maps every input group to a float32 array
        ``(n, *shape)`` (as :func:`deepjet_nb.convert.iter_arrays` or a converted dataset gives them). Returns
        class name → float32 (n,) in class order. Raises :class:`ArgumentError` naming a missing, unknown or
        mis-shaped group."""
        return self._as_dict(self.predict_array(inputs))

    def predict_array(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """As :meth:`predict`, as one float32 array ``(n, n_classes)`` (columns in ``classes`` order)."""
        feed = self._feed(inputs)
        n = len(next(iter(feed.values())))
        if n <= self.batch_size:
            return self.session.run([OUTPUT], feed)[0]
        parts = [self.session.run([OUTPUT], {g: x[start:start + self.batch_size] for g, x in feed.items()})[0]
                 for start in range(0, n, self.batch_size)]
        return np.concatenate(parts)

    # -- ROOT ntuples -----------------------------------------------------------------------------------

    def predict_root(self, files: Sequence[str | os.PathLike], *, step_size: int = DEFAULT_STEP_SIZE,
                     progress: bool = True) -> dict[str, np.ndarray]:
        """Probabilities straight from DeepNTuples files: class name → float32 (n,), for the jets that the
        conversion keeps (in a class and passing the data config's selection), in file order: the jets and
        order of ``deepjet-nb predict``. Memory is bounded by ``step_size`` jets per chunk. Raises
        :class:`InputFileError` naming the file, tree or branch at fault."""
        parts = [probs for _, probs in self.iter_root(files, step_size=step_size, progress=progress)]
        if not parts:
            return self._as_dict(np.zeros((0, len(self.classes)), np.float32))
        return self._as_dict(np.concatenate(parts))

    def iter_root(self, files, *, step_size: int = DEFAULT_STEP_SIZE, progress: bool = False):
        """Yield ``(chunk, probabilities)`` per chunk of each file: ``chunk`` is what
        :func:`deepjet_nb.convert.iter_arrays` gives (input groups, ``label``, ``spectators`` in the data
        config's order), ``probabilities`` float32 ``(n, n_classes)``."""
        from .convert import iter_arrays

        if isinstance(files, (str, os.PathLike)):
            files = [files]
        if not files:
            raise ArgumentError("predict_root: no input files given")
        config = self.model.config
        bar = _jet_bar(progress, files, config.tree)
        try:
            for path in files:
                for chunk in iter_arrays(path, config, self.model.normalisation, step_size=step_size):
                    probs = (self.predict_array(chunk) if len(chunk["label"])
                             else np.zeros((0, len(self.classes)), np.float32))
                    bar.update(len(probs))
                    yield chunk, probs
        finally:
            bar.close()

    # -- internals --------------------------------------------------------------------------------------

    def _feed(self, inputs):
        # The hot path of a batch-1 call: one pass, checks that cost no more than a comparison per group.
        try:
            feed = {g: np.ascontiguousarray(inputs[g], dtype=np.float32) for g in self.shapes}
        except KeyError:
            missing = next(g for g in self.shapes if g not in inputs)
            raise ArgumentError(f"predict: input group {missing!r} is missing (the model takes "
                                f"{list(self.shapes)})") from None
        except TypeError:
            raise ArgumentError(f"predict: inputs must map input groups {list(self.shapes)} to arrays, got "
                                f"{type(inputs).__name__}") from None
        n = None
        for group, shape in self.shapes.items():
            x = feed[group]
            if x.shape[1:] != shape:
                raise ArgumentError(f"predict: input group {group!r} has shape {x.shape}, the model takes "
                                    f"(n, {', '.join(map(str, shape))})")
            if n is None:
                n, first = len(x), group
            elif len(x) != n:
                raise ArgumentError(f"predict: input group {group!r} has {len(x)} jets, {first!r} has {n}")
        return feed

    def _as_dict(self, probs):
        return dict(zip(self.classes, np.ascontiguousarray(probs.T)))

    def __repr__(self):
        return f"<Predictor {str(self.path)!r}: {self.precision}, {self.threads} thread(s), classes {self.classes}>"


def session_options(threads: int = 1, *, optimised: bool = False):
    """ONNX Runtime session options of the Predictor: ``threads`` intra-op threads, one inter-op thread,
    sequential execution, no spinning worker threads; graph optimisations off for a model already optimised
    (``optimised``), else all of them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if optimised
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    # Worker threads (threads > 1) sleep between runs instead of spinning on a core the process shares.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return options


# ---------------------------------------------------------------------------------------------------------
# latency


def latency(predictor: Predictor, batch_sizes: Sequence[int] = (1, 256), *, keras_model=None, repeats: int = 5,
            min_time: float = 0.1, seed: int = 0) -> dict[int, dict[str, float]]:
    """Milliseconds per call of the Predictor, of a bare ONNX Runtime session (``model.onnx``, one intra-op
    and one inter-op thread, nothing else set) and, given ``keras_model``, of Keras (a ``tf.function`` of the
    model, one thread) on the same random inputs; for each batch size, the best of ``repeats`` timings of at
    least ``min_time`` seconds, the ways interleaved (the machine is shared). Returns ``{batch: {"predictor_ms",
    "bare_ort_ms"[, "keras_ms"]}}``; per jet is ms / batch."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    bare = ort.InferenceSession(str(predictor.model.file(MODEL_ONNX)), options, providers=["CPUExecutionProvider"])
    keras_call = _keras_call(keras_model) if keras_model is not None else None
    rng = np.random.default_rng(seed)
    table = {}
    for batch in batch_sizes:
        x = {g: rng.normal(size=(batch, *shape)).astype(np.float32) for g, shape in predictor.shapes.items()}
        ways = {"predictor_ms": lambda: predictor.predict(x), "bare_ort_ms": lambda: bare.run(None, x)}
        if keras_call is not None:
            ways["keras_ms"] = keras_call(x)
        best = {name: float("inf") for name in ways}
        for fn in ways.values():
            fn()  # warm-up: first-run allocations, tracing
        for _ in range(repeats):
            for name, fn in ways.items():
                best[name] = min(best[name], _time_per_call(fn, min_time))
        table[int(batch)] = {name: round(1e3 * t, 4) for name, t in best.items()}
    return table


def _time_per_call(fn, min_time):
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / number
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9)) + 1)


def _keras_call(model):
    """A factory: inputs → zero-argument function running ``model`` as a compiled ``tf.function``, one thread."""
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already set once TensorFlow has run something
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def bind(x):
        tensors = {g: tf.constant(v) for g, v in x.items()}
        return lambda: forward(tensors).numpy()

    return bind


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
    onnx.helper.set_model_props(graph, {"classes": ",".join(run.classes), "card": CARD})
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


def _card(run, model, model_path, files, opset):
    import keras
    import onnx
    import onnxruntime
    import tensorflow
    import tf2onnx

    from . import __version__
    from .flavours import class_flavours

    cfg = run.config
    flavours = class_flavours(cfg.classes) or {}
    inputs = {}
    for group in cfg.inputs:
        spec = {"shape": list(group.shape), "features": list(group.branches), "objects": group.jagged}
        if group.jagged:
            spec.update(max_length=group.max_length, sort_by=group.sort_by, descending=group.descending,
                        pad_value=group.pad_value)
        inputs[group.name] = spec
    pre = cfg.preprocessing
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": _model_name(run, model),
        "parameters": int(model.count_params()),
        "source": {"run": str(run.path.resolve()), "model_file": model_path.relative_to(run.path).as_posix(),
                   "model_sha256": sha256_file(model_path), "model_bytes": model_path.stat().st_size,
                   "status": run.status()},
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
        "discriminants": _discriminant_definitions(run.classes, flavours, cfg.ntuple),
        "tree": cfg.tree,
        "selection": cfg.selection,
        "inputs": inputs,
        "preprocessing": {"clip": pre.clip, "default_values": list(pre.default_values),
                          "replace_with": pre.replace_with,
                          "rule": "x' = clip((x - mean) / std, -clip, clip); NaN, inf and default_values become "
                                  "replace_with; object lists sorted by sort_by (descending or not), then "
                                  "truncated to max_length; empty slots hold pad_value (not standardised)"},
        "normalisation": run.normalisation,
        "data_config": cfg.to_dict(),
        "data_config_hash": cfg.hash,
    }


def _model_name(run, model):
    """The model's registry name from the run's training config (the Keras model's name without one)."""
    return (run.train_config().get("model") if run.exists else None) or model.name


def _discriminant_definitions(classes, flavours, ntuple=None):
    if not _by_flavour(ntuple):
        name, (first, last) = _first_vs_last_name(classes), (classes[0], classes[-1])
        return {name: f"P({first}) / (P({first}) + P({last}))"}
    mapping = {c: flavours.get(c) for c in classes}
    from .flavours import CLASS_FLAVOURS

    mapping = {c: f or CLASS_FLAVOURS.get(c) for c, f in mapping.items()}

    def total(flavour):
        return " + ".join(f"P({c})" for c in classes if mapping[c] == flavour) or "0"

    b, c, light = total("b"), total("c"), total("udsg")
    return {"b": b, "CvsL": f"({c}) / ({c} + {light})", "CvsB": f"({c}) / ({c} + {b})"}


def _refuse_failures(report, out, run):
    if not report["passed"]:
        worst = max(report["classes"], key=lambda c: report["classes"][c]["max_abs_diff"])
        raise DeployError(f"{out}: not exported: the deployed model differs from the training model {run.path} by "
                          f"max |Δp| = {report['max_abs_diff']:.3g} (class {worst}) on {report['jets']} jets of "
                          f"{', '.join(report['files'])}; the tolerance is {TOLERANCE:g}")
    int8 = report.get("int8")
    if int8 and not int8["accepted"]:
        if "beff_change" in int8:
            what, before, after, change = ("the b efficiency at 1 % light mistag", int8["beff_float32"],
                                           int8["beff_int8"], int8["beff_change"])
            counted = f"{int8['light_jets']} light jets"
        else:
            what, before, after, change = (f"the {int8['signal']} efficiency at 1 % {int8['background']} mistag",
                                           int8["eff_float32"], int8["eff_int8"], int8["eff_change"])
            counted = f"{int8['background_entries']} {int8['background']} entries"
        raise DeployError(f"{out}: not exported: the int8 model changes {what} by {100 * change:+.2f} points "
                          f"({before:.4f} → {after:.4f}, {counted}); at most {100 * INT8_MAX_BEFF_CHANGE:.1f} "
                          f"points are allowed: export without --quantize")


# ---------------------------------------------------------------------------------------------------------
# private: the equivalence report


def _read_training(path, classes, config):
    """Probabilities of the training framework's prediction file, with the kinematic spectators that identify
    the entries (:func:`_kinematics`)."""
    from .predict import PROB_PREFIX, TREE
    from .rootio import open_tree

    names = [f"{PROB_PREFIX}{c}" for c in classes]
    kinematics = _kinematics(config)
    with open_tree(path, TREE, names + kinematics) as tree:
        arrays = tree.arrays(names + kinematics, library="np")
    return {"probs": np.stack([arrays[n] for n in names], axis=1).astype(np.float32),
            **{key: arrays[name] for key, name in zip(("pt", "eta"), kinematics)}}


def _kinematics(config) -> list[str]:
    """The pT and η branches of the config's schema (``jet_pt``, ``jet_eta`` for DeepNTuples; ``fj_pt``,
    ``fj_eta``; ``jetPt_0``, ``jetEta_0`` for events) that are among its spectators: the check matches the
    entries of both sides on them."""
    ntuple = config.ntuple
    return [b for b in (ntuple.pt_branch, ntuple.eta_branch) if b in config.spectators]


def _collect(chunks, predictor, quantised=None):
    """Concatenate ``iter_root`` chunks: probabilities, pT and η (:func:`_kinematics`), the truth: the flavour
    of each jet from the raw flags for a DeepNTuples config, else the class index of each entry; with a
    ``quantised`` Predictor, its probabilities on the same converted chunks too (else None)."""
    from .flavours import FLAVOUR_GROUPS, truth_flavour

    config = predictor.model.config
    names = list(config.spectators)
    empty = np.zeros((0, len(predictor.classes)), np.float32)
    probs, spectators, labels, probs_int8 = [empty], [np.zeros((0, len(names)), np.float32)], [], [empty]
    for chunk, p in chunks:
        probs.append(p)
        spectators.append(chunk["spectators"])
        labels.append(np.asarray(chunk["label"], dtype=np.int64))
        if quantised is not None and len(p):
            probs_int8.append(quantised.predict_array(chunk))
    spectators = np.concatenate(spectators)
    column = {n: spectators[:, i] for i, n in enumerate(names)}
    deployed = {"probs": np.concatenate(probs),
                **{key: column[name] for key, name in zip(("pt", "eta"), _kinematics(config))}}
    if _by_flavour(config.ntuple):
        flags = [f for group in FLAVOUR_GROUPS.values() for f in group]
        deployed["flavour"] = truth_flavour({f: column[f] for f in flags}, source="check jets")
    else:
        deployed["label"] = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    return deployed, ({"probs": np.concatenate(probs_int8)} if quantised is not None else None)


def _report(predictor, files, training, deployed, int8):
    same = all(np.array_equal(training[key], deployed[key]) for key in ("pt", "eta") if key in deployed)
    if len(training["probs"]) != len(deployed["probs"]) or not same:
        raise DeployError(f"{predictor.model.path}: the deployed conversion kept {len(deployed['probs'])} jets, "
                          f"the training framework {len(training['probs'])}, or another order: not the same jets")
    n = len(deployed["probs"])
    if n == 0:
        raise DeployError(f"{', '.join(map(str, files))}: no jet passes the selection: nothing to compare")
    diff = np.abs(deployed["probs"].astype(np.float64) - training["probs"].astype(np.float64))
    classes = predictor.classes
    per_jet = diff.max(axis=1)
    disc_train = _discriminants(training["probs"], predictor)
    disc_deployed = _discriminants(deployed["probs"], predictor)
    report = {
        "jets": n,
        "files": [Path(p).name for p in files],
        "max_abs_diff": float(diff.max()),
        "tolerance": TOLERANCE,
        "passed": bool(diff.max() <= TOLERANCE),
        "fraction_above_1e-5": float(np.mean(per_jet > DIFF_LEVEL)),
        "classes": {c: {"max_abs_diff": float(diff[:, i].max()), "median_abs_diff": float(np.median(diff[:, i]))}
                    for i, c in enumerate(classes)},
        "discriminants": {d: {"max_abs_diff": float(np.max(np.abs(disc_deployed[d] - disc_train[d]))),
                              "median_abs_diff": float(np.median(np.abs(disc_deployed[d] - disc_train[d])))}
                          for d in disc_train},
        "training": "Keras model of the run through deepjet-nb predict",
        "deployed": f"Predictor ({predictor.path.name}, onnxruntime, {predictor.threads} thread) from the ntuples",
    }
    if int8 is not None:
        report["int8"] = _int8_report(predictor, files, deployed, int8)
    return report


def _int8_report(predictor, files, deployed, int8):
    """b efficiency at :data:`INT8_MISTAG` light mistag of the float32 and int8 models on the same jets (for
    classes that are not flavours: the first class's efficiency at that mistag of the last class)."""
    if "flavour" not in deployed:
        return _int8_report_first_vs_last(predictor, files, deployed, int8)
    from .evaluate import Tagger, roc
    from .flavours import FLAVOUR_CODES

    flavour = deployed["flavour"]
    beff = {}
    for name, probs in (("float32", deployed["probs"]), ("int8", int8["probs"])):
        tagger = Tagger(name, _discriminants(probs, predictor), flavour, deployed["pt"], deployed["eta"])
        try:
            beff[name] = float(roc(tagger, "b_vs_udsg").eff_at(INT8_MISTAG))
        except ArgumentError as err:
            raise DeployError(f"{', '.join(map(str, files))}: cannot measure the int8 b efficiency: {err}") from None
    change = beff["int8"] - beff["float32"]
    return {
        "file": INT8_ONNX,
        "max_abs_diff": float(np.abs(int8["probs"] - deployed["probs"]).max()),
        "beff_float32": beff["float32"], "beff_int8": beff["int8"], "beff_change": change,
        "mistag": INT8_MISTAG, "max_beff_change": INT8_MAX_BEFF_CHANGE,
        "accepted": bool(abs(change) <= INT8_MAX_BEFF_CHANGE),
        "b_jets": int(np.count_nonzero(flavour == FLAVOUR_CODES["b"])),
        "light_jets": int(np.count_nonzero(flavour == FLAVOUR_CODES["udsg"])),
    }


def _int8_report_first_vs_last(predictor, files, deployed, int8):
    """:func:`_int8_report` for classes that are not jet flavours (fat jets, events): efficiency of the first
    class (signal) at :data:`INT8_MISTAG` of the last (background) on P(first) / (P(first) + P(last))."""
    from .kernels.roc import eff_at_mistag, roc_curve

    classes, label = predictor.classes, deployed["label"]
    signal, background = classes[0], classes[-1]
    use = (label == 0) | (label == len(classes) - 1)
    is_signal = label[use] == 0
    n_signal, n_background = int(np.count_nonzero(is_signal)), int(np.count_nonzero(~is_signal))
    if not n_signal or not n_background:
        raise DeployError(f"{', '.join(map(str, files))}: cannot measure the int8 {signal} efficiency: the check "
                          f"entries hold {n_signal} {signal} and {n_background} {background} entries; both are "
                          f"needed")
    (name,) = _discriminant_definitions(classes, {}, predictor.model.config.ntuple)
    eff = {}
    for precision, probs in (("float32", deployed["probs"]), ("int8", int8["probs"])):
        sig_eff, bkg_eff, _ = roc_curve(_discriminants(probs, predictor)[name][use], is_signal)
        eff[precision] = float(eff_at_mistag(sig_eff, bkg_eff, INT8_MISTAG))
    change = eff["int8"] - eff["float32"]
    return {
        "file": INT8_ONNX,
        "max_abs_diff": float(np.abs(int8["probs"] - deployed["probs"]).max()),
        "discriminant": name, "signal": signal, "background": background,
        "eff_float32": eff["float32"], "eff_int8": eff["int8"], "eff_change": change,
        "mistag": INT8_MISTAG, "max_eff_change": INT8_MAX_BEFF_CHANGE,
        "accepted": bool(abs(change) <= INT8_MAX_BEFF_CHANGE),
        "signal_entries": n_signal, "background_entries": n_background,
    }


def _by_flavour(ntuple) -> bool:
    """Whether the classes of a config of schema ``ntuple`` are jet flavours (DeepNTuples; None: an older card,
    of DeepNTuples too) rather than fat-jet or event classes."""
    from .schema import DEEPNTUPLES

    return ntuple is None or ntuple.name == DEEPNTUPLES.name


def _first_vs_last_name(classes) -> str:
    """Name of the first-vs-last discriminant of classes that are not flavours, e.g. ``TopvsQCD``."""
    return f"{classes[0]}vs{classes[-1]}"


def _discriminants(probs, predictor):
    """The card's discriminants of probabilities ``probs`` (n, n_classes): b, CvsL, CvsB for flavour classes
    (:func:`deepjet_nb.flavours.discriminants`), else P(first) / (P(first) + P(last)), 0 where both are 0."""
    from .flavours import discriminants

    classes = predictor.classes
    if not _by_flavour(predictor.model.config.ntuple):
        first, last = probs[:, 0].astype(np.float64), probs[:, len(classes) - 1].astype(np.float64)
        total = first + last
        return {_first_vs_last_name(classes): np.divide(first, total, out=np.zeros_like(first), where=total > 0)}
    return discriminants({c: probs[:, i] for i, c in enumerate(classes)},
                         predictor.model.class_flavours or None)


def _equivalence_plot(predictor, training, deployed, report):
    from .plots import EquivalencePlot

    plot = EquivalencePlot(title=f"{predictor.model.card.get('model')}, {report['jets']} "
                                 f"{'jets' if _by_flavour(predictor.model.config.ntuple) else 'entries'}")
    train, dep = _discriminants(training["probs"], predictor), _discriminants(deployed["probs"], predictor)
    for name in (("b", "CvsL") if "b" in train else tuple(train)):
        plot.add(name, train[name], dep[name])
    return plot


# ---------------------------------------------------------------------------------------------------------
# private: small helpers


def _precision_key(precision):
    return "float32" if precision == "float32" else "int8"


def _file_record(path):
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


class _StepBar:
    """A progress bar over named steps (none when not ``enabled``): ``next()`` starts the next step."""

    def __init__(self, enabled, steps):
        self.steps = list(steps)
        self.done = -1
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(self.steps), desc="export", unit="step")

    def next(self):
        self.done += 1
        if self.bar is not None:
            self.bar.update(1 if self.done > 0 else 0)
            if self.done < len(self.steps):
                self.bar.set_postfix_str(self.steps[self.done])

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _jet_bar(enabled, files, tree):
    """The jet progress bar of ``deepjet-nb predict`` (a no-op when not ``enabled``)."""
    from .predict import _progress, _root_entries

    return _progress(enabled, sum(_root_entries(Path(p), tree) for p in files) if enabled else 0)


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
                   help="final, best or last (default: the final model, else the best checkpoint)")
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
          f"(Keras checkpoint {keras_bytes / 1e6:.2f} MB)")
    report = model.equivalence
    if report:
        print(f"deepjet-nb export: equivalence on {report['jets']} jets: max |Δp| = {report['max_abs_diff']:.2e} "
              f"(tolerance {TOLERANCE:g}) → {model.file(EQUIVALENCE)}")
        if "int8" in report:
            q = report["int8"]
            if "beff_change" in q:
                print(f"deepjet-nb export: int8: b efficiency at 1 % light mistag {q['beff_float32']:.4f} → "
                      f"{q['beff_int8']:.4f} ({100 * q['beff_change']:+.2f} points)")
            else:
                print(f"deepjet-nb export: int8: {q['signal']} efficiency at 1 % {q['background']} mistag "
                      f"{q['eff_float32']:.4f} → {q['eff_int8']:.4f} ({100 * q['eff_change']:+.2f} points)")
    return 0
