"""``deepjet-nb serve``: the command line of the model server (parsing only; MLServer loads in ``_cli``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ArgumentError

MAX_UPLOAD_MB = 200


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve exported models: Open Inference Protocol v2 (REST, gRPC) and TFaaS's REST routes",
        description="Serve every exported model directory under --models with MLServer (ONNX Runtime inside; "
                    "TensorFlow is never imported): OIP v2 over REST and gRPC (health, metadata, infer, "
                    "repository index/load/unload) and TFaaS's /upload, /json, /models, /delete/{model}, "
                    "/status. Concurrent requests for one model are batched. Upload, delete, load and unload "
                    "need the bearer token of --token-file (without it they are disabled).")
    p.add_argument("--models", required=True, metavar="DIR", help="folder of model directories (one per model)")
    p.add_argument("--http-port", type=int, default=8080, metavar="PORT", help="REST port (default 8080)")
    p.add_argument("--grpc-port", type=int, default=8081, metavar="PORT", help="gRPC port (default 8081)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--token-file", metavar="FILE", help="file holding the bearer token (first line)")
    p.add_argument("--protect-infer", action="store_true", help="require the token for inference too")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="parallel inference worker processes (MLServer's parallel_workers; default 0: inference "
                        "in the server process)")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="ONNX Runtime threads per model (default 1)")
    p.add_argument("--max-batch-size", type=int, default=32, metavar="N",
                   help="requests merged into one batch at most (default 32; 1 disables batching)")
    p.add_argument("--max-batch-time", type=float, default=0.002, metavar="S",
                   help="seconds a request waits for others to batch with (default 0.002)")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, metavar="MB",
                   help=f"largest accepted upload (default {MAX_UPLOAD_MB}); larger ones get 413")
    p.add_argument("--triton-layout", metavar="REPO",
                   help="write every model as a Triton model repository entry (config.pbtxt, 1/model.onnx) under "
                        "REPO and exit, without serving")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    models = Path(args.models)
    if not models.is_dir():
        raise ArgumentError(f"--models {models}: no such directory")
    if args.triton_layout:
        from .models import list_models
        from .triton import triton_layout

        for name, path in list_models(models).items():
            print(f"deepjet-nb serve: {path} → {triton_layout(path, args.triton_layout, name)}")
        return 0
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip().splitlines()[0].strip()
        except (OSError, IndexError):
            raise ArgumentError(f"--token-file {args.token_file}: cannot read a token from it") from None
        if len(token) < 8:
            raise ArgumentError(f"--token-file {args.token_file}: the token must have at least 8 characters")
    for name in ("http_port", "grpc_port"):
        if not 0 < getattr(args, name) < 65536:
            raise ArgumentError(f"--{name.replace('_', '-')}: {getattr(args, name)} is not a port")
    if args.workers < 0 or args.threads < 1 or args.max_batch_size < 1 or args.max_batch_time < 0:
        raise ArgumentError("serve: --workers >= 0, --threads >= 1, --max-batch-size >= 1, --max-batch-time >= 0")
    from .server import ServeOptions, serve

    serve(ServeOptions(models=models, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                       token=token, protect_infer=args.protect_infer,
                       max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_batch_size=args.max_batch_size,
                       max_batch_time=args.max_batch_time, workers=args.workers, threads=args.threads))
    return 0
