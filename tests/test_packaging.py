"""Installation contract: every dependency pinned exactly, in one lock file that make, conda and Binder share;
importing the package stays cheap; ``import deepjet_nb as djn`` reaches every public module and lists it, and
renamed modules still import from their old names for a release, with a warning."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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


def test_importing_the_package_loads_neither_tensorflow_nor_matplotlib():
    heavy = "sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules)"
    code = (f"import sys, deepjet_nb as djn; dir(djn); print({heavy}); "
            f"import deepjet_nb.cli; deepjet_nb.cli.build_parser(); print({heavy})")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["[]", "[]"]  # neither the package nor the command line's parser


# -- the front door: import deepjet_nb as djn -------------------------------------------------------------

def public_modules_on_disk() -> set[str]:
    """Modules and subpackages of deepjet_nb whose names do not start with an underscore."""
    names = {p.stem for p in (ROOT / "deepjet_nb").glob("*.py")}
    names |= {p.parent.name for p in (ROOT / "deepjet_nb").glob("*/__init__.py")}
    return {n for n in names if not n.startswith("_")}


def test_dir_lists_every_public_module_and_shortcut_and_nothing_stray():
    import deepjet_nb as djn

    listed = set(dir(djn))
    assert set(djn._MODULES) <= listed and set(djn._SHORTCUTS) <= listed
    assert {"DeepJetError", "ConfigError", "__version__"} <= listed
    assert not listed & {"os", "importlib", "_os", "_importlib", "annotations"}
    assert not listed & set(djn._RENAMED)  # the deprecated names still import, but are not advertised
    assert public_modules_on_disk() - set(djn._RENAMED) == set(djn._MODULES)


def test_every_name_in_all_resolves_and_shortcuts_are_the_defining_objects():
    import importlib

    import deepjet_nb as djn

    for name in djn.__all__:
        assert getattr(djn, name) is not None, name
    for name, module in djn._SHORTCUTS.items():
        assert getattr(djn, name) is getattr(importlib.import_module(f"deepjet_nb.{module}"), name)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        djn.nonsense


def test_every_module_and_object_the_readme_names_resolves_from_djn():
    import importlib

    import deepjet_nb as djn

    readme = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"\b(?:djn|deepjet_nb)((?:\.[A-Za-z_]\w*)+)", readme))
    assert len(paths) > 10 and ".evaluate.evaluate" in paths and ".Predictor" in paths
    for path in paths:
        obj, dotted = djn, "deepjet_nb"
        for part in path.strip(".").split("."):
            dotted += f".{part}"
            obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(dotted)
        assert obj is not None, f"README names {dotted}"


def test_renamed_modules_still_import_from_their_old_paths_with_a_deprecation_warning():
    import deepjet_nb as djn

    renamed = {f"deepjet_nb.{old}": f"deepjet_nb.{new}" for old, new in djn._RENAMED.items()}
    renamed["deepjet_nb._synthetic"] = "deepjet_nb.testing"  # private, so not one of djn's attributes
    assert len(renamed) == 4
    # A fresh interpreter per old name: a module warns once, on its first import.
    for old, new in renamed.items():
        code = (f"import warnings, {new} as new\n"
                f"warnings.simplefilter('error')\n"
                f"try:\n    import {old} as old\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
                f"warnings.simplefilter('ignore')\n"
                f"import {old} as old\n"
                f"print(old is new)\n")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert f"warned: {old} is renamed {new}" in result.stdout, result.stdout + result.stderr
        assert result.stdout.strip().endswith("True")


def test_the_deprecation_warning_points_at_the_users_import_line():
    code = ("import deepjet_nb as djn\n"
            "x = 1\n"
            "djn.summary\n"
            "from deepjet_nb import pipeline\n")
    result = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-c", code],
                            capture_output=True, text=True, check=True)
    assert "<string>:3: DeprecationWarning: deepjet_nb.summary is renamed deepjet_nb.record" in result.stderr
    assert "<string>:4: DeprecationWarning: deepjet_nb.pipeline is renamed deepjet_nb.batches" in result.stderr


def test_committed_notebooks_have_no_outputs_and_one_parameters_cell():
    import nbformat

    paths = [*ROOT.glob("tutorials/*.ipynb"), *ROOT.glob("notebooks/*.ipynb")]
    assert len(paths) >= 8
    for path in paths:
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, path
