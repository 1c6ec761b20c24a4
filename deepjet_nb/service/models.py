"""The served models: a folder of model directories, what each takes, and requests turned into its inputs.

This module knows no HTTP and no MLServer; the runtime and the server call it. A served folder ``DIR`` holds
one subdirectory per model, named after the model (``[A-Za-z0-9._-]{1,64}``, not starting with a dot):

    DIR/<name>/model.json ...       an exported model directory (docs/formats.md §6): converted inputs, or
                                    raw DeepNTuples branches converted here with the card's config
    DIR/<name>/model.onnx           a bare ONNX model uploaded as TFaaS took them, with
    DIR/<name>/params.json          its parameters (TFaaS's params.json) and
    DIR/<name>/labels.txt           its class names, one a line: converted inputs only

Names starting with a dot are scratch space of :mod:`~deepjet_nb.service.uploads` (uploads being checked,
replaced models being removed) and are never served. A model card may only name files inside its own
directory (:func:`check_card_files`).

Feature keys (TFaaS's ``keys``): a converted input is named ``<group>.<feature>`` for a vector of scalars
(``global.jet_pt``) and ``<group>[<i>].<feature>`` for object ``i`` of an object list (``cpf[0].Cpfcan_ptrel``);
a raw jet is given by its branch names (``jet_pt``, ``Cpfcan_ptrel``: a number, or a list of numbers per jet).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import orjson

from ..predictor import CARD, MODEL_ONNX, OUTPUT, Predictor, session_options
from ..errors import DeepJetError, ServiceError
from .tensors import RequestError, Tensor, require_finite, tensor_from_json, tensor_from_raw

__all__ = ["NAME_PATTERN", "RequestError", "ServedModel", "open_served", "list_models", "check_name",
           "check_card_files", "inside", "arrays_from_keys", "arrays_from_tensors", "arrays_from_jets",
           "PARAMS", "LABELS", "JETS_INPUT"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
PARAMS = "params.json"
LABELS = "labels.txt"
JETS_INPUT = "jets"  # the OIP input of raw jets: BYTES, one JSON object (branch -> value or list) per jet


# ---------------------------------------------------------------------------------------------------------
# one served model


@dataclass
class ServedModel:
    """A model ready to predict: ``name``, ``path``, ``classes``, ``shapes`` (input → shape without the batch
    axis), ``features`` (input → feature names, in order), ``predictor`` (the deploy Predictor of an exported
    directory, None for a bare ONNX model) and ``run`` (converted inputs → float32 ``(n, n_classes)``)."""

    name: str
    path: Path
    classes: list[str]
    shapes: dict[str, tuple[int, ...]]
    features: dict[str, list[str]]
    kind: str  # "exported" or "onnx"
    predictor: Predictor | None = None
    session: object = None  # the ONNX Runtime session of a bare model
    output: str = OUTPUT

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.predictor is not None:
            return self.predictor.predict_array(feed)
        return self.session.run([self.output], dict(feed))[0]

    @property
    def raw_branches(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(scalar, jagged) raw branches a jet needs; empty for a bare ONNX model (no card, no conversion)."""
        if self.predictor is None:
            return (), ()
        from ..jets import input_branches

        return input_branches(self.predictor.model.config)

    @property
    def keys(self) -> list[str]:
        """Every converted feature key in model order (TFaaS's ``keys``)."""
        return list(self._key_index)

    @property
    def _key_index(self) -> dict[str, int]:
        index = self.__dict__.get("_keys")
        if index is None:
            names = []
            for group, shape in self.shapes.items():
                feats = self.features[group]
                if len(shape) == 1:
                    names += [f"{group}.{f}" for f in feats]
                else:
                    names += [f"{group}[{i}].{f}" for i in range(shape[0]) for f in feats]
            index = self.__dict__["_keys"] = {k: i for i, k in enumerate(names)}
        return index

    def card_summary(self) -> dict:
        """What ``/models`` and the metadata show of this model."""
        card = self.predictor.model.card if self.predictor is not None else {}
        scalars, jagged = self.raw_branches
        return {"name": self.name, "kind": self.kind, "network": card.get("model"), "classes": self.classes,
                "inputs": [{"name": g, "shape": [-1, *s], "datatype": "FP32"} for g, s in self.shapes.items()],
                "output": {"name": OUTPUT, "shape": [-1, len(self.classes)], "datatype": "FP32"},
                "keys": len(self.keys), "raw_branches": {"scalar": list(scalars), "jagged": list(jagged)},
                "discriminants": card.get("discriminants", {})}


