"""Kernels compiled ahead of first use: the status a first run shows while numba compiles, the stamp that says
which kinds of sample are compiled from which sources, and the warm-up command. Compilation itself is stood in
for by cheap functions (a cold numba cache takes minutes); the stamp lives in a temporary directory."""

import signal
import time

import pytest

from deepjet_nb.errors import DeepJetError
from deepjet_nb.samples import kernel_cache, producer, warmup


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private numba cache directory holding the stamp, and sources whose hash the test chooses."""
    monkeypatch.setattr(kernel_cache, "cache_dirs", lambda: [tmp_path])
    sources = {"hash": "sources-1"}
    monkeypatch.setattr(kernel_cache, "sources_hash", lambda: sources["hash"])
    return tmp_path, sources


def test_status_names_compilation_while_it_runs_not_after(capsys):
    seen_during = []

    def compile_stand_in():
        time.sleep(0.3)
        seen_during.append(capsys.readouterr().err)

    seconds = kernel_cache.run_with_status(compile_stand_in, kernel_cache.status_text(95), 95, interval_s=0.05)
    assert "compiling kernels (first run only, ~100 s)" in seen_during[0]
    assert 0.3 <= seconds < 5


def test_status_reraises_what_the_compilation_raised():
    def failing():
        raise RuntimeError("no LLVM")

    with pytest.raises(RuntimeError, match="no LLVM"):
        kernel_cache.run_with_status(failing, "compiling", 10, interval_s=0.01)


def test_a_kind_compiles_once_then_is_found_in_the_stamp(cache, capsys):
    calls = []
    assert not kernel_cache.compiled("jets")
    assert kernel_cache.compile_once("jets", lambda: calls.append("jets")) > 0
    assert kernel_cache.compiled("jets") and not kernel_cache.compiled("fatjets")
    assert kernel_cache.compile_once("jets", lambda: calls.append("again")) == 0.0
    assert calls == ["jets"]
    assert "compiling kernels (first run only" in capsys.readouterr().err


def test_changed_sources_remove_the_cached_kernels_and_compile_again(cache):
    folder, sources = cache
    calls = []
    kernel_cache.compile_once("jets", lambda: calls.append(1), progress=False)
    ours = folder / "detector.simulate_candidates-102.py311.nbi"
    theirs = folder / "someone_else.kernel-3.py311.nbi"
    ours.touch()
    theirs.touch()
    sources["hash"] = "sources-2"  # e.g. tracking.py edited: detector's cached callers hold the old code
    assert not kernel_cache.compiled("jets")
    kernel_cache.compile_once("jets", lambda: calls.append(2), progress=False)
    assert calls == [1, 2]
    assert not ours.exists() and theirs.exists()
    assert kernel_cache.compiled("jets")


def test_a_failed_compilation_is_not_recorded(cache):
    def failing():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        kernel_cache.compile_once("events", failing)
    assert not kernel_cache.compiled("events")


def test_an_unreadable_stamp_counts_as_nothing_compiled(cache):
    folder, _ = cache
    (folder / kernel_cache.STAMP_NAME).write_text("{not json")
    assert not kernel_cache.compiled("jets")


def test_warm_up_compiles_every_kind_once_and_is_quick_when_warm(cache, monkeypatch, capsys):
    compiled = []
    monkeypatch.setattr(warmup, "compile_kernels", lambda kind, process, pthat_min, options: compiled.append(kind))
    assert warmup.main(["--quiet"]) == 0
    assert sorted(compiled) == sorted(producer.PRODUCTS)
    assert "compiled for jets, fatjets, events" in capsys.readouterr().out
    start = time.perf_counter()
    assert warmup.main(["--quiet"]) == 0
    assert "already compiled" in capsys.readouterr().out
    assert time.perf_counter() - start < 2 and len(compiled) == len(producer.PRODUCTS)


def test_generate_compiles_before_its_first_block_with_the_status(cache, monkeypatch, tmp_path):
    order = []

    def block_stand_in(block, *args):
        order.append(("block", block))
        raise RuntimeError("stand-in block")

    monkeypatch.setattr(producer, "compile_kernels", lambda *args: order.append(("compile", args[0])))
    monkeypatch.setattr(producer, "generate_block", block_stand_in)
    with pytest.raises(DeepJetError, match="block 0 failed: .*stand-in block"):
        producer.generate("ttbar", 5, tmp_path / "x.root", progress=False)
    assert order[:2] == [("compile", "jets"), ("block", 0)]
    assert kernel_cache.compiled("jets")


def test_the_real_sources_hash_changes_with_a_kernel_module(tmp_path, monkeypatch):
    before = kernel_cache.sources_hash()
    package = tmp_path / "deepjet_nb"
    for folder in kernel_cache._SOURCE_DIRS:
        (package / folder).mkdir(parents=True)
        for path in (kernel_cache._PACKAGE / folder).glob("*.py"):
            (package / folder / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(kernel_cache, "_PACKAGE", package)
    assert kernel_cache.sources_hash() == before
    tracking = package / "samples" / "tracking.py"
    tracking.write_text(tracking.read_text() + "\n# edited\n")
    assert kernel_cache.sources_hash() != before


def test_an_interrupt_ends_the_wait_at_once_though_numba_cannot_stop():
    # Jupyter's Stop and the CLI's SIGTERM arrive as an exception in the main thread, which only waits
    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    start = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            kernel_cache.run_with_status(lambda: time.sleep(5), "compiling", 10, progress=False, interval_s=0.05)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - start < 2
