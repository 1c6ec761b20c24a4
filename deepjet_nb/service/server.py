"""The model server: MLServer (Open Inference Protocol v2 over REST and gRPC) with TFaaS's routes beside it.

:func:`serve` runs an ``mlserver.MLServer`` whose model repository is a folder of exported model directories
(:class:`~deepjet_nb.service.runtime.FolderRepository`, each model run by
:class:`~deepjet_nb.service.runtime.DeepJetRuntime`), and changes MLServer's FastAPI app and gRPC server:

- inference (REST ``/v2/models/{m}[/versions/{v}]/infer`` and ``/generate``, gRPC ``ModelInfer``) is ours:
  decoded and checked by :mod:`~deepjet_nb.service.tensors` (JSON, and Triton's binary tensor data
  extension over REST), so every bad request is a 4xx ``{"error": ...}`` (gRPC ``INVALID_ARGUMENT``);
- TFaaS's routes: ``POST /upload`` (multipart: ``model``, ``params``, ``labels``), ``POST /json``
  (``{"keys", "values", "model"}``), ``GET /models``, ``DELETE /delete/{model}``, ``GET /status``;
- the :class:`~deepjet_nb.service.guard.Guard` in front of every REST route (the bearer token by
  default-deny, body limits) and its gRPC twin (:class:`~deepjet_nb.service.grpc_api.TokenInterceptor`);
- every error of the app, FastAPI's validation errors included, is ``{"error": "<message>"}``.

MLServer's custom handlers belong to one model; TFaaS's routes serve every model, so they are routes of the
server's app. The server process imports ONNX Runtime, never TensorFlow (``GET /status`` says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from mlserver import MLServer
from mlserver.errors import MLServerError, ModelNotFound
from mlserver.settings import Settings
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import DeepJetError
from . import models as _models
from . import tensors, uploads
from .grpc_api import GRPCServer, OneLineErrors, TokenInterceptor
from .guard import Guard
from .workers import bound_restarts, install_worker_setup
from .runtime import DeepJetRuntime, FolderRepository, RequestRejected, checked_request

__all__ = ["ServeOptions", "serve", "TFaaSRequest", "MAX_UPLOAD_BYTES", "MAX_REQUEST_BYTES"]

MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # 200 MB, as the command line's default
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # any other body: 64 MB, some 25,000 DeepJet jets in binary FP32
log = logging.getLogger("deepjet_nb.service")
OUTPUT_NAME = "probabilities"
_TENSOR_SCHEMA = {"type": "object", "required": ["name", "datatype", "shape", "data"], "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}},
    "data": {"type": "array"}, "parameters": {"type": "object"}}}
_INFER_SCHEMA = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"}, "parameters": {"type": "object"},
    "inputs": {"type": "array", "items": _TENSOR_SCHEMA},
    "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "parameters": {"type": "object"}}}}}}


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
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_batch_size: int = 1  # no batching: measured faster for single rows on a 2-core box (docs/serving.md)
    max_batch_time: float = 0.002
    workers: int = 0
    threads: int = 1
    upload_limits: uploads.UploadLimits = uploads.UploadLimits()


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
    _log_to_stderr()
    for name in ("mlserver", "mlserver.grpc"):
        logging.getLogger(name).addFilter(OneLineErrors())
    uploads.recover(options.models)  # before any model loads: stale scratch, interrupted replacements
    if options.workers:
        install_worker_setup()
    server = _Server(_settings(options), options)
    if options.workers:
        bound_restarts(server._inference_pool_registry._default_pool)
    await server.start(await server._model_repository.list())


def _log_to_stderr():
    """This package's log lines (refused requests, installs, repairs) on stderr, beside MLServer's."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s [deepjet-nb] %(levelname)s - %(message)s"))
    root = logging.getLogger("deepjet_nb")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def _settings(options: ServeOptions) -> Settings:
    return Settings(
        debug=False, host=options.host, http_port=options.http_port, grpc_port=options.grpc_port,
        parallel_workers=options.workers, metrics_endpoint=None, gzip_enabled=False,
        server_name="deepjet-nb", server_version=__version__,
        model_repository_root=str(options.models), model_repository_implementation=FolderRepository,
        model_repository_implementation_args={"max_batch_size": options.max_batch_size,
                                              "max_batch_time": options.max_batch_time,
                                              "threads": options.threads})


