"""``deepjet-nb init``: a user project from a template; its models.py builds the template's network, and its
notebook runs end to end (papermill) on generated samples without edits."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepjet_nb.errors import ArgumentError
from deepjet_nb.models import build_model
from deepjet_nb.project import BUILDER, TEMPLATES, init_project

ROOT = Path(__file__).resolve().parents[1]


def _manifest(dataset):
    return json.loads((Path(dataset) / "manifest.json").read_text())


def test_init_writes_config_models_notebook_and_readme(tmp_path):
    project = init_project(tmp_path / "mytagger", "deepjet")
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "data.yaml", "models.py", "runs", "tagger.ipynb"]
    readme = (project / "README.md").read_text()
    assert "# mytagger:" in readme and "deepjet-nb train --model models.py:build_tagger" in readme
    assert "deepjet-nb generate --process qcd --events 1500 --seed 2" in readme and "$" not in readme
    notebook = json.loads((project / "tagger.ipynb").read_text())
    parameters = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    source = "".join(parameters["source"])
    assert 'model = "models.py:build_tagger"' in source and 'processes = ["ttbar", "qcd"]' in source
    assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code")
    from deepjet_nb.config import load_config

    assert list(load_config(project / "data.yaml").class_names) == ["B", "BB", "LeptB", "C", "UDS", "G"]


def test_init_refuses_to_overwrite_a_project_unless_forced(tmp_path):
    init_project(tmp_path / "p", "deepcsv")
    (tmp_path / "p" / "models.py").write_text("# my work\n")
    with pytest.raises(ArgumentError, match="already holds .*models.py.*--force"):
        init_project(tmp_path / "p", "deepjet")
    assert (tmp_path / "p" / "models.py").read_text() == "# my work\n"
    init_project(tmp_path / "p", "deepjet", force=True)
    assert "def build_tagger(" in (tmp_path / "p" / "models.py").read_text()


def test_unknown_template_suggests_the_close_one(tmp_path):
    with pytest.raises(ArgumentError, match="unknown template 'deepjt'.*did you mean 'deepjet'"):
        init_project(tmp_path / "p", "deepjt")


@pytest.mark.parametrize("template, dataset", [("deepjet", "synthetic_deepjet"), ("deepcsv", "synthetic_deepcsv"),
                                               ("dense", "synthetic_deepcsv"), ("pcnn", "synthetic_deepjet")])
def test_the_copied_builder_builds_the_templates_network(template, dataset, tmp_path, request):
    manifest = _manifest(request.getfixturevalue(dataset))
    project = init_project(tmp_path / template, template)
    mine = build_model(f"{project / 'models.py'}:{BUILDER}", manifest)
    builtin = build_model(TEMPLATES[template].model, manifest)
    assert mine.name == "my_tagger"
    assert mine.count_params() == builtin.count_params()
    assert [type(layer).__name__ for layer in mine.layers] == [type(layer).__name__ for layer in builtin.layers]


def test_cli_init_prints_the_next_step(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "deepjet_nb", "init", str(tmp_path / "t"), "--from", "pcnn"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pcnn project in" in out.stdout and "jupyter lab tagger.ipynb" in out.stdout
    assert '"zprime_tt", "wprime_wz", "qcd_boosted"' in (tmp_path / "t" / "tagger.ipynb").read_text().replace(
        '\\"', '"')


@pytest.mark.slow
def test_an_init_project_runs_end_to_end_under_papermill(tmp_path, monkeypatch):
    import papermill

    project = init_project(tmp_path / "mytagger", "deepjet")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    papermill.execute_notebook(str(project / "tagger.ipynb"), str(tmp_path / "executed.ipynb"), cwd=str(project),
                               parameters={"events": 300, "epochs": 2, "batch_size": 128},
                               progress_bar=False, kernel_name="python3")
    numbers = json.loads((project / "runs" / "summary.json").read_text())
    assert numbers["model"] == f"{project.resolve() / 'models.py'}:build_tagger"
    assert numbers["epochs"] == 2 and numbers["stop_reason"] == "finished"
    # two epochs on 300 events teach DeepJet little: the test checks that the evaluation ran, not its quality
    assert 0.0 < numbers["test_auc"]["b_vs_udsg"] < 1.0
    assert numbers["max_abs_diff"] <= 1e-4
    config = json.loads((project / "runs" / "run" / "train_config.json").read_text())
    assert config["model_source"]["kind"] == "file" and config["lr"] == 1e-3  # the copied deepjet recipe
    assert [row["lr"] for row in _history(project / "runs" / "run")] == [1e-3, 1e-4]  # ... freezes after epoch 1
    assert (project / "runs" / "models" / "my_tagger" / "model.onnx").is_file()


def _history(run):
    from deepjet_nb.run import read_history

    return read_history(run)
