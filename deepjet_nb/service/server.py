"""The model server: MLServer (Open Inference Protocol v2 over REST and gRPC) with TFaaS's routes beside it.

:func:`serve` runs an ``mlserver.MLServer`` whose model repository is a folder of exported model directories
(:class:`~deepjet_nb.service.runtime.FolderRepository`, each model run by
:class:`~deepjet_nb.service.runtime.DeepJetRuntime`), and adds to MLServer's FastAPI app:

- TFaaS's routes: ``POST /upload`` (multipart: ``model``, ``params``, ``labels``), ``POST /json``
  (``{"keys", "values", "model"}``), ``GET /models``, ``DELETE /delete/{model}``, ``GET /status``;
- an ASGI guard in front of every route: a bearer token (``token``) for upload, delete and the repository's
  load and unload (and infer, with ``protect_infer``), and ``413`` for an upload over ``max_upload_bytes``;
- the same token check on gRPC (``RepositoryModelLoad``, ``RepositoryModelUnload``, and ``ModelInfer`` with
  ``protect_infer``), through an interceptor.

MLServer's custom handlers belong to one model; TFaaS's routes serve every model, so they are routes of the
server's app. The server process imports ONNX Runtime, never TensorFlow (``GET /status`` says so).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import orjson
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from mlserver import MLServer
from mlserver.context import model_context
from mlserver.errors import MLServerError, ModelNotFound
from mlserver.grpc import GRPCServer
from mlserver.settings import Settings
from pydantic import BaseModel, Field

from .. import __version__
from ..errors import DeepJetError
from . import models as _models
from .runtime import DeepJetRuntime, FolderRepository, RequestRejected, checked_request

__all__ = ["ServeOptions", "serve", "TFaaSRequest", "MAX_UPLOAD_BYTES"]

MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # 200 MB, as the command line's default
log = logging.getLogger("deepjet_nb.service")


@dataclass(frozen=True)
class ServeOptions:
    """What :func:`serve` serves and how (the ``deepjet-nb serve`` options)."""

    models: Path
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 8081
    token: str | None = None
    protect_infer: bool = False
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_batch_size: int = 32
    max_batch_time: float = 0.002
    workers: int = 0
    threads: int = 1


class TFaaSRequest(BaseModel):
    """Body of ``POST /json``: TFaaS's request. ``values`` is one row aligned with ``keys`` or a list of rows."""

    keys: list[str] = Field(..., min_length=1, description="feature keys (converted) or raw branch names")
    values: list = Field(..., min_length=1, description="one row, or a list of rows, aligned with keys")
    model: str = Field(..., description="model name")


