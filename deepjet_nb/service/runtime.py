"""The MLServer runtime of an exported model, and the model repository that finds them in a folder.

:class:`DeepJetRuntime` (an ``mlserver.MLModel``) serves one model directory through ONNX Runtime (the
deploy :class:`~deepjet_nb.predictor.Predictor`; TensorFlow is never imported). Each request is checked and
turned into converted inputs first (raw jets are converted here, with the model card's kernels and
normalisation); only valid requests reach the batcher (:class:`~deepjet_nb.service.batching.Batcher`), so
one malformed request never fails the batch it would have joined, and a merged call that fails is run again
request by request. Batches of up to ``max_batch_size`` requests, waiting at most
``max_batch_time`` seconds, run as one ONNX Runtime call; a request of :data:`DIRECT_ROWS` jets or more is a
batch already and runs at once. Large calls run on a thread per core (ONNX Runtime releases the GIL), small
ones on the event loop, where a thread hop would cost more than the inference.

:class:`FolderRepository` is the ``model_repository_implementation`` of the server: every model directory
under the served folder (:func:`deepjet_nb.service.models.list_models`) is a model named after its
directory, with this runtime; the directories need no ``model-settings.json``.
"""

from __future__ import annotations

import asyncio

import numpy as np
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.repository import ModelRepository
from mlserver.settings import ModelParameters, ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor, RequestInput, ResponseOutput

from ..predictor import OUTPUT
from ..errors import DeepJetError
from . import models as _models
from .batching import Batcher

__all__ = ["DeepJetRuntime", "FolderRepository", "model_settings", "checked_request", "RequestRejected",
           "INLINE_VALUES"]

INLINE_VALUES = 20_000  # requests with fewer input values run on the event loop; larger ones on a thread
DIRECT_ROWS = 64  # requests of this many jets or more are a batch already: they skip the batcher
_EXECUTOR = None  # one inference thread per core, shared by the models of the process


class RequestRejected(MLServerError):
    """A request refused with a 4xx naming the field (MLServer turns it into the REST status and gRPC code)."""

    def __init__(self, err: _models.RequestError):
        super().__init__(str(err), err.status)
        self.field = err.field


def model_settings(name: str, path, *, max_batch_size: int = 32, max_batch_time: float = 0.002,
                   threads: int = 1, workers: int | None = None) -> ModelSettings:
    """MLServer settings of the model directory ``path`` served as ``name``."""
    extra = {"max_batch_size": int(max_batch_size), "max_batch_time": float(max_batch_time), "threads": int(threads)}
    kwargs = {} if workers is None else {"parallel_workers": workers}
    return ModelSettings(name=name, implementation=DeepJetRuntime, platform="onnxruntime",
                         parameters=ModelParameters(uri=str(path), extra=extra), **kwargs)


def checked_request(feed: dict[str, np.ndarray]) -> InferenceRequest:
    """An internal request of checked, converted inputs (numpy data; built without pydantic's validation,
    which would cost more than the inference of a single jet)."""
    return InferenceRequest.model_construct(
        inputs=[RequestInput.model_construct(name=g, datatype="FP32", shape=list(x.shape), data=x, parameters=None)
                for g, x in feed.items()], outputs=None, parameters=None, id=None)


class DeepJetRuntime(MLModel):
    """One served model directory (MLServer runtime). Inputs: every input group of the model (FP32,
    ``[n, *shape]``), or one BYTES input ``jets`` of raw jets (one JSON object of branches per jet); output
    ``probabilities`` FP32 ``[n, n_classes]`` (columns in the card's class order, also in the metadata)."""

    async def load(self) -> bool:
        extra = self.settings.parameters.extra or {}
        try:
            self.served = _models.open_served(self.settings.parameters.uri, self.name,
                                              threads=int(extra.get("threads", 1)))
        except DeepJetError as err:
            raise MLServerError(f"model {self.name!r}: {err}", 422) from None
        self.inputs = [MetadataTensor(name=g, datatype="FP32", shape=[-1, *s]) for g, s in self.served.shapes.items()]
        # The class names ride in the output's parameters: an OIP-only client can label the columns.
        self.outputs = [MetadataTensor(name=OUTPUT, datatype="FP32", shape=[-1, len(self.served.classes)],
                                       parameters={"classes": ",".join(self.served.classes)})]
        size, wait = int(extra.get("max_batch_size", 0)), float(extra.get("max_batch_time", 0.0))
        # Our batcher, driven after the checks (only valid requests are merged) rather than MLServer's load
        # hook, which batches before the checks and lets one failed merge fail every request in it.
        self._batcher = Batcher(self._run, size, wait, self.name) if size > 1 and wait > 0 else None
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        response = await self.predict_checked(self.check(payload))
        response.id = payload.id
        return response

    async def predict_checked(self, feed: dict[str, np.ndarray]) -> InferenceResponse:
        """The response of checked, converted inputs (``check``, or the TFaaS route), batched with others."""
        probs = await self.probabilities(feed)
        return InferenceResponse.model_construct(model_name=self.name, model_version=None, id=None, parameters=None,
                                                 outputs=[ResponseOutput(name=OUTPUT, datatype="FP32",
                                                                         shape=list(probs.shape),
                                                                         data=probs.ravel().tolist())])

    async def probabilities(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """float32 ``(n, n_classes)`` of checked, converted inputs, batched with other requests."""
        if self._batcher is None or len(next(iter(feed.values()))) >= DIRECT_ROWS:
            return await self._run(feed)
        return await self._batcher.predict(feed)

    def check(self, payload: InferenceRequest) -> dict[str, np.ndarray]:
        """The converted inputs of ``payload``, or :class:`RequestRejected` naming the field at fault."""
        try:
            tensors = [(i.name, i.datatype, i.shape, getattr(i.data, "root", i.data)) for i in payload.inputs]
            return _models.arrays_from_tensors(self.served, tensors)
        except _models.RequestError as err:
            raise RequestRejected(err) from None

    async def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        values = sum(x.size for x in feed.values())
        if values < INLINE_VALUES:
            return self.served.run(feed)
        # ONNX Runtime releases the GIL: the event loop reads the next requests meanwhile
        return await asyncio.get_running_loop().run_in_executor(_executor(), self.served.run, feed)


def _executor():
    global _EXECUTOR
    if _EXECUTOR is None:
        import os
        from concurrent.futures import ThreadPoolExecutor

        _EXECUTOR = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="deepjet-nb-infer")
    return _EXECUTOR


class FolderRepository(ModelRepository):
    """MLServer model repository over a folder of model directories (each subdirectory one model)."""

    def __init__(self, root: str, max_batch_size: int = 32, max_batch_time: float = 0.002, threads: int = 1,
                 workers: int | None = None):
        self._root = root
        self._options = {"max_batch_size": max_batch_size, "max_batch_time": max_batch_time, "threads": threads,
                         "workers": workers}

    async def list(self) -> list[ModelSettings]:
        return [model_settings(name, path, **self._options)
                for name, path in _models.list_models(self._root).items()]

    async def find(self, name: str) -> list[ModelSettings]:
        from mlserver.errors import ModelNotFound

        try:
            _models.check_name(name)
        except _models.RequestError as err:
            raise RequestRejected(err) from None
        found = [s for s in await self.list() if s.name == name]
        if not found:
            raise ModelNotFound(name)
        return found
