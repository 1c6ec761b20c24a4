"""The sample producer's compiled numba kernels: which are cached, and a visible status while they compile.

numba compiles a kernel on its first call and caches the machine code on disk (in ``__pycache__`` next to the
module, or under ``$NUMBA_CACHE_DIR``). On a fresh install the first sample therefore spends one to a few
minutes compiling the detector model, the features and the truth labelling before its first block ends.
``make install`` and Binder's ``postBuild`` compile them ahead of first use (:mod:`.warmup`); wherever they
are still missing, :func:`compile_once` compiles them before the first block, behind a status bar that says
"compiling kernels (first run only, ~N s)", and later runs skip it.

A stamp file beside numba's cache records which kinds of sample (:data:`.producer.PRODUCTS`) are compiled,
and from which sources: a hash of the package's kernel modules with numba's and Python's versions. numba
checks a cached kernel against its own module only, not against the kernels it calls in other modules, so
after a change of a callee (an edit, an upgrade in place) a caller would keep the old code; when the hash
changes, the package's cached kernels are removed and compiled again.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from .._atomic import atomic_path

STAMP_NAME = "deepjet_nb-kernels.json"
# Compilation of each kind of sample from an empty cache, in CPU seconds (66 s measured for the AK4 jets: the
# detector model, the features and the truth labelling; fat jets and events add the substructure and lepton
# kernels, 12 s more for both): the estimate shown until this machine has measured its own
COMPILE_SECONDS = {"jets": 70.0, "fatjets": 80.0, "events": 80.0}
STATUS_INTERVAL_S = 0.5
_PACKAGE = Path(__file__).resolve().parent.parent
# The modules whose kernels the samples compile (the producer's own and the shared substructure kernels)
_SOURCE_DIRS = ("samples", "kernels")


def compiled(kind: str) -> bool:
    """Whether the kernels of samples of ``kind`` are in numba's cache, compiled from the current sources."""
    stamp = _read_stamp()
    return stamp.get("sources") == sources_hash() and kind in stamp.get("compiled", [])


def compile_once(kind: str, compile_kernels: Callable[[], object], *, progress: bool = True) -> float:
    """Run ``compile_kernels`` (which calls every kernel a sample of ``kind`` uses) unless that is cached;
    returns the seconds it took (0 when cached). While it runs, a bar (with ``progress``) says "compiling
    kernels (first run only, ~N s)". Kernels cached from other sources are removed first (module doc)."""
    current = sources_hash()
    stamp = _read_stamp()
    if stamp.get("sources") != current:
        remove_cached_kernels()
        # the measured times stay: the best estimate of the next compilation
        stamp = {"sources": current, "compiled": [], "seconds": stamp.get("seconds", {})}
    if kind in stamp["compiled"]:
        return 0.0
    estimate = stamp["seconds"].get(kind, COMPILE_SECONDS.get(kind, max(COMPILE_SECONDS.values())))
    seconds = run_with_status(compile_kernels, status_text(estimate), estimate, progress=progress)
    latest = _read_stamp()
    if latest.get("sources") == current:  # kinds compiled meanwhile by another process
        stamp = latest
    stamp["compiled"] = sorted(set(stamp["compiled"]) | {kind})
    stamp["seconds"][kind] = round(seconds, 1)
    _write_stamp(stamp)
    return seconds


def status_text(estimate_s: float) -> str:
    """What a first run shows while its kernels compile."""
    return f"compiling kernels (first run only, ~{_rounded(estimate_s)} s)"


def run_with_status(func: Callable[[], object], description: str, estimate_s: float, *, progress: bool = True,
                    interval_s: float = STATUS_INTERVAL_S) -> float:
    """Call ``func`` in a helper thread while this thread shows a bar named ``description`` that fills over
    ``estimate_s`` seconds (the notebook's widget is updated from the thread that made it); returns the
    seconds ``func`` took and re-raises what it raised. An interrupt (Jupyter's Stop) ends the wait at once;
    ``func`` then finishes in the background (numba cannot stop a compilation)."""
    from tqdm.auto import tqdm

    outcome = {}

    def target():
        try:
            func()
        except BaseException as error:  # handed to the waiting thread
            outcome["error"] = error

    start = time.perf_counter()
    worker = threading.Thread(target=target, name="compile kernels", daemon=True)
    with tqdm(total=round(estimate_s), desc=description, unit="s", disable=not progress, file=sys.stderr,
              bar_format="{desc}: {bar} {elapsed}") as bar:
        worker.start()
        while worker.is_alive():
            worker.join(interval_s)
            bar.n = min(round(time.perf_counter() - start), bar.total)
            bar.refresh()
        bar.n = bar.total
    if "error" in outcome:
        raise outcome["error"]
    return time.perf_counter() - start


def sources_hash() -> str:
    """Hash of the kernel modules' sources, numba's and Python's versions and the CPU numba compiles for: what
    the cached code depends on (an image built on one CPU and run on another compiles again)."""
    import numba
    from numba.core.registry import cpu_target

    target = cpu_target.target_context.codegen().magic_tuple()
    digest = hashlib.sha256(f"numba {numba.__version__} python {sys.version} target {target}".encode())
    for path in _source_files():
        digest.update(path.relative_to(_PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_dirs() -> list[Path]:
    """numba's cache directories of the kernel modules (``__pycache__`` beside them, or under
    ``$NUMBA_CACHE_DIR``)."""
    from ..kernels import substructure as shared_kernels
    from . import detector

    return [_cache_dir(kernel, folder) for kernel, folder in
            ((detector.seed_numba, _PACKAGE / "samples"), (shared_kernels.nsubjettiness, _PACKAGE / "kernels"))]


def remove_cached_kernels() -> int:
    """Remove numba's cached kernels of the kernel modules (and the stamp); returns how many files went."""
    modules = {path.stem for path in _source_files()}
    removed = 0
    for folder in cache_dirs():
        for path in folder.glob("*.nb[ic]"):
            if path.name.split(".", 1)[0] in modules:
                path.unlink(missing_ok=True)
                removed += 1
    stamp_path().unlink(missing_ok=True)
    return removed


def stamp_path() -> Path:
    return cache_dirs()[0] / STAMP_NAME


def _source_files() -> list[Path]:
    return sorted(path for folder in _SOURCE_DIRS for path in (_PACKAGE / folder).glob("*.py"))


def _cache_dir(kernel, folder: Path) -> Path:
    # numba's own choice of directory (it depends on NUMBA_CACHE_DIR and on what is writable); the in-tree
    # __pycache__ where numba does not say
    cache = getattr(kernel, "_cache", None)
    path = getattr(cache, "_cache_path", None)
    return Path(path) if path else folder / "__pycache__"


def _read_stamp() -> dict:
    try:
        stamp = json.loads(stamp_path().read_text())
    except (OSError, ValueError):
        return {}  # absent or unreadable: nothing known to be compiled
    valid = (isinstance(stamp, dict) and isinstance(stamp.get("compiled"), list)
             and isinstance(stamp.get("seconds"), dict))
    return stamp if valid else {}


def _write_stamp(stamp: dict) -> None:
    path = stamp_path()
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only cache: the kernels are still compiled for this process, the status shows again


def _rounded(seconds: float) -> int:
    return max(10, int(round(seconds, -1)))
