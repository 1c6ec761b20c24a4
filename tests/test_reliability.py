"""Reliability: no silent data loss, no orphaned workers, no hang on SIGTERM, every bad input a one-line error.

One test (or family) per defect of issue 11, each reproducing the defect; the data is the smallest that shows it
(synthetic ntuples of a few hundred jets, synthetic datasets and runs, a few Pythia events where generation
itself is under test).
"""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot

from deepjet_nb import schema
from deepjet_nb._atomic import atomic_path, remove_stale
from deepjet_nb._lock import LockedError, output_lock
from deepjet_nb.config import config_from_dict, load_config
from deepjet_nb.convert import convert, iter_arrays
from deepjet_nb.dataset import open_dataset
from deepjet_nb.errors import (ArgumentError, ConfigError, DatasetError, InputFileError, RunError,
                               one_line)
from deepjet_nb.testing import write_ntuple
from fixtures.predictions import DEEPJET, make_jets, write_prediction_file
from fixtures.runs import write_synthetic_dataset, write_untrained_run

JETS = 200


@pytest.fixture
def cli(capsys):
    """Run ``deepjet-nb ARGS`` in this process (as the console script does): returns (exit code, stderr)."""
    from deepjet_nb.cli import main

    def run(*args):
        handler = signal.getsignal(signal.SIGTERM)
        try:
            code = main([str(a) for a in args])
        finally:
            signal.signal(signal.SIGTERM, handler)  # main() turns SIGTERM into KeyboardInterrupt
        return code, capsys.readouterr().err
    return run


def error_line(result):
    """The CLI's error output, which must be exactly one line."""
    code, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def rewrite(src, dst, **changes):
    """Copy ntuple ``src`` to ``dst`` with some branches replaced (each jagged branch gets its own counter)."""
    arrays = uproot.open(src)[schema.TREE].arrays()
    data = {name: arrays[name] for name in arrays.fields if not name.startswith("n") or name in schema.SCALARS}
    data.update(changes)
    with uproot.recreate(dst) as f:
        f[schema.TREE] = data
    return dst


@pytest.fixture(scope="module")
def ntuples(tmp_path_factory):
    """Two small ntuples (a, b) and one with the stem of a from another directory."""
    d = tmp_path_factory.mktemp("rel_ntuples")
    (d / "other").mkdir()
    return {"a": write_ntuple(d / "a.root", JETS, seed=1), "b": write_ntuple(d / "b.root", JETS, seed=2),
            "a_elsewhere": write_ntuple(d / "other" / "a.root", JETS, seed=3)}


@pytest.fixture(scope="module")
def small_dataset(ntuples, tmp_path_factory):
    out = tmp_path_factory.mktemp("rel_ds") / "ds"
    assert convert([ntuples["a"], ntuples["b"]], out, "deepcsv", jobs=1, progress=False).ok
    return out


@pytest.fixture(scope="module")
def predict_run(small_dataset):
    return write_untrained_run(small_dataset, small_dataset.parent / "run")  # untrained: predict needs no training


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A tiny synthetic DeepCSV-shaped dataset (2 shards x 64 jets) for training."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("rel_synth") / "ds", "deepcsv", n_shards=2)


def trainer(data, out, **kwargs):
    from deepjet_nb.train import Trainer

    options = dict(epochs=1, batch_size=32, seed=5, dashboard="off")
    return Trainer(kwargs.pop("model", "deepcsv"), data, out, **{**options, **kwargs})


# --- 1: concurrent writers, and a run directory whose checkpoint disagrees with train_config.json ----------

def test_1_output_directory_is_locked_and_the_holder_is_named(synthetic, tmp_path):
    out = tmp_path / "run"
    with output_lock(out, what="deepjet-nb train"):
        with pytest.raises(LockedError, match=rf"{out}: in use by deepjet-nb train \(pid {os.getpid()} on "):
            trainer(synthetic, out).fit()
    assert not (out / "train_config.json").exists()
    with output_lock(out):  # released by the failed attempt and by the first holder
        pass


