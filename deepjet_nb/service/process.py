"""A model server in a subprocess, for notebooks, tests and benchmarks: started on free loopback ports, waited
for until it answers, stopped (its whole process group) by whoever started it.

>>> with ServerProcess("models/", token="s3cret-token") as server:     # doctest: +SKIP
...     Client(server.url, token="s3cret-token").models()
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ..errors import ServiceError

__all__ = ["ServerProcess", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """``deepjet-nb serve`` in its own process group on 127.0.0.1 and free ports.

    ``models`` the served folder; ``token`` written to a private token file; ``options`` more command-line
    options (e.g. ``["--max-batch-size", "1"]``). :meth:`start` waits up to ``timeout`` seconds for
    ``/v2/health/live``; :meth:`stop` sends SIGTERM to the group, then SIGKILL. ``url`` (REST) and
    ``grpc_address`` (``host:port``) say where it listens; ``log`` is its output file.
    """

    def __init__(self, models, *, token: str | None = None, options=(), timeout: float = 60.0, env=None):
        self.models = Path(models)
        self.token = token
        self.options = list(options)
        self.timeout = timeout
        self.env = env
        self.host = "127.0.0.1"
        self.http_port = self.grpc_port = None
        self.process = None
        self._scratch = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def start(self) -> "ServerProcess":
        self._scratch = tempfile.TemporaryDirectory(prefix="deepjet-nb-serve-")
        scratch = Path(self._scratch.name)
        self.log = scratch / "server.log"
        self.http_port, self.grpc_port = free_port(), free_port()
        command = [sys.executable, "-m", "deepjet_nb", "serve", "--models", str(self.models), "--host", self.host,
                   "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port), *self.options]
        if self.token:
            token_file = scratch / "token"
            token_file.write_text(self.token + "\n")
            token_file.chmod(0o600)
            command += ["--token-file", str(token_file)]
        env = {**os.environ, **(self.env or {})}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env=env)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text(errors="replace")[-2000:]
                self._cleanup()
                raise ServiceError(f"deepjet-nb serve exited with code {self.process.returncode}: {output}")
            if self._answers("/v2/health/ready"):
                return self
            time.sleep(0.2)
        self.stop()
        raise ServiceError(f"deepjet-nb serve did not answer on {self.url} within {self.timeout:g} s")

    def _answers(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def alive(self) -> bool:
        """Whether the process runs and answers ``/v2/health/live``."""
        return self.process is not None and self.process.poll() is None and self._answers("/v2/health/live")

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the server (SIGTERM to its process group, SIGKILL after ``timeout``); returns its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # workers the server left behind, if any
            os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.returncode
        self.output = self.log.read_text(errors="replace") if self.log.exists() else ""
        self._cleanup()
        return code

    def _cleanup(self):
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "running" if self.process is not None and self.process.poll() is None else "stopped"
        return f"<ServerProcess {self.url} ({state}), models {str(self.models)!r}>"

