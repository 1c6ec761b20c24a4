"""Running one worker function over many items (files, blocks): in this process, on local processes, or on a
Dask distributed cluster, with one progress bar and per-item failures reported instead of raised.

A worker is a plain module-level function ``func(item, *args)`` (picklable, so it runs in another process or
on another machine). :meth:`Runner.map` yields ``(item, ok, value)`` as items finish: ``value`` is the
worker's result, or when ``ok`` is false a one-line cause, so one bad file never stops the others.

>>> from deepjet_nb.parallel import Runner
>>> with Runner(jobs=1) as runner:
...     [(item, ok, value) for item, ok, value in runner.map(abs, [-1, 2], progress=False)]
[(-1, True, 1), (2, True, 2)]

``jobs=1`` runs in this process; ``jobs>1`` uses a pool of "spawn" processes (safe in notebooks and with
numba, uproot or TensorFlow threads in the parent); ``scheduler`` (an address such as ``tcp://host:8786``, or
a ``distributed.Client``) runs on a Dask cluster. Workers must not depend on where they run: results are
handed back, never written by side effects the parent does not see.

Local worker processes never outlive the parent: each one asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG`` on Linux) and also watches its parent id, so a parent killed with SIGKILL leaves no
orphans and no worker publishes an output afterwards. Workers ignore Ctrl-C (the terminal sends it to the
whole process group; the parent decides) and die on SIGTERM; when the parent is interrupted (Ctrl-C, or SIGTERM,
which the CLI turns into KeyboardInterrupt) the pool is terminated at once instead of waiting for the
running items. A worker that dies (killed, out of memory) fails its items with a one-line cause.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from .errors import ArgumentError, DeepJetError

__all__ = ["Runner", "guarded"]


def guarded(func, item, *args):
    """Run ``func(item, *args)``; return ``(True, value)`` or ``(False, cause)`` (one line naming the item)."""
    try:
        return True, func(item, *args)
    except DeepJetError as err:
        return False, str(err)
    except Exception as err:
        return False, f"{item}: {type(err).__name__}: {err}"


class Runner:
    """Maps a worker over items in this process (``jobs=1``), on local processes, or on a Dask cluster.

    ``jobs``: local worker processes (default: one per item up to the CPU count); ``scheduler``: a Dask
    scheduler address or ``distributed.Client`` (then ``jobs`` is ignored); ``n_items``: how many items will be
    mapped (bounds the default pool size); ``what``: the command or function named in error messages.
    Use as a context manager: the pool or the client it opened is shut down on exit.
    Raises :class:`ArgumentError` for ``jobs < 1`` or an unreachable scheduler.
    """

    def __init__(self, jobs: int | None = None, scheduler=None, n_items: int = 1, *, what: str = "run"):
        if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
            raise ArgumentError(f"{what}: jobs must be an integer >= 1, got {jobs!r}")
        self.jobs = jobs or max(1, min(n_items, os.cpu_count() or 1))
        self.scheduler = scheduler
        self.what = what
        self.pool = None
        self.client = None
        self._own_client = False

    @property
    def where(self) -> str:
        """Where the work runs, for messages: "this process", "2 local processes" or the Dask scheduler."""
        if self.scheduler is not None:
            return f"Dask scheduler {self.scheduler if isinstance(self.scheduler, str) else 'client'}"
        return "this process" if self.jobs == 1 else f"{self.jobs} local processes"

    def __enter__(self) -> Runner:
        if self.scheduler is not None:
            from distributed import Client

            if isinstance(self.scheduler, Client):
                self.client = self.scheduler
            else:
                try:
                    self.client = Client(self.scheduler, timeout="20s")
                except (OSError, TimeoutError) as err:
                    raise ArgumentError(f"{self.what}: cannot reach Dask scheduler {self.scheduler!r}: {err}") from None
                self._own_client = True
        elif self.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: safe in notebooks and with numba/uproot/TensorFlow threads in the parent (fork is not)
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_init, initargs=(os.getpid(),))
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self.pool is not None:
            if exc_type is None:
                self.pool.shutdown(cancel_futures=True)
            else:  # interrupted or failed: do not wait for the running items
                _terminate(self.pool)
            self.pool = None
        if self._own_client:
            self.client.close()
            self.client = None

    def map(self, func: Callable, items: Iterable, args: tuple = (), *, desc: str | None = None,
            progress: bool = True, unit: str = "file",
            postfix: Callable[[object], str | None] | None = None, ordered: bool = False,
            window: int | None = None) -> Iterator[tuple[object, bool, object]]:
        """Yield ``(item, ok, value)`` as items finish, with a tqdm.auto bar over the items.

        ``postfix(value)`` may return a short text shown beside the bar after each successful item.
        ``ordered=True`` yields in input order instead of completion order; ``window`` bounds how many items
        are submitted and not yet yielded (so results waiting for an earlier one stay few: bounded memory).
        """
        from tqdm.auto import tqdm

        items = list(items)
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ArgumentError(f"{self.what}: window must be an integer >= 1, got {window!r}")
        bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress or not items, file=sys.stderr)
        try:
            for item, (ok, value) in self._results(func, items, args, ordered, window):
                bar.update(1)
                if ok and postfix is not None:
                    text = postfix(value)
                    if text:
                        bar.set_postfix_str(text)
                yield item, ok, value
        finally:
            bar.close()

    def _results(self, func, items, args, ordered=False, window=None):
        if self.client is None and self.pool is None:
            for i in items:
                yield i, guarded(func, _plain(i), *args)
            return
        if self.client is not None:
            from distributed import as_completed

            def submit(i):
                return self.client.submit(guarded, func, _plain(i), *args, pure=False)
        else:
            from concurrent.futures import FIRST_COMPLETED, wait

            def submit(i):
                return self.pool.submit(guarded, func, _plain(i), *args)
        todo = iter(items)
        limit = window or max(len(items), 1)
        running = {}  # future -> item
        queue = deque()  # with ordered: the running futures in submission order

        def top_up():
            while len(running) < limit:
                try:
                    item = next(todo)
                except StopIteration:
                    return
                future = submit(item)
                running[future] = item
                if ordered:
                    queue.append(future)

        top_up()
        if ordered:
            while queue:
                future = queue.popleft()
                yield running.pop(future), _outcome(future)
                top_up()
        elif self.client is not None:
            finished = as_completed(list(running))
            for future in finished:
                yield running.pop(future), _outcome(future)
                before = set(running)
                top_up()
                for new in set(running) - before:
                    finished.add(new)
        else:
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), _outcome(future)
                top_up()


def _outcome(future):
    """``(ok, value)`` of a finished future: the worker's own result, or a one-line cause when the worker
    process died (killed, out of memory) or raised outside :func:`guarded`."""
    error = future.exception()
    if error is None:
        return future.result()
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(error, BrokenProcessPool):
        return False, "a worker process died (killed, or out of memory)"
    return False, f"{type(error).__name__}: {error}"


def _terminate(pool) -> None:
    """Stop a process pool now: running items are abandoned (their temporaries are cleaned by the next run)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)
    pool.shutdown(wait=True, cancel_futures=True)


def _worker_init(parent_pid: int) -> None:
    """Initializer of every local worker process: die with the parent; leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with(parent_pid)


def _die_with(parent_pid: int) -> None:
    """Make this process end as soon as ``parent_pid`` does: the kernel's parent-death signal where there is
    one (Linux), and a watchdog thread everywhere (it also covers the parent dying before this call)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while os.getppid() == parent_pid:
            threading.Event().wait(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="deepjet-nb-parent-watch", daemon=True).start()


def _plain(item):
    """Paths travel as strings (picklable everywhere, and readable in a Dask dashboard)."""
    return os.fspath(item) if isinstance(item, os.PathLike) else item
