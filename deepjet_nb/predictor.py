"""The exported model directory (docs/formats.md §6) and the TensorFlow-free :class:`Predictor` that runs it on
ONNX Runtime: what users and the model server import for inference. This module is the one place that names
and reads that directory (:mod:`deepjet_nb.deploy` writes it, :mod:`deepjet_nb.equivalence` adds the check)::

    MODEL_DIR/model.onnx         the network: ONNX, inputs named after the input groups, dynamic batch axis, float32
    MODEL_DIR/model.opt.onnx     the same graph after ONNX Runtime's graph optimisations, for fast start-up
    MODEL_DIR/model.int8.onnx    dynamically quantised weights (only when exported with ``quantize="int8"``)
    MODEL_DIR/model.json         the model card: everything from DeepNTuples branches to probabilities
    MODEL_DIR/equivalence.json   training vs deployed on the same jets (after a check)
    MODEL_DIR/equivalence.png    2D histograms of the b and CvsL discriminants, training vs deployed

Example::

    from deepjet_nb.predictor import Predictor
    predictor = Predictor("models/deepjet")                   # ONNX Runtime only
    probs = predictor.predict_root(["ttbar_test.root"])       # {"B": array, "BB": ..., ...}

:class:`Predictor` imports neither TensorFlow nor Keras, and importing this module loads neither the conversion
job nor ONNX Runtime: it reads ntuples through the jet transform of :func:`deepjet_nb.jets.iter_arrays` (the
code path the training data went through) with the card's data config and normalisation, and runs one ONNX
Runtime session, single-threaded by default. One Predictor may be shared by many threads:
``InferenceSession.run`` is thread-safe and the Predictor keeps no per-call state, so concurrent calls give the
results of sequential ones, each on its calling thread. :func:`latency` times it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._atomic import sha256_file, write_text_atomic
from ._jsonio import read_object
from .errors import ArgumentError, DeployError
from .jets import DEFAULT_STEP_SIZE, iter_arrays
from .progress import jet_bar
from .rootio import count_entries, input_path

__all__ = ["open_model", "ModelDirectory", "Predictor", "session_options", "latency", "MODEL_ONNX",
           "OPTIMISED_ONNX", "INT8_ONNX", "CARD", "EQUIVALENCE", "EQUIVALENCE_PLOT", "OUTPUT", "BATCH_AXIS",
           "FORMAT_VERSION", "PRECISIONS"]

MODEL_ONNX = "model.onnx"
OPTIMISED_ONNX = "model.opt.onnx"
INT8_ONNX = "model.int8.onnx"
CARD = "model.json"
# sha256 of every other file of the directory, the card included, one "<hex>  <name>" line each: the format of
# ``sha256sum``, so ``sha256sum -c SHA256SUMS`` checks a model directory without deepjet-nb.
CHECKSUMS = "SHA256SUMS"
# ONNX metadata written at export: the card's classes (in output order) and a digest of what the card says
# the inputs are (groups, shapes, normalisation, data config): a card that no longer describes the graph is
# found even when its checksum was written again.
META_CLASSES = "classes"
META_INPUTS = "deepjet_nb.inputs_sha256"
EQUIVALENCE = "equivalence.json"
EQUIVALENCE_PLOT = "equivalence.png"
FORMAT_VERSION = 1

BATCH_AXIS = "batch"
OUTPUT = "probabilities"
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


def open_model(path: str | os.PathLike, *, verify: bool = True) -> ModelDirectory:
    """Open an exported model directory. Raises :class:`DeployError` naming the directory and the missing or
    inconsistent file or key (no model card, another format version, a data config whose hash differs from
    the recorded one, a model file that is missing) and, with ``verify`` (the default; off only while
    developing), a card whose sha256 differs from the one in ``SHA256SUMS`` (edited after export)."""
    path = Path(path)
    if not path.is_dir():
        raise DeployError(f"{path}: no such exported model directory")
    card_path = path / CARD
    if verify and (path / CHECKSUMS).is_file():
        _raise_first(checksum_problems(path, only=(CARD,)))
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
    for key, record in card["files"].items():
        name = record.get("file") if isinstance(record, Mapping) else None
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise DeployError(f"{card_path}: files.{key}.file must name a file of the directory, got {name!r}")
        if not (path / name).is_file():
            raise DeployError(f"{path / record['file']}: missing (listed in {CARD}); export again")
    return model


def write_checksums(path: str | os.PathLike) -> None:
    """Write ``path/SHA256SUMS``: the sha256 of the model card and of every model file it lists (the files that
    make the predictions; reports such as ``equivalence.json`` may be rewritten later)."""
    path = Path(path)
    card = read_object(path / CARD, error=DeployError, what="model card")
    names = [CARD, *sorted(record["file"] for record in card["files"].values())]
    write_text_atomic(path / CHECKSUMS, "".join(f"{sha256_file(path / name)}  {name}\n" for name in names))


def checksum_problems(path: str | os.PathLike, *, only: Sequence[str] | None = None) -> list[str]:
    """What differs between the files of the model directory ``path`` and its ``SHA256SUMS`` (all listed files,
    or those named in ``only``): one line per file, naming it. [] when everything matches."""
    path = Path(path)
    listed = _read_checksums(path)
    problems = [] if CARD in listed else [f"{path / CHECKSUMS}: does not list {CARD}"]
    for name, expected in listed.items():
        if only is not None and name not in only:
            continue
        file = path / name
        if not file.is_file():
            problems.append(f"{file}: missing (listed in {CHECKSUMS}); export again")
        elif sha256_file(file) != expected:
            problems.append(f"{file}: its sha256 differs from the one in {CHECKSUMS} (changed after export); "
                            "export again")
    return problems


def graph_problems(card: Mapping, session, where: str | os.PathLike = CARD) -> list[str]:
    """Where the model card ``card`` does not describe the ONNX graph loaded in ``session`` (an ONNX Runtime
    session): input names and shapes (``inputs`` and ``onnx.inputs``), the output's name and width (one column
    per class), and the classes and inputs digest the graph was exported with (its metadata). One line per
    problem, naming ``where`` and the card's field; [] when the card and the graph agree."""
    graph = {i.name: [int(d) if isinstance(d, int) else None for d in i.shape[1:]] for i in session.get_inputs()}
    problems = []
    described = {"inputs": {g: list(spec["shape"]) for g, spec in card["inputs"].items()}}
    if isinstance(card.get("onnx"), Mapping):
        described["onnx.inputs"] = {i["name"]: list(i["shape"][1:]) for i in card["onnx"].get("inputs", [])}
    for field, inputs in described.items():
        if inputs != graph:
            problems.append(f"{where}: {field}: {_shapes(inputs)}, the ONNX graph takes {_shapes(graph)}")
    outputs = session.get_outputs()
    classes = list(card["classes"])
    if [o.name for o in outputs] != [OUTPUT]:
        problems.append(f"{where}: the ONNX graph's outputs are {[o.name for o in outputs]}, not [{OUTPUT!r}]")
    elif outputs[0].shape[-1] != len(classes):
        problems.append(f"{where}: classes: {len(classes)} classes, the ONNX output has {outputs[0].shape[-1]} "
                        "columns")
    metadata = session.get_modelmeta().custom_metadata_map
    if META_CLASSES in metadata and metadata[META_CLASSES].split(",") != classes:
        problems.append(f"{where}: classes: {classes}, the ONNX graph was exported with "
                        f"{metadata[META_CLASSES].split(',')} (in its output order)")
    if META_INPUTS in metadata and metadata[META_INPUTS] != inputs_digest(card):
        problems.append(f"{where}: inputs, preprocessing, normalisation or data_config_hash differ from those "
                        "the ONNX graph was exported with")
    return problems


