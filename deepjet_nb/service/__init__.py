"""ML as a service: exported model directories served over HTTP and gRPC, and the client of an analysis.

The server is MLServer (the Open Inference Protocol v2 server that KServe runs as its Python runtime) with
a runtime of ours on ONNX Runtime, and TFaaS's REST routes beside the OIP ones::

    deepjet-nb serve --models DIR [--http-port 8080] [--grpc-port 8081] [--token-file FILE] [--workers N]

From an analysis loop, with nothing but ``requests`` and numpy::

    from deepjet_nb.service import Client
    client = Client("http://127.0.0.1:8080")
    client.predict("deepjet", {"jet_pt": 48.2, "jet_eta": 0.3, ..., "Cpfcan_ptrel": [0.2, 0.05]})
    # {"B": 0.71, "BB": 0.02, ...}

Modules: ``tensors`` (OIP tensors decoded and checked, JSON and binary; no HTTP), ``models`` (the served
folder, requests → converted inputs), ``uploads`` (uploads bounded and checked, crash-safe replacement,
start-up repair), ``batching`` (merged requests, retried one by one when a merge fails), ``runtime`` (the
MLServer runtime and model repository), ``guard`` (REST tokens by default-deny, body limits), ``grpc_api``
(gRPC inference, tokens, error codes), ``workers`` (parallel workers that start, stop and give up),
``server`` (MLServer + our inference routes + TFaaS routes), ``client`` (:class:`Client`), ``process``
(start and stop a server in a subprocess: tests, benchmarks, notebooks), ``triton`` (the same model
directory laid out for Triton). Importing this package imports neither MLServer nor ONNX Runtime; the
operator's guide is ``docs/serving.md``.
"""

from __future__ import annotations

from .client import Client
from .process import ServerProcess

__all__ = ["Client", "ServerProcess", "register_cli"]


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb serve``."""
    from .cli import register

    register(subparsers)
