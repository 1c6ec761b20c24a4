"""The gRPC side of the server: MLServer's OIP v2 services, with our ``ModelInfer``, tokens and error codes.

- ``ModelInfer`` decodes the request with the checks of :mod:`~deepjet_nb.service.tensors` (exact lengths
  of ``raw_input_contents``, BYTES prefixes, known datatypes, bounded non-negative shapes, finite values)
  and answers a bad request with ``INVALID_ARGUMENT`` naming the field, an unknown model with
  ``NOT_FOUND``: ``INTERNAL`` is left to real faults of the server, the only ones logged with a traceback.
- :class:`TokenInterceptor` applies the REST guard's default-deny to gRPC: only the methods of
  :data:`PUBLIC_METHODS` (and ``ModelInfer`` unless inference is protected) run without the bearer token.
- :class:`OneLineErrors` folds MLServer's tracebacks of refused requests (unknown model, bad load) into one
  log line.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import grpc
import numpy as np
from mlserver.errors import MLServerError
from mlserver.grpc import dataplane_pb2 as pb
from mlserver.grpc.dataplane_pb2_grpc import add_GRPCInferenceServiceServicer_to_server
from mlserver.grpc.model_repository import ModelRepositoryServicer
from mlserver.grpc.model_repository_pb2_grpc import add_ModelRepositoryServiceServicer_to_server
from mlserver.grpc.server import DefaultGrpcWorkers, GRPCServer
from mlserver.grpc.servicers import InferenceServicer

from .tensors import InferRequest, RequestError, tensor_from_contents, tensor_from_raw

__all__ = ["GRPCServer", "TokenInterceptor", "OneLineErrors", "decode_grpc", "PUBLIC_METHODS", "status_code"]

log = logging.getLogger("deepjet_nb.service")
PUBLIC_METHODS = frozenset({"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                            "RepositoryIndex"})
INFER_METHODS = frozenset({"ModelInfer", "ModelStreamInfer"})
_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
          403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
          409: grpc.StatusCode.ABORTED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
          422: grpc.StatusCode.FAILED_PRECONDITION, 503: grpc.StatusCode.UNAVAILABLE}
# the typed contents field of each datatype (FP16 travels only as raw contents)
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
             "FP64": "fp64_contents", "BYTES": "bytes_contents"}
Infer = Callable[[str, "str | None", InferRequest], Awaitable[tuple[str, np.ndarray]]]


def status_code(http_status: int) -> grpc.StatusCode:
    """The gRPC code of an HTTP status (``INTERNAL`` for any other)."""
    return _CODES.get(http_status, grpc.StatusCode.INTERNAL)


def decode_grpc(request) -> InferRequest:
    """A ``ModelInferRequest`` → the decoded request (typed ``contents`` or ``raw_input_contents``, one per
    input in order); :class:`RequestError` naming the field at fault."""
    if not request.inputs:
        raise RequestError("inputs", "must be a non-empty list of tensors")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise RequestError("raw_input_contents", f"{len(raw)} entries for {len(request.inputs)} inputs (one each)")
    inputs = []
    for i, item in enumerate(request.inputs):
        if not item.name:
            raise RequestError(f"inputs[{i}].name", "must be a non-empty string")
        shape = list(item.shape)
        if raw:
            inputs.append(tensor_from_raw(item.name, item.datatype, shape, raw[i]))
            continue
        field = _CONTENTS.get(item.datatype)
        values = getattr(item.contents, field) if field is not None else ()
        if field is None and item.datatype == "FP16":
            raise RequestError(f"inputs[{item.name}].contents", "FP16 travels as raw_input_contents")
        inputs.append(tensor_from_contents(item.name, item.datatype, shape, values))
    return InferRequest(inputs, [o.name for o in request.outputs] or None, id=request.id or None)


def encode_grpc(model: str, version: str | None, request_id: str | None, name: str, probs: np.ndarray,
                raw: bool) -> pb.ModelInferResponse:
    """The ``ModelInferResponse`` of one FP32 output: raw contents when the request came raw (as Triton)."""
    output = pb.ModelInferResponse.InferOutputTensor(name=name, datatype="FP32", shape=list(probs.shape))
    if not raw:
        output.contents.fp32_contents.extend(probs.ravel().tolist())
    response = pb.ModelInferResponse(model_name=model, model_version=version or "", id=request_id or "",
                                     outputs=[output])
    if raw:
        response.raw_output_contents.append(np.ascontiguousarray(probs, dtype="<f4").tobytes())
    return response


class _Servicer(InferenceServicer):
    """MLServer's inference servicer with ``ModelInfer`` decoded, checked and run by ``infer``."""

    def __init__(self, data_plane, model_repository_handlers, infer: Infer):
        super().__init__(data_plane, model_repository_handlers)
        self._infer = infer

    async def ModelInfer(self, request, context):
        try:
            decoded = decode_grpc(request)
            name, probs = await self._infer(request.model_name, request.model_version or None, decoded)
            return encode_grpc(request.model_name, request.model_version, decoded.id, name, probs,
                               bool(request.raw_input_contents))
        except RequestError as err:
            code, message = status_code(err.status), str(err)
        except MLServerError as err:
            code, message = status_code(err.status_code), str(err)
        except Exception as err:  # a fault of the server, not of the request: the one case worth a traceback
            log.exception("gRPC ModelInfer %r failed", request.model_name[:64])
            code, message = grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}"
        if code is not grpc.StatusCode.INTERNAL:
            log.info("refused gRPC ModelInfer %r: %s %s", request.model_name[:64], code.name, message[:300])
        await context.abort(code, message)

    async def ModelStreamInfer(self, request_iterator, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "ModelStreamInfer: streaming inference is not served "
                                                           "(use ModelInfer)")


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Default-deny on gRPC: any method outside :data:`PUBLIC_METHODS` (and ModelInfer unless
    ``protect_infer``) needs the bearer token in the ``authorization`` metadata."""

    def __init__(self, token: str | None, protect_infer: bool):
        self.token = token
        self.public = PUBLIC_METHODS if protect_infer else PUBLIC_METHODS | INFER_METHODS

    async def intercept_service(self, continuation, details):
        method = details.method.rsplit("/", 1)[-1]
        if method not in self.public:
            metadata = dict(details.invocation_metadata or ())
            if self.token is None:
                log.info("refused gRPC %s: PERMISSION_DENIED (no token configured)", method[:64])
                return _deny(grpc.StatusCode.PERMISSION_DENIED, f"{method}: disabled (no --token-file)")
            if not hmac.compare_digest(str(metadata.get("authorization", "")).encode(),
                                       f"Bearer {self.token}".encode()):
                log.info("refused gRPC %s: UNAUTHENTICATED", method[:64])
                return _deny(grpc.StatusCode.UNAUTHENTICATED, f"{method}: a valid bearer token is required "
                                                              f"(metadata 'authorization')")
        return await continuation(details)


def _deny(code, message):
    async def abort(request, context):
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class OneLineErrors(logging.Filter):
    """Turns a log record of a refused request (an ``MLServerError`` under 500, logged with its traceback by
    MLServer's gRPC handlers) into one line at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        err = record.exc_info[1] if record.exc_info else None
        if isinstance(err, MLServerError) and err.status_code < 500:
            record.msg, record.args = "refused gRPC request: %s", (" ".join(str(err).split())[:300],)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class GRPCServer(GRPCServer):
    """MLServer's gRPC server with our servicer and the token interceptor (and no others: metrics and
    tracing are off in this server)."""

    def __init__(self, *args, interceptor: TokenInterceptor, infer: Infer, max_message_bytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self._token_interceptor = interceptor
        self._infer_fn = infer
        self._max_message_bytes = max_message_bytes

    def _create_server(self):
        from concurrent.futures import ThreadPoolExecutor

        self._inference_servicer = _Servicer(self._data_plane, self._model_repository_handlers, self._infer_fn)
        self._model_repository_servicer = ModelRepositoryServicer(self._model_repository_handlers)
        self._interceptors = [self._token_interceptor]
        size = self._max_message_bytes
        self._server = grpc.aio.server(ThreadPoolExecutor(max_workers=DefaultGrpcWorkers),
                                       interceptors=list(self._interceptors),
                                       options=[("grpc.max_receive_message_length", size),
                                                ("grpc.max_send_message_length", size)])
        add_GRPCInferenceServiceServicer_to_server(self._inference_servicer, self._server)
        add_ModelRepositoryServiceServicer_to_server(self._model_repository_servicer, self._server)
        self._server.add_insecure_port(f"{self._settings.host}:{self._settings.grpc_port}")
        return self._server
