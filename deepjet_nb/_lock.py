"""An exclusive lock on an output directory, so that two commands never write into the same one.

:func:`output_lock` takes an ``flock`` on ``DIR/.lock`` (created with the directory if needed) and writes the
holder's pid and host into it. The operating system releases the lock when the process exits in any way,
kill -9 included, so a stale lock file never blocks a later run. A second writer gets a :class:`LockedError`
naming the directory and the holder instead of mixing its files with the first one's.

>>> from deepjet_nb._lock import output_lock
>>> with output_lock("runs/demo", what="train"):  # doctest: +SKIP
...     ...  # write into runs/demo

The lock is per process: a second :func:`output_lock` on the same directory from the same process is refused
too (two Trainers on one run directory in a notebook mix their files just as two processes would). An output
directory that is replaced as a whole (written under a temporary name, then moved into place) cannot hold its
own lock file: lock its parent with a lock file named after it, ``output_lock(out.parent, name=f".{out.name}.lock")``.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from .errors import DeepJetError

LOCK_FILE = ".lock"

__all__ = ["LOCK_FILE", "LockedError", "output_lock"]


class LockedError(DeepJetError):
    """The output directory is being written by another command (names the directory and the holder)."""


@contextlib.contextmanager
def output_lock(directory: str | os.PathLike, *, what: str = "deepjet-nb", name: str = LOCK_FILE):
    """Hold an exclusive lock on ``directory`` (created if missing) for the duration of the ``with`` block.

    ``what`` names the command in the holder record; ``name`` is the lock file in ``directory``. Raises :class:`LockedError` when another process (or
    another ``with`` block of this one) holds it; the message names the directory and the holder's pid and host.
    """
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            where = directory if name == LOCK_FILE else path
            raise LockedError(f"{where}: in use by {holder}; wait for it to finish or choose another "
                              f"output directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()} on {socket.gethostname()})\n".encode(), 0)
        try:
            yield directory
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
