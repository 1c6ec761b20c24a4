"""Dynamic batching of one model's requests, where one request can never fail another.

Requests that arrive within ``max_batch_time`` seconds of the first waiting one (at most ``max_batch_size``
of them) are concatenated along the jet axis and run as one call; each caller gets its own rows back. When
a merged call fails (a model that is only right for some batch sizes, whatever the upload check saw), the
requests are run again one by one, and a request of several rows that fails alone is run row by row: a
request fails only when its own rows cannot be run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import numpy as np

__all__ = ["Batcher"]

log = logging.getLogger("deepjet_nb.service")
Feed = dict[str, np.ndarray]


class Batcher:
    """Batches ``run`` (converted inputs → float32 ``(n, n_classes)``, awaitable) over concurrent callers of
    :meth:`predict`; ``name`` labels the log lines."""

    def __init__(self, run: Callable[[Feed], Awaitable[np.ndarray]], max_batch_size: int, max_batch_time: float,
                 name: str = "model"):
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_batch_time = max_batch_time
        self.name = name
        self._pending: list[tuple[Feed, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()  # running batches, referenced until done

    async def predict(self, feed: Feed) -> np.ndarray:
        """The probabilities of ``feed``'s rows, computed with whatever other requests wait at the moment."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((feed, future))
        if len(self._pending) >= self.max_batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_batch_time, self._flush)
        return await future

    def _flush(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._run_batch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch):
        if len(batch) == 1:
            feed, future = batch[0]
            await _settle(future, self._run_alone(feed))
            return
        feeds = [feed for feed, _ in batch]
        merged = {name: np.concatenate([feed[name] for feed in feeds]) for name in feeds[0]}
        try:
            probs = await self._run(merged)
        except Exception as err:  # noqa: BLE001 - any failure of the model: retried request by request
            log.warning("model %r: a merged batch of %d requests failed (%s: %s); running them one by one",
                        self.name, len(batch), type(err).__name__, str(err)[:200])
            for feed, future in batch:
                await _settle(future, self._run_alone(feed))
            return
        start = 0
        for feed, future in batch:
            rows = len(next(iter(feed.values())))
            if not future.done():  # a caller that went away has a cancelled future
                future.set_result(probs[start:start + rows])
            start += rows

    async def _run_alone(self, feed):
        """One request's rows: in one call, or row by row when that call fails."""
        rows = len(next(iter(feed.values())))
        try:
            return await self._run(feed)
        except Exception:
            if rows == 1:
                raise
        log.warning("model %r: a request of %d rows failed as one call; running it row by row", self.name, rows)
        return np.concatenate([await self._run({k: v[i:i + 1] for k, v in feed.items()}) for i in range(rows)])


async def _settle(future, work):
    try:
        result = await work
    except Exception as err:  # noqa: BLE001 - handed to the caller, whose request it is
        if not future.done():
            future.set_exception(err)
        return
    if not future.done():
        future.set_result(result)
