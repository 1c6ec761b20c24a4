"""Compile the sample producer's numba kernels ahead of first use: ``python -m deepjet_nb.samples.warmup``.

``make install`` and Binder's ``postBuild`` run it, so that the first sample a user generates starts at once
instead of compiling for minutes (:mod:`.kernel_cache`). It compiles the kernels of every kind of sample
(AK4 jets, fat jets, event-level entries) on a few Pythia events each, and takes about a second per kind when
they are already compiled; run it again after an upgrade in place.

    python -m deepjet_nb.samples.warmup [--kind jets|fatjets|events ...] [--quiet]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

from . import kernel_cache
from .fatjets import FATJET_PT_MIN
from .producer import PRODUCTS, compile_kernels
from .pythia import EVENT_LABEL

# The process each kind of sample is compiled with, and the options its blocks take (the fat-jet pT threshold,
# the event label): the kernels' types do not depend on them
WARMUP_PROCESS = {"jets": ("ttbar", ()), "fatjets": ("zprime_tt", (FATJET_PT_MIN,)),
                  "events": ("ttbar_allhad", (EVENT_LABEL["ttbar_allhad"],))}


def warm_up(kinds=tuple(PRODUCTS), *, progress: bool = True) -> dict:
    """Compile the kernels of the sample ``kinds`` that numba's cache lacks; returns {kind: seconds spent}
    (0 for a kind already compiled)."""
    seconds = {}
    for kind in kinds:
        process, options = WARMUP_PROCESS[kind]
        seconds[kind] = kernel_cache.compile_once(kind, functools.partial(compile_kernels, kind, process, None,
                                                                          options), progress=progress)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepjet_nb.samples.warmup",
                                     description="Compile the sample producer's numba kernels ahead of first use "
                                     "(quick when they are compiled already).")
    parser.add_argument("--kind", action="append", choices=list(PRODUCTS),
                        help="a kind of sample to compile for (repeatable; default: all)")
    parser.add_argument("--quiet", action="store_true", help="no status bar")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    seconds = warm_up(args.kind or tuple(PRODUCTS), progress=not args.quiet)
    compiled = [kind for kind, spent in seconds.items() if spent > 0]
    what = f"compiled for {', '.join(compiled)}" if compiled else "already compiled"
    print(f"sample producer kernels: {what} in {time.perf_counter() - start:.1f} s "
          f"(numba cache: {kernel_cache.cache_dirs()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
