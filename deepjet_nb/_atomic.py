"""Atomic creation of output files and directories: a reader never sees a half-written output.

The output is first written under a hidden temporary name next to its destination (same filesystem), then
moved into place with :func:`os.replace`. If the body raises, or the process is interrupted, the temporary
is removed (or, after SIGKILL, left under a ``.tmp-`` name that never shadows a finished output).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, *, directory: bool = False):
    """Yield a temporary path; on success it replaces ``destination``.

    ``directory=True`` yields an empty temporary directory instead of a file name. An existing destination
    is replaced (a directory is removed first). The parent directory is created if needed.
    """
    destination = Path(destination)
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{destination.name}.", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())
    else:
        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{destination.name}.", dir=parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        if directory and destination.is_dir():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``destination`` atomically."""
    with atomic_path(destination) as tmp:
        tmp.write_text(text)
