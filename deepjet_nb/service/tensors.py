"""Tensors on the wire: Open Inference Protocol inputs decoded and checked, outputs encoded (no HTTP, no gRPC).

Every inference request of the server, whatever its protocol, is decoded here into :class:`Tensor` objects,
with the same checks: a known datatype, a shape of at most :data:`MAX_DIMS` non-negative dimensions and
:data:`MAX_ELEMENTS` values, exactly the bytes that shape needs (raw contents, Triton's binary data
extension), well-formed BYTES length prefixes, JSON data no deeper than the shape, and finite float32
values (NaN, ±inf and numbers beyond float32's range are refused naming the input and the index). A
request that fails a check is a :class:`RequestError` naming the field at fault (HTTP 400, gRPC
INVALID_ARGUMENT).

REST bodies follow the OIP JSON form and Triton's binary tensor data extension: with the header
``Inference-Header-Content-Length: N`` the first ``N`` bytes are the JSON header and the rest holds the
inputs whose ``parameters.binary_data_size`` say how many bytes each takes, in input order; outputs come back
the same way when the request asks for ``binary_data`` (per output) or ``binary_data_output`` (all).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np
import orjson

from ..errors import ServiceError

__all__ = ["RequestError", "Tensor", "InferRequest", "DATATYPES", "MAX_DIMS", "MAX_ELEMENTS", "decode_rest",
           "tensor_from_json", "tensor_from_raw", "tensor_from_contents", "encode_rest", "require_finite",
           "bytes_items", "HEADER_LENGTH"]

HEADER_LENGTH = "inference-header-content-length"
MAX_DIMS = 8
MAX_ELEMENTS = 1 << 26  # 64 Mi values (256 MB of FP32): more than any body the server accepts
DATATYPES = {"BOOL": np.dtype("?"), "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
             "UINT64": np.dtype("<u8"), "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
             "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
             "BYTES": None}
_NUMBER = (int, float)


class RequestError(ServiceError):
    """A request the service cannot serve; ``field`` names the field at fault (HTTP 400 on the wire)."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