def inputs_digest(card: Mapping) -> str:
    """sha256 of what a card says the model's inputs are: groups with shapes and features, preprocessing,
    normalisation, data config hash (canonical JSON). Written into the ONNX metadata at export."""
    part = {key: card[key] for key in ("inputs", "preprocessing", "normalisation", "data_config_hash")}
    text = json.dumps(part, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def model_problems(path: str | os.PathLike) -> list[str]:
    """Everything wrong with the exported model directory ``path``, one line each: an unreadable or
    inconsistent card, files that differ from ``SHA256SUMS`` or from the card's checksums, and each model
    file's graph against the card (:func:`graph_problems`)."""
    import onnxruntime as ort

    try:
        model = open_model(path, verify=False)
    except DeployError as err:
        return [str(err)]
    problems = checksum_problems(model.path) if model.path.joinpath(CHECKSUMS).is_file() else []
    for record in model.card["files"].values():
        file = model.file(record["file"])
        if sha256_file(file) != record["sha256"]:
            problems.append(f"{file}: its sha256 differs from the one in {CARD}; export again")
            continue
        try:
            session = ort.InferenceSession(str(file), session_options(), providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime raises its own exception types for invalid graphs
            problems.append(f"{file}: ONNX Runtime cannot load it ({type(err).__name__})")
            continue
        problems += graph_problems(model.card, session, model.path / CARD)
    return list(dict.fromkeys(problems))


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

    ``verify`` (default True; False only while developing) checks the model card against ``SHA256SUMS`` and
    against the ONNX graph (inputs, shapes, output width, the classes and inputs the graph was exported with).

    Raises :class:`DeployError` for a missing or inconsistent model directory, a model file whose checksum
    differs from the card's, or (``verify``) a card that was changed after export or does not describe the
    graph (one line naming the field); :class:`ArgumentError` for bad arguments.
    """

    def __init__(self, model_dir: str | os.PathLike, threads: int = 1, *, precision: str = "float32",
                 batch_size: int = DEFAULT_BATCH_SIZE, verify: bool = True):
        import onnxruntime as ort

        if not isinstance(threads, int) or threads < 1:
            raise ArgumentError(f"Predictor: threads must be an integer >= 1, got {threads!r}")
        if precision not in PRECISIONS:
            raise ArgumentError(f"Predictor: precision must be one of {list(PRECISIONS)}, got {precision!r}")
        if batch_size < 1:
            raise ArgumentError(f"Predictor: batch_size must be >= 1, got {batch_size}")
        self.model = model_dir if isinstance(model_dir, ModelDirectory) else open_model(model_dir, verify=verify)
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
        if verify:
            _raise_first(graph_problems(self.model.card, self.session, self.model.path / CARD))
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
        ``(n, *shape)`` (as :func:`deepjet_nb.jets.iter_arrays` or a converted dataset gives them). Returns
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
        :func:`deepjet_nb.jets.iter_arrays` gives (input groups, ``label``, ``spectators`` in the data
        config's order), ``probabilities`` float32 ``(n, n_classes)``."""
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        if not files:
            raise ArgumentError("predict_root: no input files given")
        config = self.model.config
        bar = jet_bar(progress, sum(count_entries(input_path(p), config.tree) for p in files) if progress else 0)
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
        if not isinstance(inputs, Mapping):
            raise ArgumentError(f"predict: inputs must map input groups {list(self.shapes)} to arrays, got "
                                f"{type(inputs).__name__}")
        try:
            feed = {g: np.ascontiguousarray(inputs[g], dtype=np.float32) for g in self.shapes}
        except KeyError:
            missing = next(g for g in self.shapes if g not in inputs)
            raise ArgumentError(f"predict: input group {missing!r} is missing (the model takes "
                                f"{list(self.shapes)})") from None
        except (TypeError, ValueError):
            raise ArgumentError(f"predict: input group {_not_numbers(inputs, self.shapes)!r} does not hold "
                                "numbers (float32 arrays of converted jets)") from None
        n = None
        for group, shape in self.shapes.items():
            x = feed[group]
            if x.shape[1:] != shape:
                raise ArgumentError(f"predict: input group {group!r} has shape {x.shape}, the model takes "
                                    f"(n, {', '.join(map(str, shape))})")
            if not np.isfinite(x).all():  # a pass over memory: little beside the network's work on the same jets
                _refuse_non_finite(group, x)
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
# private


def _precision_key(precision):
    return "float32" if precision == "float32" else "int8"


def _read_checksums(path: Path) -> dict[str, str]:
    """``SHA256SUMS`` of the model directory ``path``: file name → sha256 hex."""
    file = path / CHECKSUMS
    try:
        lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DeployError(f"{file}: cannot read it ({err})") from None
    listed = {}
    for number, line in enumerate(lines, 1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name or "/" in name or name in (".", ".."):
            raise DeployError(f"{file}: line {number} is not '<sha256>  <file name>'")
        listed[name] = digest
    return listed


def _not_numbers(inputs, groups):
    """The first of ``groups`` whose value in ``inputs`` does not convert to float32."""
    for group in groups:
        try:
            np.asarray(inputs[group], dtype=np.float32)
        except (TypeError, ValueError):
            return group
    return next(iter(groups))


def _refuse_non_finite(group, x):
    """Raise :class:`ArgumentError` naming the first jet of ``x`` that holds NaN or inf. Converted inputs are
    always finite; a NaN would give NaN probabilities."""
    jet = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
    raise ArgumentError(f"predict: input group {group!r}: jet {jet} holds NaN or inf (converted inputs are finite)")


def _raise_first(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problem(s): deepjet-nb verify)" if len(problems) > 1 else ""
        raise DeployError(f"{problems[0]}{more}")


def _shapes(inputs: Mapping[str, list]) -> str:
    return ", ".join(f"{name}{list(shape)}" for name, shape in sorted(inputs.items())) or "nothing"