class _Server(MLServer):
    """MLServer with our inference routes, the TFaaS routes, the guard and the gRPC servicer."""

    def __init__(self, settings: Settings, options: ServeOptions):
        self.options = options
        self.started = time.time()
        self._write_lock = asyncio.Lock()  # uploads, deletes, loads: one at a time
        self._served_cache: dict[str, tuple[float, _models.ServedModel]] = {}
        self._unloaded: set[str] = set()  # models unloaded through the repository API: not expected ready
        super().__init__(settings)
        self._data_plane.ready = self.ready  # REST /v2/health/ready and gRPC ServerReady
        handlers = self._model_repository_handlers
        handlers.load, handlers.unload = self._tracked(handlers.load, False), self._tracked(handlers.unload, True)
        app = self._rest_server._app
        ours = ("/infer", "/generate")  # MLServer's inference routes give way to ours
        app.router.routes[:] = [r for r in app.router.routes if not getattr(r, "path", "").endswith(ours)]
        infer_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": _INFER_SCHEMA}}}}
        json_body = {"requestBody": {"required": True, "content": {
            "application/json": {"schema": TFaaSRequest.model_json_schema()}}}}
        upload_body = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["model"], "properties": {
                "model": {"type": "string", "format": "binary"}, "params": {"type": "string", "format": "binary"},
                "labels": {"type": "string", "format": "binary"}, "name": {"type": "string"}}}}}}}
        routes = [(f"/v2/models/{{model_name}}{version}/{verb}", self.infer, "POST", infer_body)
                  for version in ("", "/versions/{model_version}") for verb in ("infer", "generate")]
        routes += [("/upload", self.upload, "POST", upload_body), ("/json", self.json, "POST", json_body),
                   ("/models", self.models, "GET", None), ("/delete/{model}", self.delete, "DELETE", None),
                   ("/status", self.status, "GET", None)]
        for path, endpoint, method, extra in routes:
            app.add_api_route(path, endpoint, methods=[method], openapi_extra=extra)
        app.add_exception_handler(MLServerError, _refused)
        app.add_exception_handler(RequestValidationError, _validation_error)
        app.add_exception_handler(HTTPException, _http_error)
        app.add_exception_handler(Exception, _server_fault)
        app.add_middleware(Guard, token=options.token, protect_infer=options.protect_infer,
                           max_upload_bytes=options.max_upload_bytes, max_request_bytes=options.max_request_bytes)

    def _create_servers(self):
        super()._create_servers()
        self._grpc_server = GRPCServer(self._settings, self._data_plane, self._model_repository_handlers,
                                       interceptor=TokenInterceptor(self.options.token, self.options.protect_infer),
                                       infer=self.infer_tensors, max_message_bytes=self.options.max_request_bytes)

    async def start(self, models_settings=()):
        servers = asyncio.gather(self._rest_server.start(), self._grpc_server.start())
        for settings in models_settings:  # one bad model directory must not stop the others
            try:
                await self._model_registry.load(settings)
            except Exception as err:
                log.error("model %r in %s not loaded: %s", settings.name, settings.parameters.uri, err)
        await servers

    async def ready(self) -> bool:
        """Ready when every model of the served folder is (those unloaded on purpose aside): a model that is
        loading, failed to load or has no live worker makes the server unready, as Triton's strict readiness."""
        states = {m.name: m.ready for m in await self._model_registry.get_models()}
        expected = set(_models.list_models(self.options.models)) - self._unloaded
        return all(states.get(name, False) for name in expected) and all(states.values())

    def _tracked(self, call, unloaded):
        async def tracked(name):
            result = await call(name)
            (self._unloaded.add if unloaded else self._unloaded.discard)(name)
            return result

        return tracked

    # -- inference --------------------------------------------------------------------------------------

    async def infer(self, request: Request, model_name: str, model_version: str | None = None):
        """OIP REST inference: JSON, or Triton's binary tensor data extension (request and response)."""
        try:
            decoded = tensors.decode_rest(await request.body(), request.headers.get(tensors.HEADER_LENGTH))
        except tensors.RequestError as err:
            raise RequestRejected(err) from None
        name, probs = await self.infer_tensors(model_name, model_version, decoded)
        body, header_length = tensors.encode_rest(model_name, decoded, {name: probs})
        if header_length is None:
            return _JSONBytes(body)
        return Response(body, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(header_length)})

    async def infer_tensors(self, name: str, version: str | None,
                            request: tensors.InferRequest) -> tuple[str, np.ndarray]:
        """(output name, probabilities) of a decoded request, REST's or gRPC's."""
        for i, output in enumerate(request.outputs or ()):
            if output != OUTPUT_NAME:
                raise RequestRejected(tensors.RequestError(f"outputs[{i}].name", f"{output[:64]!r}: the model's "
                                                                                 f"only output is {OUTPUT_NAME!r}"))
        return OUTPUT_NAME, await self._probabilities(name, version,
                                                      lambda served: _models.arrays_from_tensors(served,
                                                                                                 request.inputs))

    async def _probabilities(self, name, version, make_feed) -> np.ndarray:
        """float32 ``(n, n_classes)`` of the model ``name`` on ``make_feed(served model)``."""
        model = await self._model_registry.get_model(name, version)  # ModelNotFound → 404
        if not model.ready:
            raise MLServerError(f"model {name!r} is not ready (loading, or its load failed)", 503)
        served = model.served if isinstance(model, DeepJetRuntime) else await self._served(name)
        try:
            feed = make_feed(served)
        except _models.RequestError as err:
            raise RequestRejected(err) from None
        if isinstance(model, DeepJetRuntime):  # in this process: straight to its batcher, the inputs are checked
            return await model.probabilities(feed)
        # parallel workers: through MLServer's data plane to the worker processes
        output = (await self._data_plane.infer(checked_request(feed), name, version)).outputs[0]
        return np.asarray(getattr(output.data, "root", output.data), np.float32).reshape(output.shape)

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
        single = []

        def feed(served):
            arrays, one = _models.arrays_from_keys(served, body["keys"], body["values"])
            single.append(one)
            return arrays

        probs = await self._probabilities(name, None, feed)
        served = await self._served(name)
        rows = probs.tolist()
        return _JSONBytes(orjson.dumps({"model": name, "classes": served.classes,
                                        "probabilities": rows[0] if single[0] else rows}))

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
            form = await request.form(max_files=4, max_fields=8)
        except Exception as err:  # malformed multipart
            raise RequestRejected(_models.RequestError("body", f"not a multipart form ({err})")) from None
        try:
            model = form.get("model")
            if model is None or not hasattr(model, "read"):
                raise RequestRejected(_models.RequestError("model", "missing: upload the model as a file field"))
            params = await _field_bytes(form, "params")
            labels = await _field_bytes(form, "labels")
            name = form.get("name")
            if name is None and params is not None:
                name = _name_from_params(params)
            if name is None:
                raise RequestRejected(_models.RequestError("name", "missing: give a name field or params.json "
                                                                   "with a \"name\""))
            name = _checked_name(name, "name")
            async with self._write_lock:
                try:  # from the spooled file, as a stream: a tarball is checked member by member
                    await asyncio.to_thread(uploads.install, self.options.models, name, model.file,
                                            filename=model.filename or "", params=params, labels=labels,
                                            limits=self.options.upload_limits,
                                            max_batch_size=self.options.max_batch_size)
                except _models.RequestError as err:
                    raise RequestRejected(err) from None
                self._served_cache.pop(name, None)
                await self._model_repository_handlers.load(name)
        finally:
            await form.close()  # the spooled files
        log.info("installed model %r (%s)", name, model.filename)
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
            await asyncio.to_thread(uploads.remove, self.options.models, name)
        log.info("deleted model %r", name)
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


async def _refused(request, exc):
    log.info("refused %s %s: %d %s", request.method, request.url.path[:200], exc.status_code,
             " ".join(str(exc).split())[:300])
    return JSONResponse({"error": str(exc)}, status_code=exc.status_code)


async def _validation_error(request, exc):
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5])
    log.info("refused %s %s: 400 %s", request.method, request.url.path[:200], problems[:300])
    return JSONResponse({"error": problems or "invalid request"}, status_code=400)


async def _http_error(request, exc):
    log.info("refused %s %s: %d %s", request.method, request.url.path[:200], exc.status_code, str(exc.detail)[:200])
    return JSONResponse({"error": f"{request.method} {request.url.path[:200]}: {exc.detail}"},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _server_fault(request, exc):
    log.error("%s %s: server fault", request.method, request.url.path[:200], exc_info=exc)
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has the details"},
                        status_code=500)


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