@pytest.mark.slow
def test_1_second_trainer_on_the_same_directory_is_refused_and_checkpoint_model_checked(synthetic, tmp_path):
    out = tmp_path / "run"
    first, second = trainer(synthetic, out), trainer(synthetic, out, model="deepcsv")
    first.fit()
    with pytest.raises(RunError, match="already holds a training run"):
        second.fit()
    config = json.loads((out / "train_config.json").read_text())
    config["model"] = "pcnn"  # what the mixed directory of the issue looked like
    (out / "train_config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="checkpoint holds a deepcsv model, train_config.json says pcnn"):
        trainer(synthetic, out, model="pcnn", epochs=2, resume=True).fit()


# --- 2, 3: worker pools on SIGTERM and after kill -9 of the parent -------------------------------------

def _start_generation(out, events=3000):
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "deepjet_nb", "generate", "--process", "ttbar", "--events",
                             str(events), "--jobs", "2", "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        workers = [c for c in parent.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
        if len(workers) >= 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the generation workers did not start")
    time.sleep(2.0)  # the workers are busy with their first blocks
    return proc, parent.children(recursive=True)


def _gone(processes, timeout=15):
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for p in alive:
        p.kill()
    return not alive


@pytest.mark.slow
@pytest.mark.parametrize("to", ["parent", "process group"])  # a batch system may signal the whole group
def test_2_generate_with_workers_ends_promptly_on_sigterm(tmp_path, to):
    out = tmp_path / "g.root"
    proc, children = _start_generation(out)
    if to == "parent":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("generate hangs on SIGTERM")
    assert rc == 130, proc.stderr.read()
    assert _gone(children)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no temporary


@pytest.mark.slow
def test_3_workers_die_with_a_killed_parent_and_leftovers_are_cleaned(tmp_path):
    out = tmp_path / "g.root"
    proc, children = _start_generation(out)
    proc.kill()
    proc.wait()
    assert _gone(children), "workers outlived their parent"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-g.root.")]  # killed mid-write
    from deepjet_nb.samples import generate

    generate("ttbar", events=5, out=out, seed=1, progress=False)  # the next run of the same command
    assert [p.name for p in tmp_path.iterdir()] == ["g.root"]


def test_3_pool_worker_kills_itself_when_its_parent_is_gone():
    code = ("import os, sys; from deepjet_nb.parallel import _die_with; _die_with(os.getppid() + 10**6); "
            "print('survived')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "survived" not in result.stdout


# --- 4, 16: input branches checked against the schema -------------------------------------------------

@pytest.mark.parametrize("branch, values, message", [
    ("isB", lambda n: np.full(n, 0.5, np.float32), "'isB' has type float32; truth flags"),
    ("jet_pt", lambda n: np.ones(n, bool), "'jet_pt' has type bool"),
    ("jet_eta", lambda n: ak.unflatten(np.zeros(n, np.float32), np.ones(n, np.int64)), "'jet_eta' holds a list per jet"),
])
def test_4_16_branches_of_the_wrong_type_or_shape_are_named(ntuples, tmp_path, branch, values, message):
    bad = rewrite(ntuples["a"], tmp_path / "bad.root", **{branch: values(JETS)})
    with pytest.raises(DatasetError, match=message):
        convert([bad], tmp_path / "ds", "deepcsv", jobs=1, progress=False)
    with pytest.raises(InputFileError, match=message):  # prediction converts ROOT inputs with iter_arrays
        next(iter_arrays(bad, "deepcsv"))


def test_16_model_with_other_inputs_than_the_run_is_named(predict_run, small_dataset, tmp_path):
    from deepjet_nb.models import build_model
    from deepjet_nb.predict import predict

    manifest = json.loads((predict_run / "manifest.json").read_text())
    manifest["inputs"]["tracks"]["shape"] = [3, 7]
    with pytest.raises(RunError, match="model inputs .* differ from the run's manifest.json inputs"):
        predict(predict_run, small_dataset, tmp_path / "p.root", model=build_model("deepcsv", manifest),
                progress=False)
    assert not list(tmp_path.iterdir())


# --- 5, 6, 17, 19, 20: dataset reruns --------------------------------------------------------------------

def test_5_rerun_with_another_input_list_is_refused(ntuples, tmp_path):
    out = tmp_path / "ds"
    assert convert([ntuples["a"]], out, "deepcsv", jobs=1, progress=False).ok
    with pytest.raises(DatasetError, match=r"b\.root is not among the inputs this dataset's normalisation"):
        convert([ntuples["a"], ntuples["b"]], out, "deepcsv", jobs=1, progress=False)
    with pytest.raises(DatasetError, match=r"shard 'a' was converted from .*/a\.root, not from .*other/a\.root"):
        convert([ntuples["a_elsewhere"]], out, "deepcsv", jobs=1, progress=False)
    assert convert([ntuples["a"], ntuples["b"]], out, "deepcsv", jobs=1, progress=False, reconvert=True).ok
    assert open_dataset(out).shard_names == ["a", "b"]


def test_6_17_rerun_redoes_corrupted_shards_and_removes_stale_temporaries(ntuples, tmp_path):
    out = tmp_path / "ds"
    convert([ntuples["a"], ntuples["b"]], out, "deepcsv", jobs=1, progress=False)
    reference = open_dataset(out).load()
    cpf = out / "shards" / "a" / "tracks.npy"
    cpf.write_bytes(cpf.read_bytes()[:-100])
    stale_dir = out / "shards" / ".tmp-b.abc123"  # a worker killed with SIGKILL
    stale_dir.mkdir()
    (stale_dir / "tracks.npy").write_bytes(b"x" * 1000)
    (out / ".tmp-manifest.json.xyz").write_text("{")
    with atomic_path(out / "shards" / "c", directory=True) as live:  # being written: must be kept
        result = convert([ntuples["a"], ntuples["b"]], out, "deepcsv", jobs=1, progress=False)
        assert live.is_dir()
    assert result.converted == ["a"] and result.skipped == ["b"]
    assert "tracks.npy" in result.redone["a"] and "truncated" in result.redone["a"]
    assert not stale_dir.exists() and not (out / ".tmp-manifest.json.xyz").exists()
    again = open_dataset(out).load()
    assert all(np.array_equal(again[k], reference[k]) for k in reference)


def test_17_remove_stale_keeps_held_temporaries_and_their_staged_files(tmp_path):
    (tmp_path / ".tmp-x.root.dead").write_text("left by kill -9")
    with atomic_path(tmp_path / "model.keras") as tmp:
        staged = tmp.with_name(tmp.name + ".keras")  # what Keras writes next to it
        staged.write_text("staged")
        removed = remove_stale(tmp_path)
        assert tmp.exists() and staged.exists()
        staged.unlink()
    assert [p.name for p in removed] == [".tmp-x.root.dead"]


def test_19_an_input_without_jets_gives_a_zero_row_shard(ntuples, tmp_path):
    empty = write_ntuple(tmp_path / "empty.root", 0, seed=4)
    result = convert([ntuples["a"], empty], tmp_path / "ds", "deepcsv", jobs=1, progress=False)
    assert result.ok and result.converted == ["a", "empty"], result.failed
    ds = open_dataset(tmp_path / "ds")
    assert ds.shard_jets()["empty"] == 0 and len(ds.shard("empty")["label"]) == 0


@pytest.mark.parametrize("content, message", [
    ("[]", "must be a JSON object, got list"),
    ('{"format_version": 1, "classes": "B", "inputs": {}, "spectators": [], "normalisation": {}, "shards": []}',
     "'classes' must be a non-empty list"),
    ('{"format_version": 1, "classes": ["B"], "inputs": {"g": {"shape": [2]}}, "spectators": [], '
     '"normalisation": {}, "shards": [3]}', r"shards\[0\] must be an object"),
])
def test_20_manifest_of_the_wrong_kind_is_a_dataset_error(ntuples, tmp_path, content, message):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text(content)
    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path / "ds")
    with pytest.raises(DatasetError, match=message):
        convert([ntuples["a"]], tmp_path / "ds", "deepcsv", jobs=1, progress=False)


# --- 7: bad shards in training ----------------------------------------------------------------------------

def test_7_bad_shard_is_named_before_the_run_directory_is_made(tmp_path):
    data = write_synthetic_dataset(tmp_path / "ds", "deepcsv", n_shards=2)
    label = data / "shards" / "sample_1" / "tracks.npy"
    label.write_bytes(label.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"sample_1/tracks\.npy: \d+ bytes, \d+ expected"):
        trainer(data, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_7_data_error_during_training_is_raised_itself_not_wrapped_by_tf_data(synthetic, tmp_path, monkeypatch):
    from deepjet_nb.dataset import Dataset

    t = trainer(synthetic, tmp_path / "run")
    real = Dataset.shard

    def failing(self, name, mmap=False):
        if threading.current_thread() is not threading.main_thread():  # read by tf.data during the epoch
            raise DatasetError(f"{self.path}: shard {name!r} vanished")
        return real(self, name, mmap=mmap)

    monkeypatch.setattr(Dataset, "shard", failing)
    with pytest.raises(DatasetError, match="shard 'sample_.' vanished") as info:
        t.fit()
    assert "tensorflow" not in type(info.value).__module__


# --- 8, 22: prediction inputs and library arguments -------------------------------------------------------

def test_8_unknown_shards_are_refused(predict_run, small_dataset, tmp_path):
    from deepjet_nb.predict import predict

    for shards in (["nope"], ["a", "nope"], "nope"):
        with pytest.raises(ArgumentError, match="no shard 'nope' in"):
            predict(predict_run, [small_dataset], tmp_path / "p.root", shards=shards, progress=False)
    assert not list(tmp_path.iterdir())


def test_22_a_single_path_is_one_input_and_bad_scalars_are_argument_errors(predict_run, small_dataset, ntuples,
                                                                          tmp_path, synthetic):
    import deepjet_nb.evaluate as ev
    from deepjet_nb.predict import predict

    single = convert(str(ntuples["a"]), tmp_path / "ds", "deepcsv", jobs=1, progress=False)
    assert single.converted == ["a"]
    out = predict(predict_run, str(ntuples["a"]), tmp_path / "p.root", progress=False)
    assert [t.name for t in ev.load_taggers(str(out))] == ["p", "track_counting"]
    bad = [(lambda: convert([ntuples["a"]], tmp_path / "x", "deepcsv", jobs="2"), "jobs must be an integer"),
           (lambda: convert([ntuples["a"]], tmp_path / "x", "deepcsv", step_size=None), "step_size must be an int"),
           (lambda: convert([ntuples["a"]], tmp_path / "x", "deepcsv", fraction="half"), "fraction must be a"),
           (lambda: predict(predict_run, [small_dataset], tmp_path / "y.root", batch_size=2.5), "batch_size"),
           (lambda: trainer(synthetic, tmp_path / "r", epochs="3"), "epochs must be an integer"),
           (lambda: trainer(synthetic, tmp_path / "r", epochs=2.5), "epochs must be an integer"),
           (lambda: trainer(synthetic, tmp_path / "r", lr=float("nan")), "lr must be a finite number"),
           (lambda: ev.load_taggers([3]), "must be paths")]
    for call, message in bad:
        with pytest.raises(ArgumentError, match=message):
            call()
    assert not (tmp_path / "x").exists() and not (tmp_path / "r").exists()


# --- 9, 14, 10, 21: evaluation -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_predictions(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel_pred")
    return write_prediction_file(d / "deepjet.root", make_jets(2000, seed=3), DEEPJET, 3.0, seed=1)


def test_9_tagger_names_become_safe_unique_file_names(small_predictions, tmp_path):
    import deepjet_nb.evaluate as ev

    names = ["x/../../../escaped.v1", "x/../../../escaped.v2"]  # outside --out, and the same name there
    out = tmp_path / "eval"
    ev.evaluate([small_predictions] * 2, out, names=names, formats=("png",), baseline=False)
    written = sorted(p.name for p in (out / "plots").iterdir())
    assert all(p.resolve().parent == (out / "plots").resolve() for p in (out / "plots").rglob("*"))
    assert sorted(tmp_path.iterdir()) == [out]
    stems = ev.plot_stems([*names, "a" * 300, "deepjet", "a/b="])
    assert len(set(stems.values())) == 5 and all(len(s) < 80 for s in stems.values())
    assert stems["deepjet"] == "deepjet"
    for name in names:
        for kind in ("discriminant", "efficiency_pt", "efficiency_eta"):
            assert f"{kind}_{stems[name]}.png" in written
    assert set(json.loads((out / "metrics.json").read_text())) == set(names)


def test_14_working_points_are_strict_json_with_a_note_for_tied_scores(tmp_path):
    import deepjet_nb.evaluate as ev

    jets = make_jets(500, seed=4)
    jets["trackCounting_sip3dSig2"] = np.zeros(500, np.float32)  # all-equal scores
    path = write_prediction_file(tmp_path / "p.root", jets, DEEPJET, 3.0, seed=2)
    ev.evaluate([path], tmp_path / "eval", plots=False)
    for name in ("metrics.json", "working_points.json"):
        text = (tmp_path / "eval" / name).read_text()
        json.loads(text, parse_constant=lambda c: pytest.fail(f"{name} holds {c}"))
    wp = json.loads((tmp_path / "eval" / "working_points.json").read_text())["track_counting"]["tight"]
    assert wp["cut"] is None and "no finite cut" in wp["note"]


def test_14_run_state_is_strict_json():
    from deepjet_nb.run import _json

    assert json.loads(_json({"best_val_loss": math.inf, "x": [math.nan]})) == {"best_val_loss": None, "x": [None]}


def test_10_empty_prediction_file_is_a_one_line_error_and_writes_nothing(tmp_path, cli):
    jets = {k: v[:0] for k, v in make_jets(10).items()}
    path = write_prediction_file(tmp_path / "empty.root", jets, DEEPJET, 3.0, seed=1)
    result = cli("evaluate", "--out", tmp_path / "eval", path)
    assert "no jets (an empty prediction file" in error_line(result)
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_21_evaluation_with_one_flavour_says_which_tasks_were_skipped(tmp_path, cli):
    import deepjet_nb.evaluate as ev

    jets = make_jets(300, seed=5)
    for flag in ("isC", "isCC", "isGCC", "isUD", "isS", "isG", "isUndefined"):
        jets[flag][:] = 0
    jets["isB"][:] = 1 - sum(jets[f] for f in ("isBB", "isGBB", "isLeptonicB", "isLeptonicB_C"))
    path = write_prediction_file(tmp_path / "onlyb.root", jets, DEEPJET, 3.0, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev.evaluate([path], tmp_path / "eval", plots=False)
    notes = [str(w.message) for w in caught if issubclass(w.category, ev.SkippedTaskWarning)]
    assert "onlyb: skipped b_vs_udsg (no udsg jets)" in notes and len(notes) == 8  # 4 tasks x (onlyb, baseline)
    code, err = cli("evaluate", "--no-plots", "--out", tmp_path / "eval2", path)
    assert code == 0
    assert "note: onlyb: skipped c_vs_udsg (no c and no udsg jets)" in err


# --- 11, 18: output paths, disk errors and one-line messages ------------------------------------------------

def test_11_output_paths_are_checked_before_any_work(ntuples, tmp_path, small_predictions, cli):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    line = error_line(cli("convert", "--config", "deepcsv", "--out", a_file, ntuples["a"]))
    assert f"dataset directory '{a_file}': it exists and is not a directory" in line
    line = error_line(cli("evaluate", "--out", a_file / "sub", small_predictions))
    assert f"'{a_file}' is not a directory" in line
    line = error_line(cli("generate", "--process", "ttbar", "--events", "10", "--out", tmp_path))
    assert "must end in .root" in line
    (tmp_path / "dir.root").mkdir()
    line = error_line(cli("generate", "--process", "ttbar", "--events", "10", "--out", tmp_path / "dir.root"))
    assert "it is a directory" in line


@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "no space left on device"),
                                         (errno.EROFS, "read-only file system")])
