"""The client of the model service: predictions "as simply as calling a function", inside a loop over events.

>>> client = Client("http://127.0.0.1:8080")                                   # doctest: +SKIP
>>> client.predict("deepjet", jet)        # one raw jet: branch -> number or list  # doctest: +SKIP
{'B': 0.71, 'BB': 0.02, 'LeptB': 0.01, 'C': 0.11, 'UDS': 0.09, 'G': 0.06}
>>> client.predict("deepjet", jets)       # many: a list of such dicts             # doctest: +SKIP
{'B': array([...]), ...}
>>> client.predict("deepjet", {"global": g, "cpf": c, "npf": n, "sv": s})  # converted arrays  # doctest: +SKIP

Converted arrays go through the Open Inference Protocol (``POST /v2/models/{model}/infer``, with Triton's binary
data extension: the floats travel as bytes, not JSON), raw jets through
TFaaS's ``POST /json`` with their branch names as ``keys`` (converted on the server by the model card). One
``requests.Session`` keeps the connections open, so a call in a loop costs one round trip. Every failure is a
:class:`~deepjet_nb.errors.ServiceError` with the server's message (which names the field at fault).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ServiceError

__all__ = ["Client"]


class Client:
    """A connection pool to one model server at ``url``; ``token`` is sent as a bearer token (needed for
    :meth:`upload` and :meth:`delete`, and for predictions when the server protects them); ``timeout`` seconds
    per request."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0, pool: int = 4):
        import requests
        from requests.adapters import HTTPAdapter

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._models: dict[str, dict] = {}

    # -- predictions ------------------------------------------------------------------------------------

    def predict(self, model: str, features) -> dict:
        """Class probabilities of one jet or of many.

        ``features``: converted arrays (input group → array, ``(*shape)`` for one jet or ``(n, *shape)``), or
        raw DeepNTuples branches of one jet (branch → number, or list for an object branch), or a list of such
        jets. Returns class → float for one jet, class → float32 array ``(n,)`` for many.
        """
        info = self.model(model)
        groups = {i["name"]: tuple(i["shape"][1:]) for i in info["inputs"]}
        if isinstance(features, Mapping) and features and set(features) <= set(groups):
            return self._predict_arrays(model, info, groups, features)
        if isinstance(features, Mapping):
            return self._predict_raw(model, [features], single=True)
        if isinstance(features, Sequence) and features and all(isinstance(j, Mapping) for j in features):
            return self._predict_raw(model, list(features), single=False)
        raise ServiceError(f"predict({model!r}): features must map input groups {list(groups)} to arrays, or "
                           f"branches to values (one jet), or be a list of jets")

    def _predict_arrays(self, model, info, groups, features):
        arrays = {g: np.ascontiguousarray(features[g], dtype="<f4") for g in groups if g in features}
        single = all(a.shape == groups[g] for g, a in arrays.items())
        inputs, blobs = [], []
        for g, a in arrays.items():  # Triton's binary data extension: no float goes through JSON
            a = a[None] if single else a
            blobs.append(a.tobytes())
            inputs.append({"name": g, "datatype": "FP32", "shape": list(a.shape),
                           "parameters": {"binary_data_size": len(blobs[-1])}})
        head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
        response = self._call("POST", f"/v2/models/{model}/infer", data=head + b"".join(blobs), raw=True,
                              headers={"Inference-Header-Content-Length": str(len(head)),
                                       "Content-Type": "application/octet-stream"})
        size = int(response.headers.get("Inference-Header-Content-Length", len(response.content)))
        output = json.loads(response.content[:size])["outputs"][0]
        data = output.get("data")
        probs = (np.asarray(data, np.float32) if data is not None else np.frombuffer(response.content[size:], "<f4"))
        return self._as_dict(info["classes"], probs.reshape(output["shape"]), single)

    def _predict_raw(self, model, jets, single):
        keys = list(jets[0])
        for i, jet in enumerate(jets):
            if list(jet) != keys and set(jet) != set(keys):
                raise ServiceError(f"predict({model!r}): jet {i} has other branches than jet 0")
        rows = [[_plain(jet[k]) for k in keys] for jet in jets]
        reply = self._call("POST", "/json", json={"model": model, "keys": keys, "values": rows})
        probs = np.asarray(reply["probabilities"], dtype=np.float32).reshape(len(jets), -1)
        return self._as_dict(reply["classes"], probs, single)

    @staticmethod
    def _as_dict(classes, probs, single):
        if single:
            return {c: float(p) for c, p in zip(classes, probs[0])}
        return dict(zip(classes, np.ascontiguousarray(probs.T)))

    # -- the repository ---------------------------------------------------------------------------------

    def models(self) -> list[dict]:
        """Every model of the server: name, state and, when loaded, classes, inputs, keys (``GET /models``)."""
        models = self._call("GET", "/models")
        self._models = {m["name"]: m for m in models if m.get("state") == "READY"}
        return models

    def model(self, name: str) -> dict:
        """The description of one loaded model (cached)."""
        if name not in self._models:
            self.models()
        if name not in self._models:
            raise ServiceError(f"{self.url}: no loaded model {name!r} (models: {sorted(self._models)})")
        return self._models[name]

    def upload(self, model: str | os.PathLike, name: str | None = None, *, labels: Sequence[str] | None = None,
               params: Mapping | None = None) -> dict:
        """Upload ``model``: an exported model directory (sent as a tarball) or a bare ``.onnx`` file (then
        ``labels``, the class names, are needed). ``name`` defaults to the directory or file stem. Returns the
        server's description of the installed model."""
        path = Path(model)
        name = name or (path.name if path.is_dir() else path.stem)
        if path.is_dir():
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                tar.add(path, arcname=name)
            files = {"model": (f"{name}.tar.gz", buffer.getvalue(), "application/gzip")}
        elif path.is_file():
            files = {"model": (path.name, path.read_bytes(), "application/octet-stream")}
        else:
            raise ServiceError(f"{path}: no such model directory or ONNX file")
        params = {"name": name, **(params or {})}
        files["params"] = ("params.json", json.dumps(params).encode(), "application/json")
        if labels is not None:
            files["labels"] = ("labels.txt", "\n".join(labels).encode() + b"\n", "text/plain")
        reply = self._call("POST", "/upload", files=files)
        self._models.pop(name, None)
        return reply

    def delete(self, name: str) -> dict:
        """Unload and remove the model ``name``."""
        self._models.pop(name, None)
        return self._call("DELETE", f"/delete/{name}")

    def status(self) -> dict:
        """The server's ``/status``."""
        return self._call("GET", "/status")

    # -- transport --------------------------------------------------------------------------------------

    def _call(self, method, path, raw=False, **kwargs):
        """The JSON reply of ``method path`` (the response itself with ``raw``); :class:`ServiceError` with the
        server's message for a 4xx or 5xx."""
        import requests

        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise ServiceError(f"{self.url}{path}: {type(err).__name__}: {err}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                message = body.get("error") or body.get("detail") or body
            except ValueError:
                message = response.text[:300]
            raise ServiceError(f"{method} {self.url}{path}: HTTP {response.status_code}: {message}")
        if raw:
            return response
        try:
            return response.json()
        except ValueError:
            raise ServiceError(f"{method} {self.url}{path}: the reply is not JSON") from None

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<Client {self.url}>"


def _plain(value):
    """JSON-ready: numpy scalars and arrays (awkward lists too) to Python numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
