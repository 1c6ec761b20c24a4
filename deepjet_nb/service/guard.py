"""The ASGI guard in front of every REST route: tokens by default-deny, bounded bodies, JSON errors.

- **Tokens.** A route is public only if :func:`is_public` says so (health, metadata, readiness, the model
  index, ``/models``, ``/status``, the API docs, and inference unless ``protect_infer``); every other route,
  including any that MLServer adds in a later version and any path that matches no route, needs the bearer
  token (``401``), or is disabled (``403``) when the server has no token.
- **Bodies.** A body over its limit gets ``413`` before the route reads it: by its ``Content-Length``, or
  counted as it arrives when chunked; uploads have their own (larger) limit. A compressed body
  (``Content-Encoding: gzip`` or ``deflate``) is inflated here, at most to the same limit, so no route ever
  inflates a body itself.
- **Errors** are ``{"error": "<message>"}``, as everywhere in the Open Inference Protocol.
"""

from __future__ import annotations

import hmac
import logging
import re
import zlib

import orjson

__all__ = ["Guard", "is_public", "PUBLIC_ROUTES", "INFER_ROUTES"]

log = logging.getLogger("deepjet_nb.service")
_SEGMENT = r"[^/]+"
_MODEL = rf"/v2/models/{_SEGMENT}(?:/versions/{_SEGMENT})?"
# (methods, path pattern) of the routes anyone may call
PUBLIC_ROUTES = (
    (("GET", "HEAD"), r"/v2|/v2/health/live|/v2/health/ready|/v2/docs|/v2/docs/dataplane\.json"),
    (("GET", "HEAD"), rf"{_MODEL}(?:/ready|/docs|/docs/dataplane\.json)?"),
    (("GET", "HEAD"), r"/models|/status|/openapi\.json|/docs|/docs/oauth2-redirect|/redoc"),
    (("POST",), r"/v2/repository/index"),
)
# the inference routes: public unless the server protects inference
INFER_ROUTES = ((("POST",), rf"{_MODEL}/(?:infer|generate)|/json"),)
_STREAMS = re.compile(rf"{_MODEL}/(?:infer_stream|generate_stream)")


def _compiled(routes):
    return tuple((frozenset(methods), re.compile(pattern)) for methods, pattern in routes)


_PUBLIC, _INFER = _compiled(PUBLIC_ROUTES), _compiled(INFER_ROUTES)


def is_public(method: str, path: str, protect_infer: bool = False) -> bool:
    """Whether ``method path`` may be called without the token; everything else needs it."""
    routes = _PUBLIC if protect_infer else _PUBLIC + _INFER
    return any(method in methods and pattern.fullmatch(path) for methods, pattern in routes)


class Guard:
    """ASGI middleware: bearer token on every non-public route, body limits (``max_request_bytes``, and
    ``max_upload_bytes`` for ``/upload``), bounded inflation of compressed bodies."""

    def __init__(self, app, token: str | None, protect_infer: bool, max_upload_bytes: int, max_request_bytes: int):
        self.app = app
        self.token = token
        self.protect_infer = protect_infer
        self.max_upload_bytes = max_upload_bytes
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])
        refusal = self._refusal(method, path, headers)
        if refusal is not None:
            log.info("refused %s %s: %d %s", method, path[:200], refusal[0], refusal[1])
            return await reply(send, *refusal)
        if _STREAMS.fullmatch(path):
            # MLServer answers a failed stream with a 200 and a broken connection; the runtime has no streams.
            return await reply(send, 404, f"{path[:200]}: streaming inference is not served (use .../infer)")
        if path == "/v2/repository/index" and method == "POST" and _empty_body(headers):
            # tritonclient's HTTP client posts no body here; MLServer wants a JSON object ({} = every model).
            scope, receive = _with_body(scope, b"{}")
        if method not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        limit = self.max_upload_bytes if path == "/upload" else self.max_request_bytes
        length = headers.get(b"content-length")
        if length is None and path == "/upload":
            return await reply(send, 411, "Content-Length: required for uploads")
        try:
            length = int(length) if length is not None else 0
        except ValueError:
            return await reply(send, 400, "Content-Length: not a number")
        if length > limit:
            log.info("refused %s %s: 413 body of %d bytes over %d", method, path[:200], length, limit)
            return await reply(send, 413, f"request body of {length} bytes: over the limit of {limit} bytes")
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding != b"identity":
            return await self._inflated(scope, receive, send, encoding, limit)
        await self._bounded(scope, receive, send, limit)

    def _refusal(self, method, path, headers):
        """(status, message[, headers]) when the token is needed and missing, else None."""
        if is_public(method, path, self.protect_infer):
            return None
        if self.token is None:
            return 403, f"{method} {path[:200]}: disabled (the server was started without --token-file)"
        auth = headers.get(b"authorization", b"")
        if not hmac.compare_digest(auth, f"Bearer {self.token}".encode()):
            return 401, "Authorization: a valid bearer token is required", [(b"www-authenticate", b"Bearer")]
        return None

    async def _bounded(self, scope, receive, send, limit):
        """Run the app on a body counted as it arrives: past ``limit`` the app's reply becomes a 413."""
        state = {"over": False, "replied": False}

        async def counted_receive():
            message = await receive()
            state["seen"] = state.get("seen", 0) + len(message.get("body", b""))
            if state["seen"] > limit:
                state["over"] = True
                raise _TooLarge
            return message

        async def guarded_send(message):
            if not state["over"]:
                return await send(message)
            if message["type"] == "http.response.start" and not state["replied"]:
                state["replied"] = True
                await reply(send, 413, f"request body: over the limit of {limit} bytes")

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            pass
        if state["over"]:
            log.info("refused %s %s: 413 streamed body over %d bytes", scope["method"], scope["path"][:200], limit)
            if not state["replied"]:
                await reply(send, 413, f"request body: over the limit of {limit} bytes")

    async def _inflated(self, scope, receive, send, encoding, limit):
        if encoding not in (b"gzip", b"deflate"):
            return await reply(send, 415, f"Content-Encoding: {encoding.decode('latin-1')[:40]} is not "
                                          f"supported (gzip, deflate)")
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > limit:
                return await reply(send, 413, f"request body: over the limit of {limit} bytes")
            if not message.get("more_body"):
                break
        inflater = zlib.decompressobj(wbits=47)  # gzip or zlib, detected from the header
        try:
            body = inflater.decompress(b"".join(chunks), limit + 1)
        except zlib.error as err:
            return await reply(send, 400, f"Content-Encoding: the body is not valid {encoding.decode()} ({err})")
        if len(body) > limit or inflater.unconsumed_tail:
            return await reply(send, 413, f"request body: over the limit of {limit} bytes once inflated")
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-encoding"]
        content_type = dict(scope["headers"]).get(b"content-type")
        scope, receive = _with_body({**scope, "headers": headers}, body, content_type)
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


def _empty_body(headers):
    return headers.get(b"content-length", b"0") in (b"0", b"") and b"transfer-encoding" not in headers


def _with_body(scope, body, content_type=b"application/json"):
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-type",
                                                                 b"transfer-encoding")]
    headers += [(b"content-length", str(len(body)).encode()), (b"content-type", content_type or b"")]
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return {**scope, "headers": headers}, receive


async def reply(send, status, message, headers=()):
    """Send ``{"error": message}`` with ``status``."""
    body = orjson.dumps({"error": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