def serve(options: ServeOptions) -> None:
    """Run the server until SIGINT or SIGTERM (blocks). Models that fail to load are logged and skipped."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with mlserver
        uvloop = None
    runner = uvloop.run if uvloop is not None else asyncio.run
    runner(_serve(options))


async def _serve(options: ServeOptions):
    settings = Settings(
        debug=False, host=options.host, http_port=options.http_port, grpc_port=options.grpc_port,
        parallel_workers=options.workers, metrics_endpoint=None, gzip_enabled=False,
        server_name="deepjet-nb", server_version=__version__,
        model_repository_root=str(options.models), model_repository_implementation=FolderRepository,
        model_repository_implementation_args={"max_batch_size": options.max_batch_size,
                                              "max_batch_time": options.max_batch_time,
                                              "threads": options.threads})
    server = _Server(settings, options)
    await server.start(await server._model_repository.list())


class _Server(MLServer):
    """MLServer with the TFaaS routes, the token guard and the gRPC interceptor."""

    def __init__(self, settings: Settings, options: ServeOptions):
        self.options = options
        self.started = time.time()
        self._write_lock = asyncio.Lock()  # uploads, deletes, loads: one at a time
        self._served_cache: dict[str, tuple[float, _models.ServedModel]] = {}
        super().__init__(settings)
        app = self._rest_server._app
        json_body = {"requestBody": {"required": True, "content": {
            "application/json": {"schema": TFaaSRequest.model_json_schema()}}}}
        upload_body = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["model"], "properties": {
                "model": {"type": "string", "format": "binary"}, "params": {"type": "string", "format": "binary"},
                "labels": {"type": "string", "format": "binary"}, "name": {"type": "string"}}}}}}}
        for path, endpoint, method, extra in (
                ("/upload", self.upload, "POST", upload_body), ("/json", self.json, "POST", json_body),
                ("/models", self.models, "GET", None), ("/delete/{model}", self.delete, "DELETE", None),
                ("/status", self.status, "GET", None)):
            app.add_api_route(path, endpoint, methods=[method], openapi_extra=extra)
        app.add_middleware(_Guard, token=options.token, protect_infer=options.protect_infer,
                           max_upload_bytes=options.max_upload_bytes)

    def _create_servers(self):
        super()._create_servers()
        self._grpc_server = _GRPCServer(self._settings, self._data_plane, self._model_repository_handlers,
                                        interceptor=_TokenInterceptor(self.options.token, self.options.protect_infer))

    async def start(self, models_settings=()):
        servers = asyncio.gather(self._rest_server.start(), self._grpc_server.start())
        for settings in models_settings:  # one bad model directory must not stop the others
            try:
                await self._model_registry.load(settings)
            except Exception as err:
                log.error("model %r in %s not loaded: %s", settings.name, settings.parameters.uri, err)
        await servers

    # -- TFaaS routes -------------------------------------------------------------------------------------

    async def json(self, request: Request):
        """TFaaS's prediction: ``{"keys", "values", "model"}`` → ``{"model", "classes", "probabilities"}``.

        The body is parsed here (one orjson call, the checks of :func:`models.arrays_from_keys`) rather than by
        FastAPI's validation, which costs as much as the inference of a row; the OpenAPI schema is
        :class:`TFaaSRequest`'s all the same."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as err:
            raise RequestRejected(_models.RequestError("body", f"not JSON ({err})")) from None
        if not isinstance(body, dict):
            raise RequestRejected(_models.RequestError("body", "must be a JSON object {keys, values, model}"))
        for field in ("model", "keys", "values"):
            if field not in body:
                raise RequestRejected(_models.RequestError(field, "missing"))
        name = _checked_name(body["model"])
        served = await self._served(name)
        try:
            feed, single = _models.arrays_from_keys(served, body["keys"], body["values"])
        except _models.RequestError as err:
            raise RequestRejected(err) from None
        model = await self._model_registry.get_model(name)
        if isinstance(model, DeepJetRuntime):  # in this process: straight to its batcher, the inputs are checked
            with model_context(model.settings):  # MLServer's batcher logs metrics per model
                response = await model.predict_checked(feed)
        else:  # parallel workers: through MLServer's data plane to the worker processes
            response = await self._data_plane.infer(checked_request(feed), name)
        output = response.outputs[0]
        flat = getattr(output.data, "root", output.data)
        width = len(served.classes)
        rows = [flat[i:i + width] for i in range(0, len(flat), width)]
        return _JSONBytes(orjson.dumps({"model": name, "classes": served.classes,
                                        "probabilities": rows[0] if single else rows}))

    async def models(self):
        """Every model of the served folder: its state and, when loaded, its classes, inputs and keys."""
        out = []
        for item in (await self._model_repository_handlers.index(_IndexAll())).root:
            entry = {"name": item.name, "state": item.state.value}
            if item.state.value == "READY":
                try:
                    entry.update((await self._served(item.name)).card_summary())
                except MLServerError:
                    pass
            out.append(entry)
        return out

    async def upload(self, request: Request):
        """TFaaS's upload (multipart): ``model`` (a model.onnx or a tarball of an exported model directory),
        ``params`` (params.json: ``{"name": ...}``), ``labels`` (class names, one a line); ``name`` may also be
        a form field. Installed atomically, then loaded (a model of that name is replaced)."""
        try:
            form = await request.form()
        except Exception as err:  # malformed multipart
            raise RequestRejected(_models.RequestError("body", f"not a multipart form ({err})")) from None
        try:
            model = form.get("model")
            if model is None or not hasattr(model, "read"):
                raise RequestRejected(_models.RequestError("model", "missing: upload the model as a file field"))
            data = await model.read()
            filename = model.filename or ""
            params = await _field_bytes(form, "params")
            labels = await _field_bytes(form, "labels")
            name = form.get("name")
        finally:
            await form.close()  # the spooled files
        if name is None and params is not None:
            name = _name_from_params(params)
        if name is None:
            raise RequestRejected(_models.RequestError("name", "missing: give a name field or params.json "
                                                               "with a \"name\""))
        name = _checked_name(name, "name")
        async with self._write_lock:
            try:
                await asyncio.to_thread(_models.install, self.options.models, name, data,
                                        filename=filename, params=params, labels=labels)
            except _models.RequestError as err:
                raise RequestRejected(err) from None
            self._served_cache.pop(name, None)
            await self._model_repository_handlers.load(name)
        return JSONResponse({"model": name, "status": "installed",
                             **(await self._served(name)).card_summary()}, status_code=201)

    async def delete(self, model: str):
        """Unload the model and remove its directory."""
        name = _checked_name(model)
        async with self._write_lock:
            if name not in _models.list_models(self.options.models):
                raise ModelNotFound(name)
            try:
                await self._model_registry.unload(name)
            except ModelNotFound:
                pass
            self._served_cache.pop(name, None)
            await asyncio.to_thread(_models.remove, self.options.models, name)
        return {"model": name, "status": "deleted"}

    async def status(self):
        """TFaaS's status, plus what this process has loaded (TensorFlow never)."""
        loaded = [m.name for m in await self._model_registry.get_models() if m.ready]
        return {"status": "ok", "server": "deepjet-nb", "version": __version__, "protocol": "OIP v2 + TFaaS",
                "models": sorted(loaded), "uptime_s": round(time.time() - self.started, 1), "pid": os.getpid(),
                "rss_mb": _rss_mb(), "tensorflow_imported": "tensorflow" in sys.modules,
                "onnxruntime_imported": "onnxruntime" in sys.modules,
                "batching": {"max_batch_size": self.options.max_batch_size,
                             "max_batch_time": self.options.max_batch_time},
                "workers": self.options.workers, "infer_needs_token": self.options.protect_infer}

    async def _served(self, name) -> _models.ServedModel:
        model = await self._model_registry.get_model(name)  # ModelNotFound → 404
        served = getattr(model, "served", None)
        if served is not None:
            return served
        # Parallel workers: the model runs in the workers; this process keeps its description only.
        path = Path(self.options.models) / name
        stamp = path.stat().st_mtime if path.exists() else 0.0
        cached = self._served_cache.get(name)
        if cached is None or cached[0] != stamp:
            try:
                cached = (stamp, await asyncio.to_thread(_models.open_served, path, name))
            except DeepJetError as err:
                raise MLServerError(f"model {name!r}: {err}", 422) from None
            self._served_cache[name] = cached
        return cached[1]


