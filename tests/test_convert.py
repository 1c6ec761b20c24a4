"""Conversion: equals a slow reference, handles bad inputs per file, resumes, and Dask gives the same bytes."""

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from deepjet_nb import cli
from deepjet_nb import convert as conv
from deepjet_nb import jets
from deepjet_nb._atomic import sha256_file
from deepjet_nb.testing import write_ntuple
from deepjet_nb.config import load_config
from deepjet_nb.dataset import file_checksum, open_dataset
from deepjet_nb.errors import DatasetError, InputFileError
from deepjet_nb import schema


def unweighted(name="deepjet"):
    cfg = load_config(name)
    return cfg.replace(weighting=cfg.weighting.__class__(**{**cfg.weighting.__dict__, "mode": "none"}))


def with_weighting(name="deepjet", **changes):
    cfg = load_config(name)
    return cfg.replace(weighting=cfg.weighting.__class__(**{**cfg.weighting.__dict__, **changes}))


def shard_bytes(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((Path(out) / "shards").rglob("*.npy"))}


def leftovers(out):
    return [p for p in Path(out).rglob(".tmp-*")]


# --- slow reference conversion: plain Python over per-jet lists -----------------------------------------

def slow_reference(path, cfg, normalisation):
    tree = uproot.open(path)[cfg.tree]
    data = tree.arrays(library="ak")
    pre = cfg.preprocessing
    out = {g.name: [] for g in cfg.inputs}
    out["label"], out["spectators"] = [], []

    def norm(group, branch, x):
        x = float(x)
        if not np.isfinite(x) or x in pre.default_values:
            return pre.replace_with
        s = normalisation[group][branch]
        return float(np.clip((x - s["mean"]) / s["std"], -pre.clip, pre.clip))

    for jet in data.to_list():
        label = [i for i, flags in enumerate(cfg.classes.values()) if sum(jet[f] for f in flags) > 0]
        if not label or not (20 < jet["jet_pt"] < 1000 and abs(jet["jet_eta"]) < 2.5):
            continue
        out["label"].append(label[0])
        for g in cfg.inputs:
            if not g.jagged:
                out[g.name].append([norm(g.name, b, jet[b]) for b in g.branches])
                continue
            objects = list(zip(*[jet[b] for b in g.branches]))
            keys = jet[g.sort_by]
            order = sorted(range(len(objects)), key=lambda j: (np.isnan(keys[j]),
                                                              -keys[j] if g.descending else keys[j]))
            rows = [[norm(g.name, b, objects[j][k]) for k, b in enumerate(g.branches)] for j in order]
            rows = rows[:g.max_length] + [[g.pad_value] * len(g.branches)] * (g.max_length - len(rows[:g.max_length]))
            out[g.name].append(rows)
        sip = sorted((v for v in jet["TagVarCSVTrk_trackSip3dSig"] if not np.isnan(v)), reverse=True)
        derived = {"trackCounting_sip3dSig2": sip[1] if len(sip) > 1 else -10.0}
        out["spectators"].append([derived.get(s, jet.get(s)) for s in cfg.spectators])
    return {k: np.array(v, dtype=np.int8 if k == "label" else np.float32) for k, v in out.items()}


@pytest.mark.parametrize("name", ["deepjet", "deepcsv"])
def test_converted_arrays_equal_slow_reference(synthetic_ntuples, tmp_path, name):
    cfg = unweighted(name)
    result = conv.convert(synthetic_ntuples, tmp_path / "ds", cfg, jobs=1, step_size=400, progress=False)
    assert result.ok and result.converted == ["synth_1", "synth_2"]
    ds = open_dataset(tmp_path / "ds")
    got = ds.shard("synth_1")
    want = slow_reference(synthetic_ntuples[0], cfg, ds.normalisation)
    assert set(got) == {*want, "weight"}
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5, err_msg=key)
    np.testing.assert_array_equal(got["weight"], 1.0)
    assert ds.shard_names == ["synth_1", "synth_2"]
    assert [s["n_jets"] for s in ds.manifest["shards"]] == [len(want["label"]), ds.n_jets - len(want["label"])]


