"""Parameter scans (deepjet_nb.scan): grid parsing, one papermill run per point on a runner, resume, failures
reported with their parameters and cell, scan.csv / scan.json, static plots, the comparison widget, the CLI and
tutorial 09 (DeepCSV learning rate × batch size on a Dask LocalCluster)."""

import csv
import json
import os
import subprocess
import sys

import pytest

from deepjet_nb._lock import LockedError, output_lock

from deepjet_nb.errors import ArgumentError
from deepjet_nb.names import safe_name
from deepjet_nb.scan import (POINT_JSON, Point, Scan, expand, open_scan, parse_grid, plan, scan, typed_grid, value_key,
                             write_plots)
from deepjet_nb.widgets import scan_roc_plot
from fixtures.notebooks import ROOT

# A notebook made for these tests: it records numbers that depend on its parameters, fails on purpose where
# x == fail_at, and leaves a prediction file for points with x != 2 (so some points have ROC curves).
PARAMETERS = '''x = 1.0
n = 2
mode = "a"
flag = False
files = ["a.root"]
fail_at = None
prediction = None
seed = 0
out_dir = "out"
summary = None'''
BODY = '''import shutil
from pathlib import Path
from deepjet_nb.record import record
Path(out_dir).mkdir(parents=True, exist_ok=True)'''
CHECK = '''if fail_at is not None and x == fail_at:
    raise ValueError(f"x = {x} is bad")'''
RECORD = '''if prediction and x != 2:
    (Path(out_dir) / "predictions").mkdir(exist_ok=True)
    shutil.copy(prediction, Path(out_dir) / "predictions" / "tagger.root")
record({"score": x * n + 0.25 * seed, "detail": {"n": n, "mode": mode}, "flag": flag}, out_dir=out_dir, path=summary)'''