def test_11_disk_errors_while_writing_are_one_line_naming_the_path(monkeypatch, capsys, small_predictions,
                                                                    tmp_path, code, cause):
    import deepjet_nb.evaluate as ev
    from deepjet_nb.cli import main

    def full(path, obj, indent=1):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(ev, "write_json", full)
    assert main(["evaluate", "--no-plots", "--out", str(tmp_path / "eval"), str(small_predictions)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"deepjet-nb evaluate: error: {tmp_path / 'eval'}: {cause}"


def test_18_error_lines_fold_line_breaks_and_name_a_file_once(ntuples, tmp_path, cli):
    assert one_line("x.root: x.root: cannot\n  read it\n") == "x.root: cannot read it"
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\nclasses: [a\ninputs: {}\n")
    line = error_line(cli("convert", "--config", bad_yaml, "--out", tmp_path / "ds", ntuples["a"]))
    assert "not valid YAML" in line
    truncated = tmp_path / "t.root"
    truncated.write_bytes(open(ntuples["b"], "rb").read()[:20000])
    code, err = cli("convert", "--no-progress", "--config", "deepcsv", "--out", tmp_path / "ds", ntuples["a"],
                    truncated)
    lines = [line for line in err.splitlines() if "failed" in line]
    assert code == 1 and len(lines) == 1 and lines[0].count(str(truncated)) == 1, err


# --- 12, 13: typed data-config values ---------------------------------------------------------------------

@pytest.mark.parametrize("change, key", [
    (lambda c: c.update(name=["x"]), "name"),
    (lambda c: c["classes"].update(BB=5), "classes.BB"),
    (lambda c: c["preprocessing"].update(default_values=[-999, "abc"]), "preprocessing.default_values"),
    (lambda c: c["weighting"].update(seed="forty"), "weighting.seed"),
    (lambda c: c["weighting"].update(eta_edges="wide"), "weighting.eta_edges"),
    (lambda c: c["weighting"].update(reference_class=["B"]), "weighting.reference_class"),
    (lambda c: c.update(selection=5), "selection"),
    (lambda c: c.update(spectators=[1]), "spectators"),
    (lambda c: c["preprocessing"].update(clip=float("nan")), "preprocessing.clip"),
    (lambda c: c["preprocessing"].update(fraction=True), "preprocessing.fraction"),
    (lambda c: next(g for g in c["inputs"].values() if "max_length" in g).update(descending="no"), "descending"),
])
def test_12_13_config_values_of_the_wrong_type_name_the_key(change, key):
    raw = load_config("deepcsv").to_dict()
    raw["weighting"].update(mode="reference", reference_class="B")
    change(raw)
    with pytest.raises(ConfigError, match=rf"<test>: .*{key.replace('.', '[.]')}"):
        config_from_dict(raw, source="<test>")


def test_12_binary_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="not a text"):
        load_config(path)


# --- 15: bounds of --events and --pileup -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(pileup=float("nan")), "--pileup must be a finite number"),
    (dict(pileup=float("inf")), "--pileup must be a finite number"),
    (dict(pileup=1e6), "--pileup must be <= 200"),
    (dict(events=10**10), "--events must be <= 100000000"),
    (dict(jobs="2"), "--jobs must be an integer"),
])
def test_15_generation_bounds_are_checked_at_once(tmp_path, kwargs, message):
    from deepjet_nb.samples import generate

    start = time.perf_counter()
    with pytest.raises(ArgumentError, match=message):
        generate("ttbar", **{"events": 10, **kwargs}, out=tmp_path / "x.root", progress=False)
    assert time.perf_counter() - start < 5 and not list(tmp_path.iterdir())