def test_manifest_has_the_documented_keys(synthetic_ntuples, tmp_path):
    conv.convert(synthetic_ntuples[:1], tmp_path / "ds", "deepjet", jobs=1, progress=False)
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert {"format_version", "created", "config_name", "config", "config_hash", "classes", "inputs",
            "spectators", "normalisation", "weighting", "shards"} <= set(manifest)
    assert manifest["inputs"]["cpf"] == {"shape": [25, 16], "features": list(schema.CPF)}
    assert manifest["weighting"]["pt_edges"][-1] == 2000
    assert set(manifest["weighting"]["histograms"]) == set(manifest["classes"])
    assert manifest["shards"][0]["xxh3_128"] == file_checksum(synthetic_ntuples[0])
    assert manifest["source_checksums"] == {str(Path(synthetic_ntuples[0]).resolve()):
                                            file_checksum(synthetic_ntuples[0])}
    assert {"jet_pt", "jet_eta", "trackCounting_sip3dSig2", *schema.FLAVOUR_FLAGS} <= set(manifest["spectators"])
    # Readable without deepjet-nb: plain .npy, memory-mapped.
    cpf = np.load(tmp_path / "ds" / "shards" / "synth_1" / "cpf.npy", mmap_mode="r")
    assert isinstance(cpf, np.memmap) and cpf.dtype == np.float32 and cpf.shape[1:] == (25, 16)


def test_iter_arrays_equals_unweighted_shard(synthetic_ntuples, tmp_path):
    cfg = unweighted()
    conv.convert(synthetic_ntuples[:1], tmp_path / "ds", cfg, jobs=1, progress=False)
    ds = open_dataset(tmp_path / "ds")
    chunks = list(jets.iter_arrays(synthetic_ntuples[0], ds.config, ds.normalisation, step_size=500))
    assert len(chunks) == 3
    shard = ds.shard("synth_1")
    for key in chunks[0]:
        np.testing.assert_array_equal(np.concatenate([c[key] for c in chunks]), shard[key])


def test_jets_converted_in_memory_equal_the_file_conversion_of_the_same_jets(synthetic_ntuples, tmp_path):
    """convert_jets (what the model server runs on raw branches) gives iter_arrays' numbers for the jets the
    file conversion keeps, from plain Python lists as a JSON request carries them."""
    cfg = unweighted()
    conv.convert(synthetic_ntuples[:1], tmp_path / "ds", cfg, jobs=1, progress=False)
    ds = open_dataset(tmp_path / "ds")
    file_arrays = list(jets.iter_arrays(synthetic_ntuples[0], ds.config, ds.normalisation))[0]
    scalars, jagged = jets.input_branches(ds.config)
    with uproot.open(synthetic_ntuples[0]) as f:
        tree = f[ds.config.tree]
        raw = tree.arrays(list(scalars + jagged), library="ak")
        everything = tree.arrays(jets.all_branches(ds.config), library="ak", how=dict)
    kept = jets.keep_mask(jets.scalar_arrays(everything, ds.config), ds.config)
    branches = {b: raw[b].tolist() for b in scalars + jagged}
    memory = jets.convert_jets(branches, ds.config, ds.normalisation)
    assert list(memory) == [g.name for g in ds.config.inputs]
    for group, x in memory.items():
        np.testing.assert_array_equal(x[kept], file_arrays[group])
    del branches[jagged[0]]
    with pytest.raises(InputFileError, match=f"jets: missing branch.*{jagged[0]}"):
        jets.convert_jets(branches, ds.config, ds.normalisation)


def test_the_jet_transform_is_still_importable_from_convert():
    for name in ("iter_arrays", "convert_jets", "input_branches", "derived_spectator", "DEFAULT_STEP_SIZE"):
        assert getattr(conv, name) is getattr(jets, name)


def test_resampling_is_seeded_and_follows_reference_shape(synthetic_ntuples, tmp_path):
    cfg = with_weighting(mode="reference", apply="resample")
    conv.convert(synthetic_ntuples, tmp_path / "a", cfg, jobs=1, step_size=300, progress=False)
    conv.convert(synthetic_ntuples, tmp_path / "b", cfg, jobs=1, step_size=1000, progress=False)
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    ds = open_dataset(tmp_path / "a")
    full = sum(np.sum(h) for h in ds.manifest["weighting"]["histograms"].values())
    assert 0 < ds.n_jets < full
    # Every reference-class jet is kept (its keep probability is 1 wherever it lives).
    assert (ds.load()["label"] == 0).sum() == np.sum(ds.manifest["weighting"]["histograms"]["B"])