def open_served(path: str | os.PathLike, name: str | None = None, *, threads: int = 1) -> ServedModel:
    """Open the model in ``path`` (an exported model directory, or a bare ``model.onnx`` with ``labels.txt``).
    Raises :class:`ServiceError` (or :class:`DeployError`) naming the file at fault."""
    path = Path(path)
    name = name or path.name
    if (path / CARD).is_file():
        check_card_files(path)  # before the Predictor opens (and hashes) any file the card names
        predictor = Predictor(path, threads=threads)
        model = predictor.model
        return ServedModel(name, path, predictor.classes, dict(predictor.shapes),
                           {g: list(spec["features"]) for g, spec in model.inputs.items()}, "exported", predictor)
    return _open_bare(path, name, threads)


def _open_bare(path, name, threads):
    import onnxruntime as ort

    onnx_file, labels_file = path / MODEL_ONNX, path / LABELS
    if not onnx_file.is_file():
        raise ServiceError(f"{path}: neither {CARD} (an exported model) nor {MODEL_ONNX}")
    if not labels_file.is_file():
        raise ServiceError(f"{labels_file}: missing (a bare ONNX model needs its class names, one a line)")
    classes = [line.strip() for line in labels_file.read_text(errors="replace").splitlines() if line.strip()]
    params = _read_params(path / PARAMS) if (path / PARAMS).is_file() else {}
    try:
        session = ort.InferenceSession(str(onnx_file), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as err:  # ONNX Runtime's own exception types
        raise ServiceError(f"{onnx_file}: ONNX Runtime cannot load it ({type(err).__name__}: {err})") from None
    shapes, features = {}, {}
    for value in session.get_inputs():
        dims = value.shape[1:]
        if not all(isinstance(d, int) and d > 0 for d in dims) or value.type != "tensor(float)":
            raise ServiceError(f"{onnx_file}: input {value.name!r} must be float32 with fixed dimensions after "
                               f"the batch axis, got {value.type} {value.shape}")
        shapes[value.name] = tuple(dims)
        names = (params.get("features") or {}).get(value.name) if isinstance(params.get("features"), dict) else None
        features[value.name] = [str(f) for f in names] if names else [str(i) for i in range(dims[-1])]
        if len(features[value.name]) != dims[-1]:
            raise ServiceError(f"{path / PARAMS}: features[{value.name!r}] has {len(names)} names, the input has "
                               f"{dims[-1]} features")
    outputs = session.get_outputs()
    width = outputs[0].shape[-1] if outputs and len(outputs[0].shape) == 2 else None
    if width != len(classes):
        raise ServiceError(f"{labels_file}: {len(classes)} labels, the model's output {outputs[0].name!r} has "
                           f"shape {outputs[0].shape if outputs else None}")
    return ServedModel(name, path, classes, shapes, features, "onnx", None, session, outputs[0].name)


def _read_params(path):
    try:
        params = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ServiceError(f"{path}: not a JSON object ({err})") from None
    if not isinstance(params, dict):
        raise ServiceError(f"{path}: not a JSON object")
    return params


# ---------------------------------------------------------------------------------------------------------
# the folder of models


def check_name(name, field: str = "model") -> str:
    """``name`` if it is a valid model name, else :class:`RequestError` (no paths, no dot files)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name.startswith("."):
        raise RequestError(field, f"invalid model name {str(name)[:80]!r}: use 1 to 64 of A-Z a-z 0-9 . _ - "
                                  f"(not starting with a dot)")
    return name


def list_models(root: str | os.PathLike) -> dict[str, Path]:
    """name → directory of every servable model under ``root`` (sorted by name)."""
    root = Path(root)
    found = {}
    for entry in sorted(root.iterdir()) if root.is_dir() else ():
        if entry.name.startswith(".") or not NAME_PATTERN.fullmatch(entry.name) or not entry.is_dir():
            continue
        if (entry / CARD).is_file() or (entry / MODEL_ONNX).is_file():
            found[entry.name] = entry
    return found


def check_card_files(directory: str | os.PathLike) -> None:
    """Every file the model card of ``directory`` names (``files[*].file``) is a relative, normalised path to a
    regular file inside ``directory`` with no link on the way; else :class:`RequestError` naming the card's
    field (and nothing about any path outside the directory)."""
    directory = Path(directory)
    try:
        card = json.loads((directory / CARD).read_text())
    except (OSError, ValueError) as err:
        raise RequestError("model", f"{CARD}: not a JSON model card ({type(err).__name__})") from None
    files = card.get("files") if isinstance(card, dict) else None
    if not isinstance(files, dict):
        raise RequestError("model", f"{CARD}: 'files' must be an object of file records")
    for key, record in files.items():
        field = f"{CARD} files[{str(key)[:40]!r}].file"
        name = record.get("file") if isinstance(record, dict) else None
        if not isinstance(name, str) or not inside(name):
            raise RequestError("model", f"{field}: must be a relative path inside the model directory "
                                        f"(no '..', no absolute path)")
        path = directory
        for part in PurePosixPath(name).parts:
            path = path / part
            if path.is_symlink():
                raise RequestError("model", f"{field}: {name!r} goes through a link")
        if not path.is_file():
            raise RequestError("model", f"{field}: {name!r} is not a file of the model directory")


def inside(name: str) -> bool:
    """Whether ``name`` is a relative, normalised POSIX path that stays inside its directory."""
    pure = PurePosixPath(name)
    return (bool(name) and "\\" not in name and "\0" not in name and not pure.is_absolute()
            and ".." not in pure.parts and str(pure) == name and not name.startswith("./"))


# ---------------------------------------------------------------------------------------------------------
# requests → converted inputs


def arrays_from_keys(model: ServedModel, keys, values) -> tuple[dict[str, np.ndarray], bool]:
    """TFaaS's ``{"keys": [...], "values": [...]}`` → (converted inputs, whether one row was given).

    ``keys`` are converted feature keys (every one of :attr:`ServedModel.keys`, any order) or raw branch names
    (every branch of :attr:`ServedModel.raw_branches`, any order: for a config whose inputs are one scalar
    group, such as the event-level one, the raw branches are exactly the model's features, ``nJets``,
    ``jetPt_0``, ..., converted with the card's normalisation); ``values`` one row (a list aligned with
    ``keys``) or a list of rows. Unknown, missing or repeated keys, rows of the wrong length, values that are not
    numbers and non-finite values are a :class:`RequestError` naming them."""
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise RequestError("keys", "must be a non-empty list of feature names")
    if not isinstance(values, list) or not values:
        raise RequestError("values", "must be a row (a list aligned with keys) or a list of rows")
    index = model._key_index
    # Raw branches unless the first key is a converted one or none is a raw branch: a misspelt first branch
    # name of a raw request (``nJetz``) is then reported among the branches, not as an unknown converted key.
    raw = set(model.raw_branches[0]) | set(model.raw_branches[1])
    if keys[0] in index or not any(k in raw for k in keys):
        return _converted_rows(model, keys, values, index)
    return _raw_rows(model, keys, values)


def _converted_rows(model, keys, values, index):
    order = _key_order(model, tuple(keys), index)
    single = not isinstance(values[0], list)
    rows = [values] if single else values
    try:
        matrix = np.asarray(rows)
    except (TypeError, ValueError):
        raise RequestError("values", "rows must be lists of numbers, one per key") from None
    if matrix.dtype.kind not in "iuf":  # strings ("nan"), null, booleans or ragged rows
        raise RequestError("values", "rows must be lists of numbers, one per key")
    if matrix.ndim != 2 or matrix.shape[1] != len(keys):
        raise RequestError("values", f"each row must have {len(keys)} numbers (one per key), got shape "
                                     f"{list(matrix.shape)}")
    with np.errstate(over="ignore"):
        matrix = matrix.astype(np.float32)  # 1e39 becomes inf here, and is refused with NaN and inf
    require_finite("values", matrix[0] if single else matrix)
    flat = matrix[:, order] if order is not None else matrix
    feed, start = {}, 0
    for group, shape in model.shapes.items():
        size = math.prod(shape)
        feed[group] = np.ascontiguousarray(flat[:, start:start + size].reshape(len(flat), *shape))
        start += size
    return feed, single


def _key_order(model, keys, index):
    """Column permutation from the request's key order to the model's (None when already in model order);
    cached per key tuple, so a loop over events pays the checks once."""
    cache = model.__dict__.setdefault("_orders", {})
    if keys in cache:
        return cache[keys]
    unknown = [k for k in keys if k not in index]
    if unknown:
        raise RequestError("keys", f"unknown key(s) {unknown[:10]}{' ...' if len(unknown) > 10 else ''} for model "
                                   f"{model.name!r} (its keys look like {model.keys[0]!r}; GET /models)")
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise RequestError("keys", f"repeated key(s) {repeated[:10]}")
    missing = [k for k in index if k not in set(keys)]
    if missing:
        raise RequestError("keys", f"missing key(s) {missing[:10]}{' ...' if len(missing) > 10 else ''} "
                                   f"({len(missing)} of {len(index)})")
    positions = np.array([keys.index(k) for k in index]) if list(keys) != list(index) else None
    if len(cache) < 64:
        cache[keys] = positions
    return positions


def _raw_rows(model, keys, values):
    scalars, jagged = model.raw_branches
    known = set(scalars) | set(jagged)
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise RequestError("keys", f"unknown branch(es) {unknown[:10]} for model {model.name!r}")
    missing = [b for b in (*scalars, *jagged) if b not in set(keys)]
    if missing:
        raise RequestError("keys", f"missing branch(es) {missing[:10]}")
    probe = keys.index(scalars[0]) if scalars else 0
    # one row: aligned with keys, a number at a scalar branch; or no list at all (rows are lists), whatever its
    # length, so that a row one number short is reported as such
    single = ((len(values) == len(keys) and not isinstance(values[probe], list))
              or not any(isinstance(v, list) for v in values))
    rows = [values] if single else values
    for i, row in enumerate(rows):
        where = f"values[{i}]" if not single else "values"
        if not isinstance(row, list) or len(row) != len(keys):
            raise RequestError(where, f"a row must have {len(keys)} entries (one per key)")
        for key, value in zip(keys, row):
            _check_branch_value(value, f"{where}[{key}]")
    return arrays_from_jets(model, {k: [row[j] for row in rows] for j, k in enumerate(keys)}, field="values"), single


def arrays_from_jets(model: ServedModel, branches: Mapping, field: str = JETS_INPUT) -> dict[str, np.ndarray]:
    """Raw branches of one or many jets (branch → list with one entry per jet) → converted inputs, through
    the conversion kernels and normalisation of the model card (:func:`deepjet_nb.jets.convert_jets`)."""
    from ..jets import convert_jets

    if model.predictor is None:
        raise RequestError(field, f"model {model.name!r} is a bare ONNX model (no model card): send converted "
                                  f"inputs, not raw branches")
    card = model.predictor.model
    try:
        return convert_jets(branches, card.config, card.normalisation, source=field)
    except DeepJetError as err:
        raise RequestError(field, str(err).removeprefix(f"{field}: ")) from None


def jets_from_json(items: Sequence, field: str = JETS_INPUT) -> dict[str, list]:
    """JSON objects of jets (``str``/``bytes`` each, branch → a number or a list of numbers) → branch → list over
    jets."""
    jets = []
    for i, item in enumerate(items):
        try:
            jet = orjson.loads(item)
        except (TypeError, orjson.JSONDecodeError):
            raise RequestError(f"{field}[{i}]", "must be a JSON object of branches") from None
        if not isinstance(jet, dict):
            raise RequestError(f"{field}[{i}]", "must be a JSON object of branches")
        for branch, value in jet.items():
            _check_branch_value(value, f"{field}[{i}].{branch}")
        jets.append(jet)
    names = list(jets[0]) if jets else []
    for i, jet in enumerate(jets):
        if set(jet) != set(names):
            raise RequestError(f"{field}[{i}]", f"has other branches than {field}[0]")
    return {name: [jet[name] for jet in jets] for name in names}


_RAW_NUMBERS = (int, float, bool)


def _check_branch_value(value, where):
    """A raw branch value is a number (scalar branch) or a flat list of numbers (jagged branch); booleans count
    as numbers, as in a ROOT file's flag branches."""
    if isinstance(value, list):
        if not all(type(v) in _RAW_NUMBERS for v in value):
            raise RequestError(where, "a jagged branch is a list of numbers")
    elif type(value) not in _RAW_NUMBERS:
        raise RequestError(where, f"{str(value)[:40]!r}: a branch value is a number or a list of numbers")


def arrays_from_tensors(model: ServedModel, tensors: Sequence) -> dict[str, np.ndarray]:
    """OIP inputs (decoded :class:`~deepjet_nb.service.tensors.Tensor` objects, or ``(name, datatype, shape,
    data)`` tuples) → converted inputs: every input group of the model (FP32 or another numeric type, shape
    ``[n, *group shape]``), or one BYTES input ``jets`` of raw jets."""
    tensors = [t if isinstance(t, Tensor) else _tensor(*t) for t in tensors]
    names = [t.name for t in tensors]
    if names == [JETS_INPUT] and JETS_INPUT not in model.shapes:
        tensor = tensors[0]
        if tensor.datatype != "BYTES":
            raise RequestError(f"inputs[{JETS_INPUT}].datatype", "raw jets are BYTES (one JSON object per jet)")
        if not tensor.data:
            raise RequestError(f"inputs[{JETS_INPUT}].data", "no jets")
        return arrays_from_jets(model, jets_from_json(tensor.data, f"inputs[{JETS_INPUT}]"), f"inputs[{JETS_INPUT}]")
    unknown = [n for n in names if n not in model.shapes]
    if unknown:
        raise RequestError("inputs", f"unknown input(s) {[n[:64] for n in unknown[:10]]} for model {model.name!r}; "
                                     f"it takes {list(model.shapes)} (or one BYTES input {JETS_INPUT!r} of raw jets)")
    if len(set(names)) != len(names):
        raise RequestError("inputs", "an input is given twice")
    missing = [g for g in model.shapes if g not in names]
    if missing:
        raise RequestError("inputs", f"missing input(s) {missing} for model {model.name!r}")
    feed, n = {}, None
    for tensor in tensors:
        field, want, shape = f"inputs[{tensor.name}]", model.shapes[tensor.name], tensor.shape
        if tensor.datatype == "BYTES":
            raise RequestError(f"{field}.datatype", "BYTES: must be numeric (FP32)")
        if len(shape) != 1 + len(want) or tuple(shape[1:]) != want or shape[0] < 1:
            raise RequestError(f"{field}.shape", f"{list(shape)}: must be [n, {', '.join(map(str, want))}] with "
                                                 f"n >= 1")
        feed[tensor.name] = tensor.data.astype(np.float32, copy=False).reshape(shape)
        if n is None:
            n, first = shape[0], tensor.name
        elif shape[0] != n:
            raise RequestError(f"{field}.shape", f"{shape[0]} jets, {first!r} has {n}")
    return feed


def _tensor(name, datatype, shape, data):
    """A decoded tensor from MLServer's request fields (JSON values, raw bytes or a numpy array)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return tensor_from_raw(name, datatype, shape, data)
    if isinstance(data, np.ndarray):
        data = data.ravel().tolist()
    return tensor_from_json(name, datatype, shape, data)
