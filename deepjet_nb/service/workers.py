"""Parallel inference workers (``--workers N``, MLServer's ``parallel_workers``) that start, stop and give up.

MLServer's worker process ignores its parent's signals by adding handlers to ``asyncio.get_event_loop()``,
which under uvloop, in a forked child whose parent ran ``uvloop.run``, raises "no current event loop":
every worker died at start and was restarted about once a second, for ever. :func:`install_worker_setup`
replaces that step: the worker ignores SIGINT, SIGTERM and SIGQUIT (its parent stops it through its queue)
and asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), so that a ``kill -9`` of the
server leaves no orphans. :func:`bound_restarts` stops a crash loop: after ``max_restarts`` worker deaths
within ``window`` seconds the server logs one line saying so and exits with :data:`CRASH_LOOP_EXIT`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections import deque

from mlserver.parallel.worker import Worker as _MLServerWorker

__all__ = ["Worker", "install_worker_setup", "bound_restarts", "CRASH_LOOP_EXIT"]

log = logging.getLogger("deepjet_nb.service")
CRASH_LOOP_EXIT = 3
_PR_SET_PDEATHSIG = 1
_IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)


def install_worker_setup() -> None:
    """Make MLServer's pool start :class:`Worker` (see the module's docstring); idempotent. Workers are
    spawned, not forked: the child unpickles this class, so the fix travels by its import path."""
    import mlserver.parallel.pool

    mlserver.parallel.pool.Worker = Worker


class Worker(_MLServerWorker):
    """MLServer's worker process with a signal set-up that works under uvloop and dies with its parent."""

    def _ignore_signals(self) -> None:
        parent = os.getppid()
        for sign in _IGNORED:
            signal.signal(sign, signal.SIG_IGN)
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the kernel was told: follow it now
            os._exit(1)


def bound_restarts(pool, max_restarts: int = 5, window: float = 60.0) -> None:
    """Wrap ``pool.on_worker_stop`` (an MLServer ``InferencePool``): more than ``max_restarts`` worker deaths
    within ``window`` seconds end the server (exit code :data:`CRASH_LOOP_EXIT`, workers killed with it)."""
    restart = pool.on_worker_stop
    deaths: deque[float] = deque()

    async def on_worker_stop(pid: int, exit_code: int):
        now = time.monotonic()
        deaths.append(now)
        while deaths and deaths[0] < now - window:
            deaths.popleft()
        if len(deaths) > max_restarts:
            log.critical("inference workers crash in a loop: %d deaths within %.0f s (the last, PID %d, exit code "
                         "%s); not restarting them: the server stops (exit code %d)", len(deaths), window, pid,
                         exit_code, CRASH_LOOP_EXIT)
            logging.shutdown()
            os._exit(CRASH_LOOP_EXIT)  # the workers follow (PR_SET_PDEATHSIG)
        await restart(pid, exit_code)

    pool.on_worker_stop = on_worker_stop