def test_per_jet_weights_sum_to_class_counts(synthetic_ntuples, tmp_path):
    cfg = with_weighting(mode="flat", apply="weight")
    conv.convert(synthetic_ntuples, tmp_path / "ds", cfg, jobs=1, progress=False)
    ds = open_dataset(tmp_path / "ds")
    arrays = ds.load()
    assert ds.n_jets == sum(np.sum(h) for h in ds.manifest["weighting"]["histograms"].values())
    for i in range(len(ds.classes)):
        w = arrays["weight"][arrays["label"] == i]
        assert np.all(w > 0)
        assert 0 < w.sum() <= len(w) * (1 + 1e-4)


# --- bad inputs -----------------------------------------------------------------------------------------

def make_bad_inputs(directory):
    directory.mkdir()
    good = write_ntuple(directory / "good.root", 400, seed=5)
    truncated = directory / "truncated.root"
    truncated.write_bytes(Path(good).read_bytes()[:30000])
    empty = directory / "empty.root"
    empty.write_bytes(b"")
    no_entries = write_ntuple(directory / "noentries.root", 0, seed=6)
    missing = write_ntuple(directory / "missing.root", 100, seed=7, skip=("sv_dxysig",))
    with uproot.recreate(directory / "notree.root") as f:
        f["other"] = {"x": np.arange(3)}
    return {"good": good, "truncated": str(truncated), "empty": str(empty), "noentries": no_entries,
            "missing": missing, "notree": str(directory / "notree.root")}


def test_bad_files_are_reported_by_name_and_others_finish(tmp_path):
    files = make_bad_inputs(tmp_path / "in")
    result = conv.convert(list(files.values()), tmp_path / "ds", "deepjet", jobs=1, progress=False)
    # a file without entries is a valid input with no jets: a 0-row shard (docs/formats.md §2)
    assert result.converted == ["good", "noentries"]
    assert set(result.failed) == {v for k, v in files.items() if k not in ("good", "noentries")}
    assert "empty file" in result.failed[files["empty"]]
    assert "'sv_dxysig'" in result.failed[files["missing"]]
    assert "no tree 'deepntuplizer/tree'" in result.failed[files["notree"]]
    for path, cause in result.failed.items():
        assert path in cause
    assert sorted(p.name for p in (tmp_path / "ds" / "shards").iterdir()) == ["good", "noentries"]
    assert open_dataset(tmp_path / "ds").shard_names == ["good", "noentries"]
    assert open_dataset(tmp_path / "ds").shard_jets()["noentries"] == 0
    assert not leftovers(tmp_path / "ds")


def test_cli_exit_code_is_nonzero_when_a_file_fails(tmp_path, capsys):
    files = make_bad_inputs(tmp_path / "in")
    code = cli.main(["convert", "--config", "deepjet", "--out", str(tmp_path / "ds"), "--jobs", "1",
                     "--no-progress", files["good"], files["truncated"]])
    assert code == 1
    err = capsys.readouterr().err
    assert files["truncated"] in err and files["good"] not in err
    assert (tmp_path / "ds" / "shards" / "good" / "label.npy").is_file()


def test_only_bad_files_raise_dataset_error(tmp_path):
    files = make_bad_inputs(tmp_path / "in")
    with pytest.raises(DatasetError, match="no input file could be read"):
        conv.convert([files["empty"], files["truncated"]], tmp_path / "ds", "deepjet", jobs=1, progress=False)


def test_nan_and_inf_values_become_finite(tmp_path):
    import awkward as ak

    rng = np.random.default_rng(0)
    n = 300
    counts = rng.poisson(10, n).astype(np.int32)
    cpf = rng.normal(size=counts.sum()).astype(np.float32)
    cpf[::3] = np.nan
    cpf[1::5] = np.inf
    eta_rel = rng.normal(size=n).astype(np.float32)
    eta_rel[::4] = -np.inf
    path = write_ntuple(tmp_path / "nan.root", n, seed=3, overrides={
        "TagVarCSV_trackSumJetEtRatio": eta_rel, "nCpfcand": counts,
        **{b: ak.unflatten(cpf, counts) for b in schema.CPF}})
    result = conv.convert([path], tmp_path / "ds", "deepjet", jobs=1, progress=False)
    assert result.ok
    arrays = open_dataset(tmp_path / "ds").load()
    for group in ("global", "cpf", "npf", "sv"):
        assert np.isfinite(arrays[group]).all(), group
    norm = open_dataset(tmp_path / "ds").normalisation
    assert np.isfinite(norm["cpf"]["Cpfcan_ptrel"]["mean"])


