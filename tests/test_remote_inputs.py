"""Inputs read where they live: root:// URLs from a real XRootD server started by the test (fixtures/xrootd.py;
skipped with a message when the server is not installed), and glob patterns."""

from pathlib import Path

import pytest

from deepjet_nb import convert as conv
from deepjet_nb.cli import main
from deepjet_nb.inspect import inspect
from deepjet_nb.rootio import URL, input_files
from fixtures.custom_ntuples import WEAVER_CONFIG, write_weaver_ntuple

STEP = 200  # entries per chunk: several reads per file


@pytest.fixture
def fast_failing_client(monkeypatch):
    """XRootD client settings that give up on a dead server within seconds (the defaults allow 30 s)."""
    monkeypatch.setenv("XRD_CONNECTIONWINDOW", "2")
    monkeypatch.setenv("XRD_CONNECTIONRETRY", "1")
    monkeypatch.setenv("XRD_REQUESTTIMEOUT", "10")
    monkeypatch.setenv("XRD_STREAMERRORWINDOW", "0")


@pytest.fixture
def local_files(tmp_path):
    directory = tmp_path / "local"
    directory.mkdir()
    return [write_weaver_ntuple(directory / f"{name}.root", 1000, seed=i, baskets=5)
            for i, name in enumerate(("first", "second"))]


def _shard_bytes(dataset: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted((dataset / "shards").rglob("*")) if p.is_file()}


def test_root_urls_convert_to_the_same_shards_as_the_local_files(xrootd_server, local_files, tmp_path):
    urls = [xrootd_server.put(p) for p in local_files]
    local = conv.convert(local_files, tmp_path / "local_ds", WEAVER_CONFIG, jobs=1, step_size=STEP, progress=False)
    remote = conv.convert(urls, tmp_path / "remote_ds", WEAVER_CONFIG, jobs=1, step_size=STEP, progress=False)
    assert local.ok and remote.ok and remote.converted == ["first", "second"]
    assert _shard_bytes(tmp_path / "remote_ds") == _shard_bytes(tmp_path / "local_ds")
    assert [s["source"] for s in remote.manifest.shards] == urls
    # a rerun checks the sources over the network and skips what is done
    again = conv.convert(urls, tmp_path / "remote_ds", WEAVER_CONFIG, jobs=1, step_size=STEP, progress=False)
    assert again.skipped == ["first", "second"] and not again.converted


def test_a_url_pattern_lists_the_files_the_server_holds(xrootd_server, local_files):
    urls = [xrootd_server.put(p) for p in local_files]
    pattern = xrootd_server.url("*.root")
    assert input_files([pattern], "convert") == sorted(urls)
    assert all(isinstance(u, URL) for u in input_files(pattern, "convert"))
    assert inspect(urls[0]).trees == {"tree": 1000}


def test_a_server_killed_mid_read_is_one_line_and_a_rerun_resumes(xrootd_server, local_files, tmp_path, monkeypatch,
                                                                  fast_failing_client, capsys):
    urls = [xrootd_server.put(p) for p in local_files]
    read_chunks = conv.read_chunks

    def dying_server(path, *args, **kwargs):  # the server goes away after the first chunk of the second file
        for i, chunk in enumerate(read_chunks(path, *args, **kwargs)):
            yield chunk
            if path == urls[1] and i == 0:
                xrootd_server.stop()

    monkeypatch.setattr(conv, "read_chunks", dying_server)
    code = main(["convert", *urls, "--config", str(_config_file(tmp_path)), "--out", str(tmp_path / "ds"),
                 "--jobs", "1", "--step-size", str(STEP), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith(f"deepjet-nb convert: failed: {urls[1]}: ")
    assert not (tmp_path / "ds" / "shards" / "second").exists()

    monkeypatch.setattr(conv, "read_chunks", read_chunks)
    xrootd_server.start()
    result = conv.convert(urls, tmp_path / "ds", _config_file(tmp_path), jobs=1, step_size=STEP, progress=False)
    assert result.ok and result.skipped == ["first"] and result.converted == ["second"]
    conv.convert(local_files, tmp_path / "local_ds", _config_file(tmp_path), jobs=1, step_size=STEP, progress=False)
    assert _shard_bytes(tmp_path / "ds") == _shard_bytes(tmp_path / "local_ds")


def test_a_url_of_a_server_that_is_gone_is_one_line(xrootd_server, local_files, tmp_path, fast_failing_client,
                                                    capsys):
    url = xrootd_server.put(local_files[0])
    xrootd_server.stop()
    assert main(["inspect", url]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"deepjet-nb inspect: error: {url}: cannot open") and "\n" not in err


def _config_file(tmp_path) -> Path:
    import yaml

    path = tmp_path / "weaver.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(WEAVER_CONFIG))
    return path


def test_prediction_reads_urls_as_it_reads_local_files(xrootd_server, local_files):
    from deepjet_nb.jets import iter_arrays

    url = xrootd_server.put(local_files[0])
    remote = list(iter_arrays(url, WEAVER_CONFIG, step_size=STEP))
    local = list(iter_arrays(local_files[0], WEAVER_CONFIG, step_size=STEP))
    assert len(remote) == len(local) == 5
    for a, b in zip(remote, local):
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_reading_root_urls_after_tensorflow_came_first_is_refused_instead_of_crashing():
    """XRootD's library crashes the process when loaded after TensorFlow's: the package loads it first, and says
    what to do when TensorFlow was imported before deepjet_nb."""
    import subprocess
    import sys

    first_package = "import deepjet_nb, tensorflow, XRootD.client; print('ok')"
    done = subprocess.run([sys.executable, "-c", first_package], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    first_tensorflow = ("import tensorflow\n"
                        "from deepjet_nb.errors import InputFileError\n"
                        "from deepjet_nb.rootio import xrootd_settings\n"
                        "try:\n"
                        "    xrootd_settings('root://127.0.0.1//data/a.root')\n"
                        "except InputFileError as err:\n"
                        "    print(err)\n")
    done = subprocess.run([sys.executable, "-c", first_tensorflow], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "import deepjet_nb before TensorFlow" in done.stdout, done.stderr[-2000:]
