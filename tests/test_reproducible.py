"""Reproducible by seed: the same seed gives bit-identical training histories, predictions and evaluation on the
same machine, each run in fresh processes so that nothing is shared between the two (docs/reproducibility.md).

The slow tests run a tiny pipeline twice (DeepCSV and DeepJet networks, the BDT, the evaluation), each step in a
process of its own as ``make demo`` runs them, and compare the outputs bit for bit.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import uproot

from deepjet_nb import performance as perf
from deepjet_nb.errors import ArgumentError

SEED = 7
NETWORKS = ("deepcsv", "deepjet")

# One pipeline step in a fresh process; argv: step, data, out, inputs..., seed, extra (see _step).
WORKER = textwrap.dedent("""
    import json, sys
    step, data, out, *inputs, seed, extra = sys.argv[1:]
    seed = int(seed)
    if step in ("deepcsv", "deepjet"):
        from deepjet_nb.train import train
        from deepjet_nb.predict import predict
        train(step, data, out + "/run", epochs=2, batch_size=64, seed=seed, dashboard="off")
        predict(out + "/run", inputs, out + "/prediction.root", which="best", progress=False)
    elif step == "bdt":
        from deepjet_nb.bdt import predict_bdt, train_bdt
        result = train_bdt(data, out + "/run", seed=seed, threads=int(extra), max_iter=15, n_iter_no_change=5)
        predict_bdt(out + "/run", inputs, out + "/prediction.root", progress=False)
        open(out + "/result.json", "w").write(json.dumps({k: result[k] for k in ("n_iter", "val_loss")}))
    elif step == "evaluate":
        from deepjet_nb.evaluate import evaluate
        evaluate(inputs, out, names=json.loads(extra), plots=False, differences=[("deepjet", "deepcsv")])