def test_file_without_selected_jets_gives_empty_shard(tmp_path):
    n = 200
    path = write_ntuple(tmp_path / "soft.root", n, seed=4, overrides={"jet_pt": np.full(n, 5.0, np.float32)})
    good = write_ntuple(tmp_path / "good.root", 300, seed=5)
    result = conv.convert([path, good], tmp_path / "ds", "deepjet", jobs=1, progress=False)
    assert result.ok
    shard = open_dataset(tmp_path / "ds").shard("soft")
    assert shard["cpf"].shape == (0, 25, 16) and shard["label"].shape == (0,)
    with pytest.raises(DatasetError, match="no jet passes the selection"):
        conv.convert([path], tmp_path / "ds2", "deepjet", jobs=1, progress=False)


# --- resume and config changes --------------------------------------------------------------------------

def test_resume_after_interrupted_run(synthetic_ntuples, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    conv.convert(synthetic_ntuples, reference, "deepjet", jobs=1, progress=False)

    real = conv._convert_file

    def interrupted(path, *args):
        if Path(path).stem == "synth_2":
            raise KeyboardInterrupt
        return real(path, *args)

    monkeypatch.setattr(conv, "_convert_file", interrupted)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        conv.convert(synthetic_ntuples, out, "deepjet", jobs=1, progress=False)
    assert open_dataset(out).shard_names == ["synth_1"]
    assert not (out / "shards" / "synth_2").exists() and not leftovers(out)

    monkeypatch.setattr(conv, "_convert_file", real)
    result = conv.convert(synthetic_ntuples, out, "deepjet", jobs=1, progress=False)
    assert result.skipped == ["synth_1"] and result.converted == ["synth_2"]
    assert shard_bytes(out) == shard_bytes(reference)
    again = conv.convert(synthetic_ntuples, out, "deepjet", jobs=1, progress=False)
    assert again.skipped == ["synth_1", "synth_2"] and not again.converted


def test_changed_config_is_refused_unless_reconverting(synthetic_ntuples, tmp_path):
    out = tmp_path / "ds"
    conv.convert(synthetic_ntuples[:1], out, "deepjet", jobs=1, progress=False)
    with pytest.raises(DatasetError, match="another config"):
        conv.convert(synthetic_ntuples[:1], out, "deepjet", fraction=0.5, jobs=1, progress=False)
    result = conv.convert(synthetic_ntuples[:1], out, "deepjet", fraction=0.5, reconvert=True, jobs=1,
                          progress=False)
    assert result.converted == ["synth_1"]
    assert open_dataset(out).manifest["config"]["preprocessing"]["fraction"] == 0.5


def test_changed_source_is_refused_then_reconverted_with_new_statistics(synthetic_ntuples, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    path = write_ntuple(src / "x.root", 300, seed=1)
    out = tmp_path / "ds"
    conv.convert([path], out, "deepjet", jobs=1, progress=False)
    write_ntuple(path, 300, seed=2)
    with pytest.raises(DatasetError, match="changed since the dataset's statistics"):
        conv.convert([path], out, "deepjet", jobs=1, progress=False)
    result = conv.convert([path], out, "deepjet", jobs=1, reconvert=True, progress=False)
    assert result.converted == ["x"]


def test_dataset_with_sha256_source_checksums_still_resumes(synthetic_ntuples, tmp_path):
    # Datasets written before xxh3_128 became the source checksum hold "sha256" in their shard records.
    out = tmp_path / "ds"
    conv.convert(synthetic_ntuples, out, "deepjet", jobs=1, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    # ... and neither the statistics' source checksums nor content checksums
    del manifest["source_checksums"]
    for record in manifest["shards"]:
        del record["xxh3_128"], record["xxh3_128_arrays"]
        record["sha256"] = sha256_file(record["source"])
    del manifest["shards"][1]  # as if the run had stopped before synth_2's shard
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = conv.convert(synthetic_ntuples, out, "deepjet", jobs=1, progress=False)
    assert result.skipped == ["synth_1"] and result.converted == ["synth_2"]
    assert "xxh3_128" in open_dataset(out).manifest["shards"][1]
    manifest["shards"][0]["sha256"] = "0" * 64  # as if synth_1 had changed since
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"synth_1\.root changed since"):
        conv.convert(synthetic_ntuples, out, "deepjet", jobs=1, progress=False)


# --- parallel execution ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_local_processes_and_dask_give_identical_shards(synthetic_ntuples, tmp_path):
    from distributed import Client, LocalCluster

    conv.convert(synthetic_ntuples, tmp_path / "serial", "deepjet", jobs=1, progress=False)
    conv.convert(synthetic_ntuples, tmp_path / "local", "deepjet", jobs=2, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster):
            result = conv.convert(synthetic_ntuples, tmp_path / "dask", "deepjet", scheduler=cluster.scheduler_address,
                                  progress=False)
    assert result.ok
    serial = shard_bytes(tmp_path / "serial")
    assert len(serial) == 2 * 7
    assert shard_bytes(tmp_path / "local") == serial
    assert shard_bytes(tmp_path / "dask") == serial
    manifests = [json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("serial", "local", "dask")]
    for m in manifests[1:]:
        assert m["normalisation"] == manifests[0]["normalisation"]
        assert m["shards"] == manifests[0]["shards"]


# --- the reader -----------------------------------------------------------------------------------------

def test_reader_loads_and_iterates(deepjet_dataset):
    ds = open_dataset(deepjet_dataset)
    assert ds.classes == ["B", "BB", "LeptB", "C", "UDS", "G"]
    assert list(ds.inputs) == ["global", "cpf", "npf", "sv"]
    arrays = ds.load()
    assert arrays["cpf"].shape == (ds.n_jets, 25, 16) and arrays["label"].dtype == np.int8
    assert arrays["spectators"].shape == (ds.n_jets, len(ds.spectators))
    pieces = list(ds.iter_shards())
    assert [name for name, _ in pieces] == ds.shard_names
    np.testing.assert_array_equal(np.concatenate([p["label"] for _, p in pieces]), arrays["label"])
    one = ds.load(shards=ds.shard_names[:1], mmap=True)
    assert isinstance(one["cpf"], np.memmap)
    with pytest.raises(DatasetError, match="no shard"):
        ds.shard("nope")
    with pytest.raises(DatasetError, match="not a converted dataset"):
        open_dataset(deepjet_dataset / "shards")


def test_deepcsv_dataset_has_66_inputs(deepcsv_dataset):
    ds = open_dataset(deepcsv_dataset)
    assert sum(int(np.prod(v["shape"])) for v in ds.inputs.values()) == 66
    assert ds.classes == ["B", "BB", "C", "UDSG"]


# --- notebooks (papermill, small parameters; assert on the numbers they wrote) ---------------------------

@pytest.mark.slow
def test_conversion_tutorial_reweights_to_the_b_shape(ttbar_sample, qcd_sample, run_notebook):
    nb = run_notebook("tutorials/02_conversion.ipynb", inputs=[str(ttbar_sample), str(qcd_sample)])
    numbers = nb.summary
    ds = open_dataset(nb.out_dir / "dataset")
    assert numbers["n_jets"] == ds.n_jets > 0 and numbers["n_shards"] == 2
    assert sum(numbers["jets_per_class"]) == ds.n_jets
    assert numbers["distance_after"]["B"] == pytest.approx(0.0, abs=1e-9)
    before, after = numbers["distance_before"], numbers["distance_after"]
    assert np.mean(list(after.values())) < np.mean(list(before.values()))


@pytest.mark.slow
def test_convert_notebook_writes_dataset(ttbar_sample, qcd_sample, run_notebook, tmp_path):
    nb = run_notebook("notebooks/convert.ipynb", inputs=[str(ttbar_sample), str(qcd_sample)], config="deepcsv",
                      out_dir=str(tmp_path / "dataset"), jobs=1, summary=str(tmp_path / "figures.json"))
    figures = json.loads((tmp_path / "figures.json").read_text())
    ds = open_dataset(nb.out_dir)
    assert figures["converted"] == ["ttbar", "qcd"] and not figures["failed"]
    assert figures["n_jets"] == ds.n_jets > 0
    assert figures["shards"] == ds.shard_jets()
    assert sorted(p.name for p in (tmp_path / "dataset" / "shards" / "ttbar").iterdir()) == \
        ["etarel.npy", "global.npy", "label.npy", "spectators.npy", "tracks.npy", "vertex.npy", "weight.npy"]
