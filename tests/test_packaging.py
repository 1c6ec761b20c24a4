"""Installation contract: every dependency pinned exactly, in one lock file that make, conda and Binder share;
importing the package stays cheap."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lock_pins():
    pins = {}
    for line in (ROOT / "requirements/lock.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.\-+]+)", line)
        assert match, f"requirements/lock.txt: {line!r} is not an exact pin"
        pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_every_dependency_is_pinned_exactly_and_pythia_comes_from_a_wheel():
    pins = lock_pins()
    assert pins["pythia8mc"] == "8.317.2"  # 8.318.x has no Python 3.11 wheel and builds for very long
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in declared:
        assert name.lower().replace("_", "-") in pins, f"{name} is declared but not pinned"


def test_make_conda_and_binder_install_the_same_lock_file():
    assert "requirements/lock.txt" in (ROOT / "Makefile").read_text()
    assert "-r requirements/lock.txt" in (ROOT / "environment.yml").read_text()
    assert "-r ../requirements/lock.txt" in (ROOT / "binder/requirements.txt").read_text()
    assert (ROOT / "binder/runtime.txt").read_text().strip() == "python-3.11"
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_importing_the_package_loads_neither_tensorflow_nor_a_plot_backend():
    code = ("import sys, deepjet_nb, deepjet_nb.cli; deepjet_nb.cli.build_parser(); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib.pyplot') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_committed_notebooks_have_no_outputs_and_one_parameters_cell():
    import nbformat

    paths = [*ROOT.glob("tutorials/*.ipynb"), *ROOT.glob("notebooks/*.ipynb")]
    assert len(paths) >= 8
    for path in paths:
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, path
