"""Atomic creation of output files and directories: a reader never sees a half-written output.

The output is first written under a hidden temporary name next to its destination (same filesystem), then
moved into place with :func:`os.replace`. If the body raises, or the process is interrupted, the temporary
is removed (or, after SIGKILL, left under a ``.tmp-`` name that never shadows a finished output). While it is
being written, a temporary is held under an ``flock``; :func:`remove_stale` deletes the ``.tmp-`` leftovers
that nobody holds, which each command does for its outputs when it starts, so interruptions do not accumulate.

:func:`check_output` validates an output path before any work starts (a directory where a file is expected,
a file where a directory is expected, a read-only or missing parent) with one :class:`ArgumentError` naming it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ArgumentError

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
    held = _hold(tmp)
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
    finally:
        os.close(held)


def remove_stale(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete the temporaries of :func:`atomic_path` in ``directory`` that no running process holds (left by
    a process killed with SIGKILL); with ``name``, only those of destination ``name``. Returns what was deleted.

    A temporary being written is held under an ``flock`` by its writer, so it is never deleted; files that
    Keras stages next to a held temporary (``<tmp>.keras``) are kept with it.
    """
    import fcntl

    directory = Path(directory)
    prefix = f"{TMP_PREFIX}{name}." if name else TMP_PREFIX
    try:
        candidates = sorted(p for p in directory.iterdir() if p.name.startswith(prefix))
    except OSError:  # no such directory (yet), or not readable: nothing of ours to clean
        return []
    held, free = [], []
    for path in candidates:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free.append(path)
        except OSError:
            held.append(path.name)
        finally:
            os.close(fd)
    removed = []
    for path in free:
        if any(path.name.startswith(h) for h in held):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(path)
    return removed


def check_output(path: str | os.PathLike, *, directory: bool = False, what: str = "output") -> Path:
    """Check before any work that ``path`` can be written: a file (``directory=False``, it may exist and is
    then replaced) or a directory (it may exist). Returns ``path`` as a Path.

    Raises :class:`ArgumentError` naming the path when it is a directory where a file is expected, an
    existing file where a directory is expected, below an existing file, or in a directory that is not
    writable.
    """
    path = Path(path)
    label = f"{what} {str(path)!r}"
    if directory and path.exists() and not path.is_dir():
        raise ArgumentError(f"cannot write {label}: it exists and is not a directory")
    if not directory and path.is_dir():
        raise ArgumentError(f"cannot write {label}: it is a directory")
    probe = path if directory and path.is_dir() else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ArgumentError(f"cannot write {label}: {str(probe)!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK) or (path.is_file() and not os.access(path, os.W_OK)):
        raise ArgumentError(f"cannot write {label}: directory {str(probe)!r} is not writable")
    return path


def os_error_line(err: OSError, fallback: str | os.PathLike | None = None) -> str:
    """One line for an OSError met while writing: the path at fault and the cause (full disk, read-only,
    permission), e.g. ``"runs/x/model.keras: no space left on device"``."""
    path = err.filename if err.filename is not None else fallback
    cause = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
             errno.EDQUOT: "disk quota exceeded"}.get(err.errno) or (err.strerror or str(err)).lower()
    return f"{path}: {cause}" if path is not None else cause


def _hold(path: Path) -> int:
    """An open descriptor of ``path`` with an exclusive flock: marks a temporary as being written."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``destination`` atomically."""
    with atomic_path(destination) as tmp:
        tmp.write_text(text)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in blocks (no whole-file copy in memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