# --- also seen: bit-identical resume, broken pipe -----------------------------------------------------------

@pytest.mark.slow
def test_resume_from_an_epoch_checkpoint_is_bit_identical(synthetic, tmp_path):
    kwargs = dict(hyper={"dropout": 0.3})
    full = trainer(synthetic, tmp_path / "full", epochs=2, **kwargs)
    full.fit()
    trainer(synthetic, tmp_path / "part", epochs=1, **kwargs).fit()
    resumed = trainer(synthetic, tmp_path / "part", epochs=2, resume=True, **kwargs)
    resumed.fit()
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
        assert np.array_equal(a, b)


def test_closed_stdout_pipe_is_not_a_traceback(small_predictions, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "deepjet_nb", "evaluate", "--no-plots", "--out",
                             str(tmp_path / "e"), str(small_predictions)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # like `| head -0`: the reader is gone before the table is printed
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.slow
def test_prediction_on_worker_processes_gives_the_file_of_one_process(predict_run, ntuples, tmp_path):
    from deepjet_nb.predict import predict

    inputs = [ntuples["a"], ntuples["b"]]
    one = predict(predict_run, inputs, tmp_path / "one.root", progress=False)
    two = predict(predict_run, inputs, tmp_path / "two.root", progress=False, jobs=2)
    a, b = (uproot.open(p)["tree"].arrays(library="np") for p in (one, two))
    assert set(a) == set(b) and len(a["jet_pt"]) > 0
    assert all(np.array_equal(a[k], b[k]) for k in a)