""")


def _step(step, data, out, inputs, seed=SEED, extra="-"):
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", WORKER, step, str(data), str(out), *map(str, inputs), str(seed),
                           extra], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{step} failed:\n{done.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def tiny_datasets(synthetic_ntuples, tmp_path_factory):
    """The two random ntuples converted with the DeepCSV and DeepJet configs: {config: dataset path}."""
    from deepjet_nb.convert import convert

    root = tmp_path_factory.mktemp("reproducible_data")
    datasets = {}
    for config in NETWORKS:
        result = convert(synthetic_ntuples, root / config, config, jobs=1, progress=False)
        assert result.ok, result.failed
        datasets[config] = root / config
    return datasets


@pytest.fixture(scope="module")
def twice(tiny_datasets, synthetic_ntuples, tmp_path_factory):
    """The tiny pipeline run twice with seed :data:`SEED`: {"first"|"again": {step: output directory}}; the BDT
    grows its trees on one thread the first time and on two the second."""
    root = tmp_path_factory.mktemp("reproducible_runs")
    test_input = synthetic_ntuples[:1]
    runs = {}
    for attempt, bdt_threads in (("first", 1), ("again", 2)):
        out = {net: _step(net, tiny_datasets[net], root / attempt / net, test_input) for net in NETWORKS}
        out["bdt"] = _step("bdt", tiny_datasets["deepcsv"], root / attempt / "bdt", test_input,
                           extra=str(bdt_threads))
        predictions = [out[name] / "prediction.root" for name in (*NETWORKS, "bdt")]
        out["evaluate"] = _step("evaluate", "-", root / attempt / "evaluate", predictions,
                                extra=json.dumps([*NETWORKS, "bdt"]))
        runs[attempt] = out
    return runs


def _history_numbers(run_dir):
    """history.csv without its wall-time column: every number training produced, as text (exact digits)."""
    lines = (run_dir / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "time_s"]
    return [[row.split(",")[i] for i in keep] for row in lines]


def _prediction_arrays(path):
    return uproot.open(path)["tree"].arrays(library="np")


@pytest.mark.slow
@pytest.mark.parametrize("network", NETWORKS)
def test_training_twice_with_one_seed_gives_identical_history_csv(twice, network):
    first, again = (_history_numbers(twice[attempt][network] / "run") for attempt in ("first", "again"))
    assert len(first) == 3  # header and two epochs
    assert first == again


@pytest.mark.slow
@pytest.mark.parametrize("tagger", [*NETWORKS, "bdt"])
def test_predictions_of_one_seed_are_bit_identical(twice, tagger):
    first, again = (_prediction_arrays(twice[attempt][tagger] / "prediction.root") for attempt in ("first", "again"))
    assert set(first) == set(again) and len(first["jet_pt"]) > 100
    for branch in first:
        assert np.array_equal(first[branch], again[branch]), branch


@pytest.mark.slow
def test_bdt_grows_the_same_trees_on_one_thread_and_on_two(twice):
    # the two attempts differ in the BDT's OpenMP threads only (see the fixture)
    first, again = (json.loads((twice[a]["bdt"] / "result.json").read_text()) for a in ("first", "again"))
    assert first == again and first["n_iter"] >= 5


@pytest.mark.slow
def test_evaluation_of_one_seeds_predictions_gives_identical_metrics_json(twice):
    first, again = ((twice[a]["evaluate"] / "metrics.json").read_text() for a in ("first", "again"))
    assert first == again
    errors = json.loads(first)["deepjet"]["b_vs_udsg"]
    assert errors["auc_err"] > 0 and "deepcsv" in errors["minus"]


@pytest.mark.slow
def test_another_seed_trains_another_network(twice, tiny_datasets, synthetic_ntuples, tmp_path):
    # the comparisons above could not tell a run that ignores its seed from a reproducible one
    other = _step("deepcsv", tiny_datasets["deepcsv"], tmp_path / "other", synthetic_ntuples[:1], seed=SEED + 1)
    first = _prediction_arrays(twice["first"]["deepcsv"] / "prediction.root")
    assert not np.array_equal(_prediction_arrays(other / "prediction.root")["prob_isB"], first["prob_isB"])


@pytest.mark.slow
def test_training_logs_that_it_ran_deterministically_by_default(twice):
    log = (twice["first"]["deepjet"] / "run" / "logs" / "train.log").read_text()
    assert "runtime: deterministic=True" in log


def test_bootstrap_errors_follow_their_seed():
    rng = np.random.default_rng(3)
    is_sig = np.arange(3000) % 3 == 0
    task = perf.Task("sig_vs_bkg", "sig", "bkg", score="s")
    tagger = perf.Tagger(name="t", scores={"s": rng.normal(is_sig * 1.0, 1.0)}, truth={"sig": is_sig, "bkg": ~is_sig},
                         weights=None, spectators={}, tasks={task.name: task}, source="t.root")
    same = [perf.roc_errors(tagger, seed=5, n_boot=50) for _ in range(2)]
    assert same[0] == same[1]
    assert perf.roc_errors(tagger, seed=6, n_boot=50)[0] != same[0][0]


def test_determinism_is_switched_on_and_off_for_the_process():
    code = textwrap.dedent("""
        from deepjet_nb.tf_runtime import DETERMINISTIC, apply_determinism, determinism_enabled
        assert DETERMINISTIC is True and not determinism_enabled()
        assert apply_determinism(True) and determinism_enabled()
        assert apply_determinism(False) and not determinism_enabled()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_deterministic_must_be_a_boolean(synthetic_deepcsv, tmp_path):
    from deepjet_nb.train import Trainer

    with pytest.raises(ArgumentError, match="deterministic"):
        Trainer("deepcsv", synthetic_deepcsv, tmp_path / "run", deterministic="yes", dashboard="off")


@pytest.mark.parametrize(("flag", "expected"), [([], None), (["--deterministic"], True),
                                                (["--no-deterministic"], False)])
def test_train_command_passes_the_determinism_switch_on(flag, expected):
    from deepjet_nb.cli import build_parser

    args = build_parser().parse_args(["train", "--model", "deepcsv", "--data", "d", "--out", "o", *flag])
    assert args.deterministic is expected  # None: the library's default (deepjet_nb.tf_runtime.DETERMINISTIC)
