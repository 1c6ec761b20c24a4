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
"""

from __future__ import annotations

import os
import sys
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
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
        if self._own_client:
            self.client.close()
            self.client = None

    def map(self, func: Callable, items: Iterable, args: tuple = (), *, desc: str | None = None,
            progress: bool = True, unit: str = "file",
            postfix: Callable[[object], str | None] | None = None) -> Iterator[tuple[object, bool, object]]:
        """Yield ``(item, ok, value)`` as items finish, with a tqdm.auto bar over the items.

        ``postfix(value)`` may return a short text shown beside the bar after each successful item.
        """
        from tqdm.auto import tqdm

        items = list(items)
        bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress or not items, file=sys.stderr)
        try:
            for item, (ok, value) in self._results(func, items, args):
                bar.update(1)
                if ok and postfix is not None:
                    text = postfix(value)
                    if text:
                        bar.set_postfix_str(text)
                yield item, ok, value
        finally:
            bar.close()

    def _results(self, func, items, args):
        if self.client is not None:
            from distributed import as_completed

            futures = {self.client.submit(guarded, func, _plain(i), *args, pure=False): i for i in items}
            for future in as_completed(futures):
                yield futures[future], future.result()
        elif self.pool is not None:
            from concurrent.futures import as_completed

            futures = {self.pool.submit(guarded, func, _plain(i), *args): i for i in items}
            for future in as_completed(futures):
                yield futures[future], future.result()
        else:
            for i in items:
                yield i, guarded(func, _plain(i), *args)


def _plain(item):
    """Paths travel as strings (picklable everywhere, and readable in a Dask dashboard)."""
    return os.fspath(item) if isinstance(item, os.PathLike) else item