class _JSONBytes(Response):
    media_type = "application/json"


class _IndexAll:
    ready = False


def _checked_name(name, field="model"):
    try:
        return _models.check_name(name, field)
    except _models.RequestError as err:
        raise RequestRejected(err) from None


def _name_from_params(params):
    import json

    try:
        value = json.loads(params)
    except ValueError:
        raise RequestRejected(_models.RequestError("params", "not JSON")) from None
    if not isinstance(value, dict):
        raise RequestRejected(_models.RequestError("params", "must be a JSON object"))
    return value.get("name")


async def _field_bytes(form, name):
    value = form.get(name)
    if value is None:
        return None
    if hasattr(value, "read"):
        return await value.read()
    return str(value).encode()


def _rss_mb():
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


# ---------------------------------------------------------------------------------------------------------
# the guard: tokens and upload size


def _protected(method: str, path: str, protect_infer: bool) -> bool:
    if (method, path) == ("POST", "/upload") or (method == "DELETE" and path.startswith("/delete/")):
        return True
    if method == "POST" and path.startswith("/v2/repository/models/") and path.endswith(("/load", "/unload")):
        return True
    return protect_infer and method == "POST" and (path == "/json" or (path.startswith("/v2/models/")
                                                                      and path.endswith("/infer")))


class _Guard:
    """ASGI middleware: bearer token on the protected routes; 413 for a request body over the upload limit
    (411 for an upload without a length; bodies are also counted as they arrive)."""

    def __init__(self, app, token: str | None, protect_infer: bool, max_upload_bytes: int):
        self.app = app
        self.token = token
        self.protect_infer = protect_infer
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if path.endswith(("/infer_stream", "/generate_stream")) and path.startswith("/v2/models/"):
            # MLServer answers a failed stream with a 200 and a broken connection; the runtime has no streams.
            return await _reply(send, 404, f"{path}: streaming inference is not served (use .../infer)")
        if _protected(method, path, self.protect_infer):
            if self.token is None:
                return await _reply(send, 403, f"{method} {path}: disabled (the server was started without "
                                               f"--token-file)")
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
                return await _reply(send, 401, "Authorization: a valid bearer token is required",
                                    [(b"www-authenticate", b"Bearer")])
        if path == "/v2/repository/index" and method == "POST" and _empty_body(scope):
            # tritonclient's HTTP client posts no body here; MLServer wants a JSON object ({} = every model).
            scope, receive = _with_body(scope, b"{}")
        if method in ("POST", "PUT"):
            length = dict(scope["headers"]).get(b"content-length")
            if length is None and path == "/upload":
                return await _reply(send, 411, "Content-Length: required for uploads")
            try:
                length = int(length) if length is not None else 0
            except ValueError:
                return await _reply(send, 400, "Content-Length: not a number")
            if length > self.max_upload_bytes:
                return await _reply(send, 413, f"request of {length} bytes: over the limit of "
                                               f"{self.max_upload_bytes} bytes")
            receive = _counted(receive, self.max_upload_bytes)
        try:
            await self.app(scope, receive, send)
        except _TooLarge:
            await _reply(send, 413, f"upload: over the limit of {self.max_upload_bytes} bytes")


