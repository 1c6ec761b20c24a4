"""Deliver the front end's widget events while a notebook cell keeps the kernel busy.

A Jupyter kernel runs one cell at a time: while ``trainer.fit()`` runs, a click on a widget (the dashboard's
Stop button) waits in the kernel's queue until the cell ends. :class:`UiEvents` takes those events during the
cell: the training loop calls :meth:`UiEvents.poll` between batches, which runs the handlers of widget (comm)
messages at once and keeps every other request (the next cells of a *Run All*, completions, ...) in order, to be
handled after the cell as usual.

- ipykernel 7 (the pinned kernel: its shell messages reach the main thread over an in-process socket, and it
  has no ``do_one_iteration``) is served by :class:`_InprocShell` below.
- Older kernels (ipykernel 6, which have ``do_one_iteration``) are served by ``jupyter_ui_poll.ui_events``.
- Outside a kernel, or in a thread other than the kernel's main thread (``trainer.start()``, where the kernel
  is free and delivers events itself), polling does nothing.

>>> with UiEvents() as events:                      # doctest: +SKIP
...     for batch in batches:
...         train_on(batch)
...         events.poll()
"""

from __future__ import annotations

import contextvars
import threading

__all__ = ["UiEvents"]

_COMM_MESSAGES = {"comm_open", "comm_msg", "comm_close"}


class UiEvents:
    """Context manager; :meth:`poll` delivers pending widget events (see the module docstring).

    ``active`` tells whether events are delivered at all (a kernel's main thread with a supported kernel).
    Errors of the kernel's internals never reach the training: a backend that fails is switched off.
    """

    def __init__(self):
        self._backend = None

    def __enter__(self) -> UiEvents:
        kernel = _kernel()
        if kernel is None or threading.current_thread() is not threading.main_thread():
            return self
        try:
            if getattr(kernel, "shell_channel_thread", None) is not None:
                self._backend = _InprocShell(kernel)
            elif hasattr(kernel, "do_one_iteration"):
                self._backend = _JupyterUiPoll()
        except Exception:  # noqa: BLE001 -- an unknown kernel layout: train without live events
            self._backend = None
        return self

    @property
    def active(self) -> bool:
        return self._backend is not None

    def poll(self) -> None:
        """Handle the widget events that arrived since the last call (cheap when there are none)."""
        if self._backend is not None:
            self._backend.poll()

    def __exit__(self, *exc) -> None:
        if self._backend is not None:
            backend, self._backend = self._backend, None
            backend.close()


class _InprocShell:
    """ipykernel 7: read the main shell's in-process socket; handle comm messages now, requeue the rest."""

    def __init__(self, kernel):
        import zmq

        self._zmq = zmq
        self._kernel = kernel
        pair = kernel.shell_channel_thread.manager.get_shell_channel_to_subshell_pair(None)
        self._socket = pair.to_socket
        stream = pair.to_stream
        callback = getattr(stream, "_recv_callback", None)
        if callback is None:
            raise RuntimeError("the main shell's stream has no receive callback")
        self._deliver_later = callback  # what the kernel's own loop calls with each message
        self._deferred = []

    def poll(self):
        zmq = self._zmq
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if self._msg_type(frames) not in _COMM_MESSAGES:
                # Requests keep their order among themselves. Widget events go ahead of them: the kernel
                # itself lets them past a busy cell, and a click belongs to the cell now running.
                self._deferred.append(frames)
            else:
                try:
                    self._dispatch_now(frames)
                except RuntimeError:  # noqa: PERF203 -- rare; see _run_to_end
                    pass

    def close(self):
        self.poll()
        loop = self._kernel.io_loop
        for frames in self._deferred:
            # Handled by the kernel's loop after the running cell, in arrival order, before anything newer.
            loop.add_callback(self._deliver_later, frames)
        self._deferred = []

    def _msg_type(self, frames) -> str:
        session = self._kernel.session
        try:
            _, rest = session.feed_identities(frames, copy=False)
            return session.deserialize(rest, content=False, copy=False)["header"]["msg_type"]
        except Exception:  # noqa: BLE001 -- not ours to judge: the kernel's loop will handle or log it
            return ""

    def _dispatch_now(self, frames):
        kernel = self._kernel
        saved = getattr(kernel, "_shell_context", None)
        # In a copy of the context: the message's parent header must not replace the running cell's.
        coroutine = kernel.dispatch_shell(frames, concurrent=True)
        try:
            contextvars.copy_context().run(_run_to_end, coroutine)
        finally:
            if saved is not None:
                kernel._shell_context = saved


def _run_to_end(coroutine):
    """Run a coroutine that never waits on I/O (a comm handler) to its end, without an event loop.

    Raises RuntimeError (and drops the coroutine) if it does wait: only the kernel's own loop could resume it.
    """
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a widget message handler waited on the event loop")


class _JupyterUiPoll:
    """Kernels with ``do_one_iteration`` (ipykernel 6): the jupyter-ui-poll package does the work."""

    def __init__(self):
        from jupyter_ui_poll import ui_events

        self._context = ui_events()
        self._poll = self._context.__enter__()

    def poll(self):
        self._poll(20)

    def close(self):
        self._context.__exit__(None, None, None)


def _kernel():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None) if shell is not None else None
