"""What the package does at TensorFlow's first import: keep its C++ start-up lines out of notebooks and terminals
(and nothing else), and load the XRootD client before it.

``TF_CPP_MIN_LOG_LEVEL`` (set in ``deepjet_nb/__init__.py``) silences TensorFlow's own C++ logging, but two lines
are written by absl before that setting is read, straight to file descriptor 2, once per shared library that
TensorFlow loads (so twice)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796542584.346053   25143 port.cc:153] oneDNN custom operations are on. You may see ...

Jupyter shows them as a stderr box in every notebook that trains. Python-level filters cannot reach them, so
:func:`quiet_first_import` puts a finder on ``sys.meta_path`` that, for the first ``import tensorflow`` only
(directly or through Keras), points file descriptor 2 at a pipe while the module executes; a thread passes every
line on to the real stderr as it arrives except exactly these two kinds. Numerics are unchanged (oneDNN stays
on); any other message, warning or error of the import still appears. Nothing happens when TensorFlow is already
imported or when the user asked for TensorFlow's C++ logs (``TF_CPP_MIN_LOG_LEVEL=0``).

The XRootD client (``XRootD.client``, which reads ``root://`` inputs) crashes the process with a segmentation
fault when its shared library is loaded after TensorFlow's (the other order is fine: a clash of the native
libraries both bring). So the same finder imports it, when it is installed, just before TensorFlow;
:func:`deepjet_nb.rootio.xrootd_settings` refuses with an error, instead of crashing, when TensorFlow came first
anyway (imported before ``deepjet_nb``).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import threading
from contextlib import contextmanager

# The start-up lines, and only them: absl's pre-initialisation notice and oneDNN's "custom operations" notice.
STARTUP_LINES = (
    re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\r?\n?"),
    re.compile(rb"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*\n?"),
)


def quiet_first_import(module: str = "tensorflow") -> bool:
    """Install the finder for the first import of ``module``: it loads :func:`load_before_tensorflow`'s libraries,
    then filters the start-up lines (unless ``TF_CPP_MIN_LOG_LEVEL`` asks for every C++ log line).

    Returns whether it was installed (not when ``module`` is already imported or the finder is already there).
    """
    if module in sys.modules:
        return False
    if any(isinstance(finder, _QuietFirstImport) and finder.module == module for finder in sys.meta_path):
        return False
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0")
    sys.meta_path.insert(0, _QuietFirstImport(module, quiet))
    return True


def load_before_tensorflow() -> None:
    """Import the native libraries that must be loaded before TensorFlow's: the XRootD client, when installed."""
    if "XRootD.client" not in sys.modules and importlib.util.find_spec("XRootD") is not None:
        import XRootD.client  # noqa: F401


def is_startup_line(line: bytes) -> bool:
    """Whether ``line`` is one of TensorFlow's C++ start-up lines (see the module docstring)."""
    return any(pattern.fullmatch(line) for pattern in STARTUP_LINES)


@contextmanager
def startup_lines_filtered():
    """Within the block, file descriptor 2 drops TensorFlow's start-up lines and passes on every other line as it
    is written (other threads' writes included). Restored on exit, also after an error."""
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    forwarder = threading.Thread(target=_forward, args=(read_end, real_stderr), name="deepjet-nb-stderr", daemon=True)
    forwarder.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # closes the pipe's last write end: the forwarder reads to the end and stops
        forwarder.join()
        os.close(real_stderr)


def _forward(read_end: int, real_stderr: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            _write_kept(real_stderr, [line + b"\n" for line in lines])
        _write_kept(real_stderr, [pending] if pending else [])


def _write_kept(fd: int, lines: list[bytes]) -> None:
    kept = b"".join(line for line in lines if not is_startup_line(line))
    if kept:
        os.write(fd, kept)


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """Finds ``module`` like the other finders do, and wraps its loader's ``exec_module`` in
    :func:`startup_lines_filtered`; removes itself on first use, so later imports are untouched."""

    def __init__(self, module: str, quiet: bool = True):
        self.module = module
        self.quiet = quiet

    def find_spec(self, name, path=None, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)  # first import only; also keeps find_spec below from coming back here
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader.exec_module = _first_import(spec.loader.exec_module, self.quiet)
        return spec


def _first_import(exec_module, quiet: bool):
    def exec_module_first(module):
        load_before_tensorflow()
        if not quiet:
            return exec_module(module)
        with startup_lines_filtered():
            exec_module(module)

    return exec_module_first