@dataclass
class Tensor:
    """One decoded input: ``data`` is a flat numpy array of ``datatype``'s dtype, or a list of ``bytes`` for
    BYTES; ``len(data) == prod(shape)`` always."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: object


@dataclass
class InferRequest:
    """A decoded inference request: its inputs, the outputs asked for (None: every one), whether each output
    goes back as binary data (``binary``: output name → bool; ``binary_default`` for the others), its id."""

    inputs: list[Tensor]
    outputs: list[str] | None = None
    binary: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False
    id: str | None = None


# ---------------------------------------------------------------------------------------------------------
# REST


def decode_rest(body: bytes, header_length: str | None = None) -> InferRequest:
    """An OIP REST body (JSON, or JSON header + binary data when ``header_length`` is given) → the request."""
    binary = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise RequestError("Inference-Header-Content-Length", f"{header_length[:40]!r} is not a number") from None
        if not 0 < size <= len(body):
            raise RequestError("Inference-Header-Content-Length", f"{size}: must be between 1 and the body's "
                                                                  f"{len(body)} bytes")
        body, binary = body[:size], memoryview(body)[size:]
    try:
        head = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise RequestError("body", f"not JSON ({err})") from None
    if not isinstance(head, dict):
        raise RequestError("body", "must be a JSON object with \"inputs\"")
    request = InferRequest(_rest_inputs(head.get("inputs"), binary), id=_request_id(head.get("id")))
    parameters = _parameters(head.get("parameters"), "parameters")
    request.binary_default = _flag(parameters, "binary_data_output", "parameters")
    outputs = head.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise RequestError("outputs", "must be a list of {\"name\": ...}")
        request.outputs = []
        for i, output in enumerate(outputs):
            if not isinstance(output, dict) or not isinstance(output.get("name"), str):
                raise RequestError(f"outputs[{i}]", "must be an object with a \"name\"")
            options = _parameters(output.get("parameters"), f"outputs[{i}].parameters")
            if "classification" in options:
                raise RequestError(f"outputs[{i}].parameters.classification", "not supported: the output is the "
                                                                              "probabilities of every class")
            request.outputs.append(output["name"])
            if "binary_data" in options:
                request.binary[output["name"]] = _flag(options, "binary_data", f"outputs[{i}].parameters")
    return request


def _rest_inputs(inputs, binary):
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("inputs", "must be a non-empty list of tensors {name, datatype, shape, data}")
    decoded, offset = [], 0
    for i, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise RequestError(f"inputs[{i}]", "must be an object {name, datatype, shape, data}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise RequestError(f"inputs[{i}].name", "must be a non-empty string")
        where = f"inputs[{name[:64]}]"
        parameters = _parameters(item.get("parameters"), f"{where}.parameters")
        size = parameters.get("binary_data_size")
        if size is None:
            if "data" not in item:
                raise RequestError(f"{where}.data", "missing (give data, or binary data with binary_data_size)")
            decoded.append(tensor_from_json(name, item.get("datatype"), item.get("shape"), item["data"]))
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RequestError(f"{where}.parameters.binary_data_size", "must be a non-negative integer")
        if offset + size > len(binary):
            raise RequestError(f"{where}.parameters.binary_data_size", f"{size} bytes from offset {offset}: the "
                                                                       f"binary data has {len(binary)} bytes")
        decoded.append(tensor_from_raw(name, item.get("datatype"), item.get("shape"), binary[offset:offset + size]))
        offset += size
    if offset != len(binary):
        raise RequestError("body", f"{len(binary) - offset} bytes of binary data that no input claims "
                                   f"(binary_data_size)")
    return decoded


def _parameters(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(where, "must be an object")
    return value


def _flag(parameters, key, where):
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise RequestError(f"{where}.{key}", "must be true or false")
    return value


def _request_id(value):
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise RequestError("id", "must be a string of at most 256 characters")
    return value


def encode_rest(model: str, request: InferRequest, outputs: dict[str, np.ndarray]) -> tuple[bytes, int | None]:
    """The REST response of ``outputs`` (name → array): (body, JSON header length when binary data follows,
    else None)."""
    described, blobs = [], []
    for name, array in outputs.items():
        entry = {"name": name, "datatype": _datatype_of(array), "shape": list(array.shape)}
        if request.binary.get(name, request.binary_default):
            blob = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.ravel().tolist()
        described.append(entry)
    head = {"model_name": model, "outputs": described}
    if request.id is not None:
        head["id"] = request.id
    header = orjson.dumps(head)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _datatype_of(array):
    for name, dtype in DATATYPES.items():
        if dtype is not None and dtype == array.dtype.newbyteorder("<"):
            return name
    raise ServiceError(f"no OIP datatype for {array.dtype}")  # the server's own outputs are FP32


# ---------------------------------------------------------------------------------------------------------
# one tensor, from each encoding


def tensor_from_json(name: str, datatype, shape, data) -> Tensor:
    """A tensor whose values are JSON ``data``: flat, or nested no deeper than ``shape``."""
    where = f"inputs[{name}]"
    dtype, shape = _checked_header(where, datatype, shape)
    flat = _flat(data, len(shape), f"{where}.data")
    count = math.prod(shape)
    if len(flat) != count:
        raise RequestError(f"{where}.data", f"{len(flat)} values, shape {list(shape)} needs {count}")
    if dtype is None:
        items = [_bytes_item(v, f"{where}.data[{i}]") for i, v in enumerate(flat)]
        return Tensor(name, datatype, shape, items)
    kinds = (bool,) if datatype == "BOOL" else _NUMBER
    for i, value in enumerate(flat):
        if not isinstance(value, kinds) or (isinstance(value, bool) and datatype != "BOOL"):
            raise RequestError(f"{where}.data[{i}]", f"{_short(value)} is not a {datatype} number")
    try:  # floats through float64, so that an error shows 1e+39 rather than the inf it would become
        array = np.asarray(flat, dtype=np.float64 if dtype.kind == "f" else dtype)
    except OverflowError:
        raise RequestError(f"{where}.data", f"a value does not fit {datatype}") from None
    require_finite(f"{where}.data", array)
    return Tensor(name, datatype, shape, array.astype(dtype, copy=False))


def tensor_from_raw(name: str, datatype, shape, raw) -> Tensor:
    """A tensor from raw little-endian bytes (gRPC's ``raw_input_contents``, REST binary data); the length must
    be exactly what the shape needs (BYTES: 4-byte little-endian length prefixes, one per element)."""
    where = f"inputs[{name}]"
    dtype, shape = _checked_header(where, datatype, shape)
    count = math.prod(shape)
    if dtype is None:
        return Tensor(name, datatype, shape, _prefixed_items(bytes(raw), count, where))
    if len(raw) != count * dtype.itemsize:
        raise RequestError(f"{where}.data", f"{len(raw)} bytes, shape {list(shape)} of {datatype} needs "
                                            f"{count * dtype.itemsize}")
    array = np.frombuffer(raw, dtype=dtype)
    return Tensor(name, datatype, shape, require_finite(f"{where}.data", array))


def tensor_from_contents(name: str, datatype, shape, values) -> Tensor:
    """A tensor from gRPC's typed ``contents`` (a repeated field: numbers, or bytes for BYTES)."""
    where = f"inputs[{name}]"
    dtype, shape = _checked_header(where, datatype, shape)
    count = math.prod(shape)
    if len(values) != count:
        raise RequestError(f"{where}.data", f"{len(values)} values, shape {list(shape)} needs {count}")
    if dtype is None:
        return Tensor(name, datatype, shape, [bytes(v) for v in values])
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            array = np.asarray(values, dtype=dtype)
        except (OverflowError, ValueError):
            raise RequestError(f"{where}.data", f"a value does not fit {datatype}") from None
    return Tensor(name, datatype, shape, require_finite(f"{where}.data", array))


def require_finite(where: str, array: np.ndarray) -> np.ndarray:
    """``array`` if every value is finite once in float32 (integers pass), else :class:`RequestError` naming the
    first value at fault, ``where[i][j]...``."""
    if array.dtype.kind != "f":
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        as32 = array if array.dtype == np.float32 else array.astype(np.float32)
    finite = np.isfinite(as32)
    if finite.all():
        return array
    index = np.unravel_index(int(np.argmin(finite.ravel())), array.shape)
    value = array[index].item()
    raise RequestError(where + "".join(f"[{i}]" for i in index), f"{value!r} is not a finite float32 number (NaN, "
                                                                  f"inf and values beyond ±3.4e38 are refused)")


def bytes_items(tensor: Tensor) -> list[bytes]:
    """The elements of a BYTES tensor (a :class:`RequestError` for any other datatype)."""
    if tensor.datatype != "BYTES":
        raise RequestError(f"inputs[{tensor.name}].datatype", f"{tensor.datatype}: must be BYTES")
    return tensor.data


def _checked_header(where, datatype, shape):
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise RequestError(f"{where}.datatype", f"{_short(datatype)}: not an OIP datatype (one of "
                                                f"{', '.join(DATATYPES)})")
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_DIMS:
        raise RequestError(f"{where}.shape", f"must be a list of at most {MAX_DIMS} dimensions")
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            raise RequestError(f"{where}.shape", f"{_short(list(shape))}: dimensions must be integers >= 0")
    count = 1
    for d in shape:  # stop multiplying early: a huge shape must not cost a huge integer
        count *= d
        if count > MAX_ELEMENTS:
            raise RequestError(f"{where}.shape", f"{_short(list(shape))}: more than {MAX_ELEMENTS} values")
    return DATATYPES[datatype], tuple(shape)


def _flat(data, max_depth, where):
    """The values of JSON ``data``, flattened row-major; lists nested deeper than ``max_depth`` are refused
    (iteratively: no recursion a client could exhaust)."""
    if not isinstance(data, list):
        raise RequestError(where, "must be a list of values")
    if not data or not isinstance(data[0], list) and not any(isinstance(v, list) for v in data):
        return data
    out, stack = [], [(iter(data), 1)]
    while stack:
        items, depth = stack[-1]
        for value in items:
            if isinstance(value, list):
                if depth >= max_depth:
                    raise RequestError(where, f"nested deeper than the shape's {max_depth} dimensions")
                stack.append((iter(value), depth + 1))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def _bytes_item(value, where):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise RequestError(where, f"{_short(value)}: BYTES elements are strings")


def _prefixed_items(raw, count, where):
    items, offset = [], 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise RequestError(f"{where}.data", f"element {i}: its 4-byte length prefix is cut off at byte {offset}")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise RequestError(f"{where}.data", f"element {i}: its length prefix says {size} bytes, "
                                                f"{len(raw) - offset} are left")
        items.append(raw[offset:offset + size])
        offset += size
    if offset != len(raw):
        raise RequestError(f"{where}.data", f"{len(raw) - offset} bytes after the {count} elements of the shape")
    return items


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