def _empty_body(scope):
    headers = dict(scope["headers"])
    return headers.get(b"content-length", b"0") in (b"0", b"") and b"transfer-encoding" not in headers


def _with_body(scope, body):
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-type")]
    headers += [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return {**scope, "headers": headers}, receive


class _TooLarge(Exception):
    pass


def _counted(receive, limit):
    seen = 0

    async def inner():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _TooLarge
        return message

    return inner


async def _reply(send, status, message, headers=()):
    import json

    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------------------------------------
# gRPC: the same token check


class _TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses RepositoryModelLoad/Unload (and ModelInfer with ``protect_infer``) without the bearer token in
    the ``authorization`` metadata."""

    def __init__(self, token, protect_infer):
        self.token = token
        self.methods = {"RepositoryModelLoad", "RepositoryModelUnload", *(["ModelInfer"] if protect_infer else [])}

    async def intercept_service(self, continuation, details):
        method = details.method.rsplit("/", 1)[-1]
        if method in self.methods:
            metadata = dict(details.invocation_metadata or ())
            if self.token is None:
                return _deny(grpc.StatusCode.PERMISSION_DENIED, f"{method}: disabled (no --token-file)")
            if not hmac.compare_digest(str(metadata.get("authorization", "")).encode(),
                                       f"Bearer {self.token}".encode()):
                return _deny(grpc.StatusCode.UNAUTHENTICATED, f"{method}: a valid bearer token is required "
                                                              f"(metadata 'authorization')")
        return await continuation(details)


def _deny(code, message):
    async def abort(request, context):
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class _GRPCServer(GRPCServer):
    """MLServer's gRPC server with one more interceptor (it builds its list in ``_create_server``)."""

    def __init__(self, *args, interceptor, **kwargs):
        super().__init__(*args, **kwargs)
        self._extra_interceptor = interceptor

    @property
    def _interceptors(self):
        return self.__interceptors

    @_interceptors.setter
    def _interceptors(self, value):
        self.__interceptors = [self._extra_interceptor, *value]