@pytest.fixture(scope="module")
def tiny_notebook(tmp_path_factory):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(src) for src in (BODY, CHECK, RECORD))]
    path = tmp_path_factory.mktemp("notebook") / "tiny.ipynb"
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    # Kernels (and the runner's worker processes) import deepjet_nb from the working tree.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="module")
def scanned(tiny_notebook, prediction_files, tmp_path_factory):
    """x in {1, 2, 3} × 2 seeds in this process (the CLI test uses local processes, tutorial 09 Dask); the two
    points with x = 3 fail in cell 3."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path_factory.mktemp("scan") / "scan"
    try:
        result = scan(tiny_notebook, {"x": ["1", "2", "3"], "n": ["3"]}, out, seeds=2, jobs=1, progress=False,
                      parameters={"fail_at": 3.0, "prediction": str(prediction_files["deepcsv"])})
    finally:
        mp.undo()
    return result


# -- grid -------------------------------------------------------------------------------------------------


def test_grid_text_is_parsed_to_the_types_of_the_notebook_defaults(tiny_notebook):
    grid = parse_grid(["x=0.5,1", "n=2,3", "flag=true,No", "mode=a,b", "fail_at=1.5,None",
                       'files=["a.root", "b.root"],["c.root"]'])
    assert grid["files"] == ['["a.root", "b.root"]', '["c.root"]']
    typed = typed_grid(tiny_notebook, grid, seeds=2)
    assert typed == {"x": [0.5, 1.0], "n": [2, 3], "flag": [True, False], "mode": ["a", "b"],
                     "fail_at": [1.5, None], "files": [["a.root", "b.root"], ["c.root"]], "seed": [0, 1]}
    assert all(type(v) is float for v in typed["x"]) and all(type(v) is int for v in typed["n"])


@pytest.mark.parametrize("items, seeds, message", [
    (["nn=1,2"], None, "no parameter 'nn'; did you mean n"),
    (["n=2.5"], None, "parameter 'n' (default 2) cannot take '2.5'"),
    (["flag=maybe"], None, "parameter 'flag'"),
    (["files=a.root"], None, "parameter 'files'"),
    (["out_dir=a,b"], None, "set by the scan"),
    (["seed=1,2"], 2, "either seeds or a 'seed' value"),
    (["x=1,1.0"], None, "a value twice"),
])
def test_bad_grids_are_refused_naming_the_key(tiny_notebook, items, seeds, message):
    with pytest.raises(ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        typed_grid(tiny_notebook, parse_grid(items), seeds=seeds)
    assert "tiny.ipynb" in str(err.value) or "scan:" in str(err.value)


@pytest.mark.parametrize("item", ["x", "x=", "x=1,,2", "1x=2"])
def test_malformed_grid_items_are_refused(item):
    with pytest.raises(ArgumentError, match="grid item"):
        parse_grid([item])


def test_a_notebook_without_seed_or_out_dir_cannot_be_scanned_that_way(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(ArgumentError, match="plain.ipynb: no parameter 'out_dir'"):
        typed_grid(path, {"x": ["1", "2"]})
    with pytest.raises(ArgumentError, match="no such notebook"):
        typed_grid(tmp_path / "missing.ipynb", {})


def test_expansion_is_the_product_with_seed_last_and_readable_unique_ids():
    points = expand({"lr": [1e-3, 3e-3], "batch_size": [256, 512], "seed": [0, 1]})
    assert len(points) == 8 and len({p.id for p in points}) == 8
    assert points[0].id == "lr=0.001_batch_size=256_seed=0" and points[1].parameters["seed"] == 1
    assert [p.parameters["lr"] for p in points] == [1e-3] * 4 + [3e-3] * 4
    odd = Point({"files": ["a/b.root"]}), Point({"files": ["a-b.root"]})
    assert odd[0].id != odd[1].id and "/" not in odd[0].id  # sanitised, then told apart by a hash


def test_plan_fixes_single_values_and_makes_existing_paths_absolute(tiny_notebook, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.root").write_bytes(b"")
    grid, fixed, points = plan(tiny_notebook, {"x": ["1", "2"], "mode": ["b"], "files": ['["a.root", "no.root"]']},
                               parameters={"prediction": "a.root"})
    assert grid == {"x": [1.0, 2.0]} and [p.id for p in points] == ["x=1", "x=2"]
    assert fixed == {"prediction": str(tmp_path / "a.root"), "mode": "b",
                     "files": [str(tmp_path / "a.root"), "no.root"]}


def test_spread_has_one_series_per_value_of_the_other_parameters_in_grid_order():
    grid = {"lr": [0.1, 0.2], "bs": [16, 8], "seed": [0, 1]}
    records = [{"id": p.id, "parameters": p.parameters, "status": "ok", "wall_s": 1.0, "error": None,
                "summary": {"m": p.parameters["lr"] * p.parameters["bs"] + p.parameters["seed"]}}
               for p in expand(grid)]
    table = Scan("nowhere", {"grid": grid, "points": records})
    by_lr = table.spread("m", "lr")
    assert list(by_lr) == ["bs=16", "bs=8"]
    assert by_lr["bs=8"]["x"] == [0.1, 0.2] and by_lr["bs=8"]["mean"] == pytest.approx([1.3, 2.1])
    assert by_lr["bs=8"]["std"] == pytest.approx([0.5 ** 0.5] * 2) and by_lr["bs=8"]["n"] == [2, 2]
    by_bs = table.spread("m", "bs", table.rows()[::-1])  # the rows' order does not matter
    assert list(by_bs) == ["lr=0.1", "lr=0.2"] and by_bs["lr=0.2"]["x"] == [16, 8]
    assert by_bs["lr=0.2"]["mean"] == pytest.approx([3.7, 2.1])


# -- running ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_point_runs_in_its_own_directory_and_failures_name_parameters_and_cell(scanned):
    assert len(scanned.points) == 6 and sorted(scanned.ran) == sorted(p.id for p in scanned.points)
    assert scanned.keys == ["x", "seed"] and scanned.parameters["n"] == 3  # one value: fixed, not scanned
    failed = scanned.failed
    assert sorted(r["parameters"]["seed"] for r in failed.values()) == [0, 1]
    for point_id, record in failed.items():
        assert record["parameters"]["x"] == 3.0
        assert record["failed_cell"]["ename"] == "ValueError" and "x = 3.0 is bad" in record["error"]
        assert "raise ValueError" in record["failed_cell"]["source"] and "In [" in record["error"]
        assert (scanned.directory / "points" / point_id / "notebook.ipynb").is_file()  # kept for reading
    for point in scanned.points:
        directory = scanned.directory / "points" / point.id
        record = json.loads((directory / POINT_JSON).read_text())
        assert record["parameters"] == point.parameters and (directory / "kernel.log").is_file()
        if point.parameters["x"] != 3.0:
            assert record["status"] == "ok"
            assert json.loads((directory / "out" / "summary.json").read_text())["score"] == \
                point.parameters["x"] * 3 + 0.25 * point.parameters["seed"]
    assert not list((scanned.directory / "points").glob(".tmp-*"))


@pytest.mark.slow
def test_scan_csv_and_json_hold_parameters_and_recorded_numbers(scanned):
    document = json.loads((scanned.directory / "scan.json").read_text())  # strict JSON: a plain parser reads it
    assert document["grid"] == {"x": [1.0, 2.0, 3.0], "seed": [0, 1]} and document["seeds"] == 2
    assert [p["id"] for p in document["points"]] == [p.id for p in scanned.points]
    with open(scanned.directory / "scan.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and list(rows[0])[:4] == ["id", "status", "x", "seed"]
    by_id = {r["id"]: r for r in rows}
    ok = by_id["x=2_seed=1"]
    assert ok["status"] == "ok" and float(ok["score"]) == 6.25 and ok["detail.mode"] == "a"
    assert ok["detail.n"] == "3" and ok["flag"] == "False" and float(ok["wall_s"]) > 0
    bad = by_id["x=3_seed=0"]
    assert bad["status"] == "failed" and bad["score"] == "" and "ValueError" in bad["error"]
    assert open_scan(scanned.directory).metrics == ["score", "detail.n"]  # numbers only, flags are not


@pytest.mark.slow
def test_seed_spread_gives_mean_and_standard_deviation(scanned):
    spread = scanned.spread("score", "x")
    assert list(spread) == [""]
    s = spread[""]
    assert s["x"] == [1.0, 2.0] and s["n"] == [2, 2]  # the failed x = 3 points leave no value
    assert s["mean"] == pytest.approx([3.125, 6.125]) and s["std"] == pytest.approx([0.25 / 2 ** 0.5] * 2)
    with pytest.raises(ArgumentError, match="no metric 'scor'; did you mean score"):
        scanned.spread("scor", "x")


@pytest.mark.slow
def test_static_plots_are_written_for_batch_use(scanned):
    written = write_plots(scanned.directory, "score")
    names = sorted(p.name for p in written)
    assert names == ["roc.pdf", "roc.png", "score_vs_x.pdf", "score_vs_x.png"]
    assert all(p.stat().st_size > 1000 and p.parent == scanned.directory / "plots" for p in written)
    plot = scanned.parameter_plot("score", "x")
    plot.draw()
    x, mean, err = plot.series[None]
    assert x == [1.0, 2.0] and list(mean) == pytest.approx([3.125, 6.125]) and err[0] > 0
    plot.close()
    roc = scan_roc_plot(scanned, ["x=2_seed=0", "x=1_seed=0", "x=1_seed=1"])
    assert roc.taggers == ["x=1, seed=0", "x=1, seed=1"]  # x = 2 left no predictions
    assert {c.task for c, _ in roc.curves} == {"b_vs_udsg", "b_vs_c"}  # the first signal's tasks, b
    roc.close()
    assert {c.task for c, _ in scan_roc_plot(scanned, ["x=1_seed=0"], "c").curves} == {"c_vs_udsg", "c_vs_b"}


@pytest.mark.slow
def test_explorer_reacts_to_filters_sorting_metric_and_roc_selection(scanned):
    from deepjet_nb.widgets import ScanExplorer

    drawn = ScanExplorer(scanned.directory)
    assert drawn.plots["x"].value[:4] == b"\x89PNG" and drawn.roc.value[:4] == b"\x89PNG"
    view = ScanExplorer(scanned, plot=False)  # the same numbers, without redrawing at every change
    assert view.metric.value == "score" and len(view.rows) == 6
    assert [r["score"] for r in view.rows[:4]] == [6.25, 6.0, 3.25, 3.0]  # best first, failed at the end
    assert "failed: In [" in view.table.value
    assert view.roc_labels == ["x=1, seed=1", "x=1, seed=0"]
    view.filters["x"].value = (value_key(1.0), value_key(3.0))
    assert {r["x"] for r in view.rows} == {1.0, 3.0} and len(view.rows) == 4
    assert view.series["x"][""]["x"] == [1.0]
    view.descending.value = False
    assert [r["score"] for r in view.rows[:2]] == [3.0, 3.25]
    view.metric.value = "detail.n"
    assert view.series["x"][""]["mean"] == [3.0]
    view.filters["x"].value = (value_key(2.0),)  # hides the points that left predictions: the ROC list too
    assert view.roc_points.options == () and view.roc_labels == []
    view.filters["x"].value = (value_key(1.0), value_key(2.0))
    assert {i for _, i in view.roc_points.options} == {"x=1_seed=0", "x=1_seed=1"}
    view.roc_points.value = ("x=1_seed=0",)
    assert view.roc_labels == ["x=1, seed=0"]
    view.roc_points.value = ()
    assert view.roc_labels == []
    drawn.roc_points.value = ()
    assert drawn.roc.value == b""


def write_fat_jet_predictions(path, separation, seed=0):
    """A fat-jet prediction file (docs/formats.md §4b) of tops, Ws and QCD jets, classes Top, W and QCD."""
    import numpy as np
    import uproot

    from deepjet_nb.schema import FJ_LABELS

    rng = np.random.default_rng(seed)
    labels = rng.choice(["label_Top_bcq", "label_W_qq", "label_QCD_others"], size=600)
    branches = {name: (labels == name).astype(np.int32) for name in FJ_LABELS}
    truth = np.stack([labels == name for name in ("label_Top_bcq", "label_W_qq", "label_QCD_others")], axis=1)
    logits = rng.normal(0.0, 1.0, truth.shape) + separation * truth
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    branches.update({f"prob_is{cls}": probs[:, i].astype(np.float32) for i, cls in enumerate(("Top", "W", "QCD"))})
    branches.update(fj_pt=rng.uniform(500, 900, 600), fj_eta=rng.uniform(-2, 2, 600),
                    fj_sdmass=rng.uniform(20, 250, 600))
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        f["tree"] = branches
    return path


def test_explorer_overlays_the_tasks_the_points_prediction_files_hold(tmp_path):
    from sklearn.metrics import roc_auc_score

    from deepjet_nb import boosted
    from deepjet_nb.widgets import ScanExplorer

    records = []
    for x in (1.0, 2.0):  # a scan of a fat-jet notebook, written as the runner writes it
        point_id = f"x={x:g}"
        write_fat_jet_predictions(tmp_path / "points" / point_id / "out" / "predictions" / "pn.root", x)
        records.append({"id": point_id, "parameters": {"x": x}, "status": "ok", "summary": {"score": x},
                        "wall_s": 1.0, "error": None})
    (tmp_path / "scan.json").write_text(json.dumps({"format_version": 1, "notebook": "fat.ipynb",
                                                   "grid": {"x": [1.0, 2.0]}, "seeds": None, "points": records}))
    view = ScanExplorer(tmp_path, plot=False)
    assert list(view.roc_signal.options) == ["Top", "W"]  # from the files: no flavour task is assumed
    assert view.roc_tasks == ["top_vs_qcd"] and view.roc_labels == ["x=2", "x=1"]
    view.roc_signal.value = "W"
    assert view.roc_tasks == ["w_vs_qcd"] and view.roc_labels == ["x=2", "x=1"]
    (curve, label), = scan_roc_plot(view.scan, ["x=1"], "W").curves
    tagger = boosted.read_fat_jets(tmp_path / "points" / "x=1" / "out" / "predictions" / "pn.root")
    use = tagger.truth["W"] | tagger.truth["QCD"]
    assert label == "x=1" and curve.auc == pytest.approx(
        roc_auc_score(tagger.truth["W"][use], tagger.scores["w_vs_qcd"][use]), abs=1e-12)
    written = sorted(p.name for p in write_plots(tmp_path, "score", formats=("png",)))
    assert written == ["roc.png", "score_vs_x.png"]


@pytest.mark.slow
def test_a_rerun_skips_finished_points_and_redoes_failed_or_unfinished_ones(tiny_notebook, tmp_path):
    out = tmp_path / "scan"
    grid = {"x": [1.0, 2.0, 3.0]}
    first = scan(tiny_notebook, grid, out, jobs=1, progress=False, parameters={"fail_at": 3.0}, plots=False)
    assert sorted(first.failed) == ["x=3"]
    stamp = (out / "points" / "x=1" / POINT_JSON).stat().st_mtime_ns
    # A killed run leaves a temporary directory; a point directory without its record is unfinished.
    (out / "points" / ".tmp-x=2.abc").mkdir()
    (out / "points" / "x=2" / POINT_JSON).unlink()
    again = scan(tiny_notebook, grid, out, jobs=1, progress=False, parameters={"fail_at": 3.0}, plots=False)
    assert again.skipped == ["x=1"] and sorted(again.ran) == ["x=2", "x=3"]
    assert (out / "points" / "x=1" / POINT_JSON).stat().st_mtime_ns == stamp
    assert not (out / "points" / ".tmp-x=2.abc").exists() and again.records["x=2"]["status"] == "ok"
    with pytest.raises(ArgumentError, match="other fixed parameters"):
        scan(tiny_notebook, grid, out, jobs=1, progress=False, parameters={"fail_at": 5.0}, plots=False)
    wider = scan(tiny_notebook, {"x": [1.0, 2.0, 4.0]}, out, jobs=1, progress=False,
                 parameters={"fail_at": 3.0}, plots=False)
    assert wider.ran == ["x=4"] and not wider.failed and len(open_scan(out).points) == 3
    with output_lock(out, what="another scan"):
        with pytest.raises(LockedError, match="in use by another scan"):
            scan(tiny_notebook, grid, out, jobs=1, progress=False, parameters={"fail_at": 3.0}, plots=False)


@pytest.mark.slow
def test_a_point_that_records_nothing_fails_with_the_reason(tmp_path, tiny_notebook):
    import nbformat

    nb = nbformat.read(str(tiny_notebook), as_version=4)
    nb.cells = nb.cells[:2]  # no record() cell
    path = tmp_path / "silent.ipynb"
    nbformat.write(nb, str(path))
    result = scan(path, {"x": ["1"]}, tmp_path / "scan", jobs=1, progress=False)
    (record,) = result.failed.values()
    assert "recorded no numbers" in record["error"] and record["failed_cell"] is None


@pytest.mark.slow
def test_cli_scans_on_local_processes_reports_failed_points_and_exits_non_zero(tiny_notebook, tmp_path, capsys):
    from deepjet_nb.cli import main

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "deepjet_nb", "scan", str(tiny_notebook), "--grid", "x=1,3",
                           "fail_at=3", "--out", str(tmp_path / "scan"), "--jobs", "2", "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "1 point(s) run" not in proc.stdout and "2 point(s) run, 0 skipped, 1 failed" in proc.stdout
    failure = [line for line in proc.stderr.splitlines() if line.startswith("deepjet-nb scan: failed:")]
    assert len(failure) == 1 and "x=3" in failure[0] and "ValueError: x = 3.0 is bad" in failure[0]
    assert "In [" in failure[0] and (tmp_path / "scan" / "plots" / "score_vs_x.png").is_file()
    assert "IPKernelApp" not in proc.stderr  # the kernels' own chatter went to each point's kernel.log
    assert main(["scan", str(tiny_notebook), "--grid", "nn=1", "--out", str(tmp_path / "other")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("deepjet-nb scan: error:") and "no parameter 'nn'" in error[0]
    assert not (tmp_path / "other").exists()  # refused before anything was written


# -- tutorial ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tutorial_09_scans_deepcsv_on_a_local_dask_cluster(run_notebook, deepcsv_dataset, ttbar_sample):
    nb = run_notebook("tutorials/09_scan.ipynb", data=str(deepcsv_dataset), test=[str(ttbar_sample)],
                      lrs=[1e-3, 3e-3], batch_sizes=[512], seeds=2, epochs=1, workers=2)
    numbers = nb.summary
    assert numbers["points"] == 4 and numbers["failed"] == 0 and numbers["workers"] == 2
    table = open_scan(nb.out_dir / "scan")
    assert table.keys == ["lr", "seed"] and table.parameters["batch_size"] == 512
    metric = "last.val_beff_at_mistag_0.01"
    assert numbers["metric"] == metric
    assert {r["id"]: r[metric] for r in table.rows()} == pytest.approx(numbers["by_point"])
    assert all(0 <= v <= 1 for v in numbers["by_point"].values())
    assert numbers["best"] == max(numbers["by_point"], key=numbers["by_point"].get)
    assert set(numbers["roc_points"]) <= set(numbers["by_point"]) and numbers["roc_points"]
    assert all(table.predictions(i) for i in numbers["by_point"])  # each point predicted on the test jets
    stem = f"{safe_name('last.val_beff_at_mistag_0.01')}_vs_lr"  # a name with '.' gets a short hash of itself
    assert (nb.out_dir / "scan" / "plots" / f"{stem}.png").is_file()
