"""Which scan owns a scan directory, and points that stop when their scan stops.

A running scan writes ``DIR/.owner.json`` (a fresh token, its pid and host) and touches it every
:data:`HEARTBEAT_S` seconds. Each point carries the token. While its notebook runs, a point (in any process,
on any Dask worker) watches that file: when the token changes (a new scan took the directory over) or the file
stops being touched for :data:`STALE_S` seconds (the scan was killed, however: SIGKILL included), the point
kills its notebook's kernel and writes nothing. The heartbeat is judged by the worker's own clock (whether the
file's modification time still moves), so clocks of other hosts do not matter.

Locally, kernels also end on their own within a second when the process that started them dies (ipykernel
watches its parent); the watch covers Dask, whose workers outlive the scan.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

from .._atomic import write_text_atomic
from ..errors import DeepJetError

OWNER = ".owner.json"
HEARTBEAT_S = 1.0   # how often a scan touches its owner file
STALE_S = 6.0       # a heartbeat this old (by the worker's clock) means the scan has stopped
POLL_S = 0.5        # how often a point looks at the owner file


class ScanStopped(DeepJetError):
    """A point's scan stopped, or another scan took its directory over: the point wrote nothing."""


@contextlib.contextmanager
def owning(directory: Path):
    """Own the scan directory ``directory`` while the block runs: yields ``{"file", "token"}`` for the points'
    tasks. The caller holds the directory's lock."""
    file = Path(directory).resolve() / OWNER  # absolute: points run in other working directories (Dask workers)
    token = uuid.uuid4().hex
    write_text_atomic(file, json.dumps({"token": token, "pid": os.getpid(), "host": socket.gethostname()}))
    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(file)

    thread = threading.Thread(target=beat, name="deepjet-nb-scan-heartbeat", daemon=True)
    thread.start()
    try:
        yield {"file": str(file), "token": token}
    finally:
        stop.set()
        thread.join()


class PointWatch:
    """Watches the owner file of a point's scan (``owner`` as :func:`owning` yields it; None watches nothing)
    while the point runs; :meth:`adopt` hands it the kernel process to kill when the scan is gone, and
    :meth:`check` raises :class:`ScanStopped` when it is."""

    def __init__(self, owner: dict | None, point: str):
        self.owner = owner
        self.point = point
        self.lost: str | None = None
        self._kernels: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"deepjet-nb-watch-{point}", daemon=True)

    def __enter__(self) -> PointWatch:
        if self.owner:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def adopt(self, process) -> None:
        """Kill ``process`` (a kernel's ``Popen``, leader of its own session) when the scan is gone."""
        self._kernels.append(process)
        if self.lost:
            self._kill()

    def check(self) -> None:
        """Raise :class:`ScanStopped` when the scan that started this point no longer owns its directory."""
        if self.owner and self.lost is None:
            self.lost = _ownership_problem(self.owner, None, time.monotonic())[0]
        if self.lost:
            raise ScanStopped(f"scan point {self.point!r}: {self.lost}; nothing written")

    def _watch(self):
        last = (None, time.monotonic())  # (modification time seen, when it was last seen to change)
        while not self._stop.wait(POLL_S):
            problem, last = _ownership_problem(self.owner, last, time.monotonic())
            if problem:
                self.lost = problem
                self._kill()
                return

    def _kill(self):
        for process in self._kernels:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)  # the kernel and anything it started


def _ownership_problem(owner: dict, last, now: float):
    """(why the scan no longer owns its directory or None, updated ``last``) from one look at the owner file;
    ``last`` None skips the heartbeat (a single look cannot tell its age)."""
    file = Path(owner["file"])
    try:
        mtime = file.stat().st_mtime
        token = json.loads(file.read_text()).get("token")
    except (OSError, ValueError):
        return f"the scan's owner file {file} is gone", last
    if token != owner["token"]:
        return f"another scan took {file.parent} over", last
    if last is None:
        return None, None
    seen, since = last
    if mtime != seen:
        return None, (mtime, now)
    if now - since > STALE_S:
        return f"its scan stopped (no heartbeat in {file} for {STALE_S:g} s)", last
    return None, last
