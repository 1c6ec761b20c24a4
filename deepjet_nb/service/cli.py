"""``deepjet-nb serve``: the command line of the model server (parsing only; MLServer loads in ``_cli``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ArgumentError

MAX_UPLOAD_MB = 200
MAX_REQUEST_MB = 64


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve exported models: Open Inference Protocol v2 (REST, gRPC) and TFaaS's REST routes",
        description="Serve every exported model directory under --models with MLServer (ONNX Runtime inside; "
                    "TensorFlow is never imported): OIP v2 over REST and gRPC (health, metadata, infer, "
                    "repository index/load/unload) and TFaaS's /upload, /json, /models, /delete/{model}, "
                    "/status. Concurrent requests for one model can be batched (--max-batch-size). Every route but "
                    "health, metadata, the model index, /models, /status and inference needs the bearer token of "
                    "--token-file (without it they are disabled); see docs/serving.md.")
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
    p.add_argument("--max-batch-size", type=int, default=1, metavar="N",
                   help="requests merged into one batch at most (default 1: no batching, measured faster for "
                        "single rows on a small CPU box; 32 pays for heavier models such as DeepJet)")
    p.add_argument("--max-batch-time", type=float, default=0.002, metavar="S",
                   help="seconds a request waits for others to batch with (default 0.002)")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, metavar="MB",
                   help=f"largest accepted upload (default {MAX_UPLOAD_MB}); larger ones get 413")
    p.add_argument("--max-upload-members", type=int, default=64, metavar="N",
                   help="most entries in an uploaded tarball (default 64), counted as it streams")
    p.add_argument("--max-upload-expanded-mb", type=float, default=1024, metavar="MB",
                   help="largest expanded size of an uploaded tarball (default 1024; 512 per file), checked "
                        "from each entry's header before it is written, and against the models folder's free "
                        "space")
    p.add_argument("--max-request-mb", type=float, default=MAX_REQUEST_MB, metavar="MB",
                   help=f"largest accepted body of any other request, inference included, chunked or not, and "
                        f"largest gRPC message (default {MAX_REQUEST_MB}); larger ones get 413 "
                        f"(RESOURCE_EXHAUSTED)")
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
    if args.max_upload_mb <= 0 or args.max_request_mb <= 0:
        raise ArgumentError("serve: --max-upload-mb and --max-request-mb must be > 0")
    if args.workers < 0 or args.threads < 1 or args.max_batch_size < 1 or args.max_batch_time < 0:
        raise ArgumentError("serve: --workers >= 0, --threads >= 1, --max-batch-size >= 1, --max-batch-time >= 0")
    from .server import ServeOptions, serve
    from .uploads import UploadLimits

    if args.max_upload_members < 1 or args.max_upload_expanded_mb <= 0:
        raise ArgumentError("serve: --max-upload-members >= 1 and --max-upload-expanded-mb > 0")
    expanded = int(args.max_upload_expanded_mb * 2**20)
    limits = UploadLimits(members=args.max_upload_members, total_bytes=expanded,
                          member_bytes=min(UploadLimits.member_bytes, expanded))

    serve(ServeOptions(models=models, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                       token=token, protect_infer=args.protect_infer,
                       max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                       max_request_bytes=int(args.max_request_mb * 1024 * 1024), max_batch_size=args.max_batch_size,
                       max_batch_time=args.max_batch_time, workers=args.workers, threads=args.threads,
                       upload_limits=limits))
    return 0
