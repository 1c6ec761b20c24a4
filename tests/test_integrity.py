"""Data integrity: content checksums, finite training data, names that cannot escape, verified model cards."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepjet_nb import cli
from deepjet_nb import convert as conv
from deepjet_nb.batches import JetBatches
from deepjet_nb.config import config_from_dict, load_config
from deepjet_nb.dataset import ARRAY_CHECKSUMS, open_dataset
from deepjet_nb.errors import ConfigError, DatasetError
from deepjet_nb.names import safe_name
from deepjet_nb.testing import write_ntuple
from deepjet_nb.verify import verify


@pytest.fixture(scope="module")
def converted(synthetic_ntuples, tmp_path_factory):
    """A dataset converted from the two synthetic ntuples (shared; tests corrupt copies of it)."""
    out = tmp_path_factory.mktemp("integrity") / "ds"
    result = conv.convert(synthetic_ntuples, out, "deepjet", jobs=1, progress=False)
    assert result.ok, result.failed
    return out


@pytest.fixture
def dataset_copy(converted, tmp_path):
    return Path(shutil.copytree(converted, tmp_path / "ds"))


def overwrite(path, offset_from_end, data: bytes):
    """Overwrite bytes of ``path`` in place (same size), as a disk or a careless script would."""
    with open(path, "r+b") as f:
        f.seek(-offset_from_end, 2)
        f.write(data)


# --- names ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("group", ["../evil", "/tmp/evil", "a.b", "1st", "", "label", "weight", "spectators"])
def test_input_group_that_is_not_an_identifier_or_a_dataset_array_is_a_config_error(group):
    raw = load_config("deepcsv").to_dict()
    raw["inputs"] = {**raw["inputs"], group: raw["inputs"]["global"]}
    with pytest.raises(ConfigError, match=r"my\.yaml: inputs") as err:
        config_from_dict(raw, source="my.yaml")
    assert repr(group) in str(err.value)


def test_class_and_spectator_names_must_be_identifiers():
    raw = load_config("deepcsv").to_dict()
    bad_class = {**raw, "classes": {"../B": raw["classes"]["B"], **{k: v for k, v in raw["classes"].items()
                                                                      if k != "B"}}}
    with pytest.raises(ConfigError, match=r"x\.yaml: classes: '\.\./B' is not an identifier"):
        config_from_dict(bad_class, source="x.yaml")
    with pytest.raises(ConfigError, match=r"x\.yaml: spectators: 'jet pt' is not an identifier"):
        config_from_dict({**raw, "spectators": ["jet pt"]}, source="x.yaml")


def test_safe_names_stay_in_their_directory_short_and_distinct():
    names = ["deepjet", "../../etc/passwd", "/abs/path", "a.v1", "a.v2", "x" * 300, "x" * 301, "-rf", "", ".."]
    stems = [safe_name(n) for n in names]
    assert stems[0] == "deepjet"
    assert len(set(stems)) == len(stems)
    for stem in stems:
        assert 0 < len(stem) <= 64 and "/" not in stem and "." not in stem and not stem.startswith("-")


def test_evaluate_takes_a_300_character_tagger_name_and_writes_short_plot_names(tmp_path, capsys):
    from fixtures.predictions import DEEPJET, make_jets, write_prediction_file

    path = write_prediction_file(tmp_path / "p.root", make_jets(1500, seed=2), DEEPJET, 3.0, seed=1)
    name = "n" * 300
    assert cli.main(["evaluate", f"{name}={path}", "--out", str(tmp_path / "eval"), "--no-baseline"]) == 0
    assert name in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    plots = list((tmp_path / "eval" / "plots").iterdir())
    assert plots and all(len(p.name) < 120 for p in plots)


def test_manifest_with_a_shard_name_that_leaves_the_dataset_is_refused(dataset_copy):
    manifest = json.loads((dataset_copy / "manifest.json").read_text())
    manifest["shards"][0]["name"] = ".."
    (dataset_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"shards\[0\]: '\.\.' cannot name a shard directory"):
        open_dataset(dataset_copy)


def test_an_input_whose_stem_starts_with_a_dot_cannot_name_a_shard(tmp_path):
    from deepjet_nb.errors import ArgumentError

    path = write_ntuple(tmp_path / "..root", 50, seed=1)  # stem ".": its shard would be shards/ itself
    with pytest.raises(ArgumentError, match=r"a stem starting with '\.' cannot name a shard"):
        conv.convert([path], tmp_path / "ds", "deepjet", jobs=1, progress=False)


@pytest.mark.parametrize("group", ["label", "../evil"])
def test_manifest_whose_input_group_would_overwrite_an_array_or_leave_the_shard_is_refused(dataset_copy, group):
    manifest = json.loads((dataset_copy / "manifest.json").read_text())
    manifest["inputs"][group] = manifest["inputs"].pop("global")
    (dataset_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"inputs: .* cannot name an input group"):
        open_dataset(dataset_copy)


# --- content checksums ----------------------------------------------------------------------------------

def test_manifest_records_a_content_checksum_per_shard_array(converted):
    ds = open_dataset(converted)
    for record in ds.manifest.shards:
        assert set(record[ARRAY_CHECKSUMS]) == {*ds.inputs, "label", "weight", "spectators"}
    ds.verify()  # the checksums are those of the bytes on disk


def test_bytes_corrupted_without_changing_the_size_are_found_by_verify(dataset_copy):
    cpf = dataset_copy / "shards" / "synth_2" / "cpf.npy"
    size = cpf.stat().st_size
    overwrite(cpf, 4000, b"\x00\x00\xc0\x7f" * 15)  # 60 bytes: fifteen float32 NaNs
    assert cpf.stat().st_size == size
    with pytest.raises(DatasetError, match=r"synth_2/cpf\.npy: content differs from the conversion"):
        open_dataset(dataset_copy).verify()
    report = verify(dataset_copy)
    assert not report.ok and len(report.problems) == 1 and "synth_2/cpf.npy" in report.problems[0]


def test_rerun_of_the_conversion_redoes_a_corrupted_shard(dataset_copy, synthetic_ntuples, converted):
    weight = dataset_copy / "shards" / "synth_1" / "weight.npy"
    overwrite(weight, 8, np.float32([3.5, 3.5]).tobytes())  # finite, plausible, wrong
    result = conv.convert(synthetic_ntuples, dataset_copy, "deepjet", jobs=1, progress=False)
    assert result.converted == ["synth_1"] and "content differs" in result.redone["synth_1"]
    assert weight.read_bytes() == (converted / "shards" / "synth_1" / "weight.npy").read_bytes()


def test_verify_command_says_what_is_wrong_and_exits_1(dataset_copy, capsys):
    assert cli.main(["verify", str(dataset_copy)]) == 0
    assert "(dataset): OK" in capsys.readouterr().out
    overwrite(dataset_copy / "shards" / "synth_1" / "label.npy", 1, b"\x07")
    assert cli.main(["verify", str(dataset_copy)]) == 1
    out = capsys.readouterr().out
    assert "1 problem(s)" in out and "synth_1/label.npy: content differs" in out


def test_input_changed_under_the_same_path_is_refused_with_the_option_to_reconvert(tmp_path):
    path = write_ntuple(tmp_path / "x.root", 400, seed=1)
    out = tmp_path / "ds"
    conv.convert([path], out, "deepjet", jobs=1, progress=False)
    write_ntuple(path, 420, seed=2)  # new content, same path
    with pytest.raises(DatasetError, match=r"x\.root changed since .*statistics.*reconvert"):
        conv.convert([path], out, "deepjet", jobs=1, progress=False)
    assert not verify(out).ok  # the dataset is stale: its source changed
    result = conv.convert([path], out, "deepjet", jobs=1, reconvert=True, progress=False)
    fresh = conv.convert([path], tmp_path / "fresh", "deepjet", jobs=1, progress=False)
    assert result.manifest.normalisation == fresh.manifest.normalisation
    assert result.manifest.n_jets == fresh.manifest.n_jets


def test_an_input_that_changes_during_the_conversion_fails_and_leaves_no_shard(tmp_path, monkeypatch):
    path = write_ntuple(tmp_path / "x.root", 300, seed=1)
    real = conv._convert_file

    def rewritten_first(source, *args):
        write_ntuple(source, 310, seed=3)  # between the statistics pass and the conversion pass
        return real(source, *args)

    monkeypatch.setattr(conv, "_convert_file", rewritten_first)
    result = conv.convert([path], tmp_path / "ds", "deepjet", jobs=1, progress=False)
    assert "changed while the dataset was converted" in result.failed[str(path)]
    assert not (tmp_path / "ds" / "shards" / "x").exists() and open_dataset(tmp_path / "ds").shard_names == []


# --- finite training data -------------------------------------------------------------------------------

def _poke(dataset, shard, key, row, value):
    """Set one value of a shard array in place (the file then no longer matches its checksum)."""
    array = np.load(dataset / "shards" / shard / f"{key}.npy", mmap_mode="r+")
    array[(row,) + (0,) * (array.ndim - 1)] = value
    array.flush()


def test_batches_stop_at_a_nan_input_naming_shard_row_and_feature(dataset_copy):
    _poke(dataset_copy, "synth_2", "cpf", 17, np.nan)
    batches = JetBatches(open_dataset(dataset_copy), batch_size=256, seed=1)
    with pytest.raises(DatasetError, match=r"synth_2/cpf\.npy: row 17: nan in feature 'Cpfcan_BtagPf_trackEtaRel'"):
        list(batches.epoch_batches(0))


def test_batches_name_the_shard_row_of_a_selection_of_jets(dataset_copy):
    _poke(dataset_copy, "synth_1", "weight", 40, np.inf)
    part = {"synth_1": np.arange(30, 60)}
    with pytest.raises(DatasetError, match=r"synth_1/weight\.npy: row 40: inf"):
        JetBatches(open_dataset(dataset_copy), part, batch_size=8, shuffle=False).arrays()


def test_batches_refuse_a_label_that_is_not_a_class(dataset_copy):
    _poke(dataset_copy, "synth_1", "label", 3, 9)
    with pytest.raises(DatasetError, match=r"synth_1/label\.npy: row 3: label 9 is not a class index"):
        JetBatches(open_dataset(dataset_copy), in_memory=True, batch_size=64).arrays()


def test_large_finite_values_are_not_mistaken_for_non_finite_ones(dataset_copy):
    _poke(dataset_copy, "synth_1", "global", 0, 3e38)
    _poke(dataset_copy, "synth_1", "global", 1, 3e38)  # their sum overflows; each is finite
    x, _, _ = JetBatches(open_dataset(dataset_copy), ["synth_1"], shuffle=False).arrays()
    assert x["global"][0, 0] == np.float32(3e38)


def _reseal(dataset):
    """Record the current bytes of every shard as converted (as if the converter had written them)."""
    from deepjet_nb.dataset import file_checksum

    manifest = json.loads((dataset / "manifest.json").read_text())
    for record in manifest["shards"]:
        for key in record[ARRAY_CHECKSUMS]:
            file = dataset / "shards" / record["name"] / f"{key}.npy"
            record[ARRAY_CHECKSUMS][key] = file_checksum(file, 128)  # after the converter's 128-byte header
    (dataset / "manifest.json").write_text(json.dumps(manifest))


def test_training_refuses_a_corrupted_shard_before_writing_anything(dataset_copy, tmp_path):
    from deepjet_nb.train import Trainer

    overwrite(dataset_copy / "shards" / "synth_2" / "npf.npy", 1000, b"\xff" * 60)
    with pytest.raises(DatasetError, match=r"synth_2/npf\.npy: content differs from the conversion"):
        Trainer("deepcsv", dataset_copy, tmp_path / "run", dashboard="off")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.slow
def test_a_nan_loss_stops_training_at_that_step(dataset_copy, tmp_path):
    from deepjet_nb.errors import RunError
    from deepjet_nb.train import train

    for shard in ("synth_1", "synth_2"):  # finite weights so large that the weighted loss overflows
        array = np.load(dataset_copy / "shards" / shard / "weight.npy", mmap_mode="r+")
        array[:] = 3e38
        array.flush()
    _reseal(dataset_copy)
    run = tmp_path / "run"
    with pytest.raises(RunError, match=r"loss became (nan|inf) at step 1 of epoch 1 \(step 1 of the run\)"):
        train("deepjet", dataset_copy, run, epochs=3, batch_size=256, dashboard="off")
    assert "training stopped there" in (run / "logs" / "train.log").read_text()
    assert not (run / "model.keras").exists()


@pytest.mark.slow
def test_verify_names_a_corrupt_model_archive_and_a_dataset_reconverted_since_the_run(synthetic_deepcsv, tmp_path):
    from deepjet_nb.train import train

    data = Path(shutil.copytree(synthetic_deepcsv, tmp_path / "data"))
    run = tmp_path / "run"
    train("deepcsv", data, run, epochs=1, batch_size=64, dashboard="off")
    assert verify(run).ok, verify(run).problems
    archive = run / "checkpoints" / "best.keras"
    overwrite(archive, archive.stat().st_size // 2, b"\xab" * 64)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["normalisation"] = {"global": {"global_0": {"mean": 1.0, "std": 2.0}}}
    (data / "manifest.json").write_text(json.dumps(manifest))
    problems = verify(run).problems
    assert any("best.keras" in p and ("corrupt" in p or "not a readable" in p) for p in problems), problems
    assert any("normalisation differs from the run's manifest.json" in p for p in problems), problems


# --- model cards that cannot lie ------------------------------------------------------------------------

@pytest.fixture
def model_copy(exported_models, tmp_path):
    return Path(shutil.copytree(exported_models["deepcsv"], tmp_path / "model"))


def _edit_card(model_dir, change, *, reseal=False):
    from deepjet_nb.predictor import write_checksums

    card = json.loads((model_dir / "model.json").read_text())
    change(card)
    (model_dir / "model.json").write_text(json.dumps(card))
    if reseal:
        write_checksums(model_dir)  # as if whoever edited the card had also written the checksums again


def test_exported_model_lists_the_sha256_of_its_card_and_model_files(model_copy):
    import hashlib

    lines = (model_copy / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split("  ")) for line in lines)
    assert {"model.json", "model.onnx", "model.opt.onnx"} <= set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((model_copy / name).read_bytes()).hexdigest() == digest
    assert verify(model_copy).ok, verify(model_copy).problems


def test_a_model_card_edited_after_export_is_refused_at_load(model_copy):
    from deepjet_nb.errors import DeployError
    from deepjet_nb.predictor import Predictor

    _edit_card(model_copy, lambda card: card["classes"].reverse())
    with pytest.raises(DeployError, match=r"model\.json: its sha256 differs from the one in SHA256SUMS"):
        Predictor(model_copy)
    assert Predictor(model_copy, verify=False).classes[0] == "UDSG"  # the development opt-out


@pytest.mark.parametrize("change, field", [
    (lambda card: card["classes"].reverse(), r"classes: \['UDSG', 'C', 'BB', 'B'\], the ONNX graph was exported "
                                             r"with \['B', 'BB', 'C', 'UDSG'\]"),
    (lambda card: card["normalisation"]["global"][next(iter(card["normalisation"]["global"]))].update(mean=7.0),
     r"inputs, preprocessing, normalisation or data_config_hash differ"),
    (lambda card: card["inputs"]["tracks"].update(shape=[7, 6]), r"inputs: .*tracks\[7, 6\].*the ONNX graph takes"),
    (lambda card: card["classes"].append("X"), r"classes: 5 classes, the ONNX output has 4 columns"),
])
def test_a_card_that_does_not_describe_the_onnx_graph_is_refused_naming_the_field(model_copy, change, field):
    from deepjet_nb.errors import DeployError
    from deepjet_nb.predictor import Predictor

    _edit_card(model_copy, change, reseal=True)
    with pytest.raises(DeployError, match=r"model\.json: " + field):
        Predictor(model_copy)
    report = verify(model_copy)
    assert not report.ok and any(re.search(field, p) for p in report.problems), report.problems


def test_a_card_naming_a_file_outside_its_directory_is_refused(model_copy):
    from deepjet_nb.errors import DeployError
    from deepjet_nb.predictor import open_model

    _edit_card(model_copy, lambda card: card["files"]["float32"].update(file="/etc/hostname"))
    with pytest.raises(DeployError, match=r"model\.json: files\.float32\.file must name a file of the directory"):
        open_model(model_copy, verify=False)  # even unchecked (verify=True refuses the edited card first)


def test_predict_names_the_group_that_holds_strings_or_nan(exported_models):
    from deepjet_nb.errors import ArgumentError
    from deepjet_nb.predictor import Predictor

    predictor = Predictor(exported_models["deepcsv"])
    good = {g: np.zeros((3, *shape), np.float32) for g, shape in predictor.shapes.items()}
    with pytest.raises(ArgumentError, match=r"input group 'vertex' does not hold numbers"):
        predictor.predict({**good, "vertex": np.full((3, 8), "abc")})
    nan = good["tracks"].copy()
    nan[2, 1, 3] = np.nan
    with pytest.raises(ArgumentError, match=r"input group 'tracks': jet 2 holds NaN or inf"):
        predictor.predict({**good, "tracks": nan})
    assert predictor.predict(good)["B"].shape == (3,)


# --- scans that stop when their owner stops -------------------------------------------------------------

def _sleeping_notebook(path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('seed = 0\nout_dir = "out"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import time\ntime.sleep(120)")]
    nbformat.write(nb, str(path))
    return path


def test_the_owner_file_a_point_watches_is_absolute_so_workers_elsewhere_find_it(tmp_path, monkeypatch):
    from deepjet_nb.scan import ownership

    (tmp_path / "out" / "scan").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with ownership.owning(Path("out/scan")) as owner:
        assert Path(owner["file"]).is_absolute()
        monkeypatch.chdir("/")  # a Dask worker runs in a directory of its own
        ownership.PointWatch(owner, "p").check()  # the scan still owns its directory: no ScanStopped


@pytest.mark.slow
@pytest.mark.parametrize("how", ["the scan was killed", "a new scan took the directory over"])
def test_a_point_whose_scan_stopped_kills_its_kernel_and_writes_nothing(tmp_path, monkeypatch, how):
    import os
    import threading
    import time

    from deepjet_nb.scan import ownership
    from deepjet_nb.scan.runner import run_point

    out = tmp_path / "scan"
    out.mkdir()
    owner_file = out / ownership.OWNER
    owner_file.write_text(json.dumps({"token": "old-scan"}))
    kernels = []
    adopt = ownership.PointWatch.adopt

    def recording(self, process):
        kernels.append(process)
        adopt(self, process)

    monkeypatch.setattr(ownership.PointWatch, "adopt", recording)
    stop = threading.Event()

    def other_scan():  # keeps the heartbeat going, then (second case) a new scan takes over
        started = time.monotonic()
        while not stop.wait(0.5):
            os.utime(owner_file)
            if how.startswith("a new scan") and kernels and time.monotonic() - started > 3:
                owner_file.write_text(json.dumps({"token": "new-scan"}))

    if how.startswith("a new scan"):
        threading.Thread(target=other_scan, daemon=True).start()
    task = {"notebook": str(_sleeping_notebook(tmp_path / "sleep.ipynb")), "directory": str(out / "points" / "p"),
            "id": "p", "parameters": {}, "fixed": {}, "identity": {"notebook_sha256": "x"},
            "owner": {"file": str(owner_file), "token": "old-scan"}}
    start = time.monotonic()
    try:
        with pytest.raises(ownership.ScanStopped, match="scan point 'p': .*nothing written"):
            run_point(task)
    finally:
        stop.set()
    assert kernels and kernels[0].wait(timeout=5) is not None  # the kernel is gone
    assert time.monotonic() - start < 60  # not the notebook's 120 s
    assert not (out / "points" / "p").exists() and not list((out / "points").glob(".tmp-*"))
