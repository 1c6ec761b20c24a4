"""TensorFlow's two C++ start-up lines are filtered from the first import through the package; nothing else is."""

import subprocess
import sys

ABSL_LINE = "All log messages before absl::InitializeLog() is called"
ONEDNN_LINE = "oneDNN custom operations are on"


def _stderr_of(code: str, **env) -> str:
    import os

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_importing_keras_through_the_package_prints_no_startup_lines():
    stderr = _stderr_of("import deepjet_nb.dashboard, os; os.write(2, b'still here\\n')")
    assert ABSL_LINE not in stderr and ONEDNN_LINE not in stderr
    assert "still here" in stderr  # file descriptor 2 is back in place after the import


def test_asking_for_tensorflows_logs_keeps_the_startup_lines():
    stderr = _stderr_of("import deepjet_nb, tensorflow", TF_CPP_MIN_LOG_LEVEL="0")
    assert ONEDNN_LINE in stderr


def test_the_filter_passes_every_other_line_in_order():
    code = (
        "import os, sys\n"
        "from deepjet_nb._tf_startup import startup_lines_filtered\n"
        "with startup_lines_filtered():\n"
        "    os.write(2, b'first\\n')\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written '\n"
        "             b'to STDERR\\n')\n"
        "    os.write(2, b'I0000 00:00:1796542584.346053   25143 port.cc:153] oneDNN custom operations are on. "
        "You may see slightly different numerical results.\\n')\n"
        "    os.write(2, b'E0000 00:00:1.0 1 foo.cc:1] a real error\\n')\n"
        "    print('a python warning', file=sys.stderr)\n"
        "    os.write(2, b'no newline at the end')\n"
        "os.write(2, b'|after')\n"
    )
    stderr = _stderr_of(code)
    assert stderr == "first\nE0000 00:00:1.0 1 foo.cc:1] a real error\na python warning\nno newline at the end|after"


def test_a_failing_import_still_shows_its_error_and_restores_stderr(tmp_path):
    (tmp_path / "broken_tf.py").write_text("import os\nos.write(2, b'C++ says why\\n')\nraise ImportError('broken')\n")
    code = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from deepjet_nb._tf_startup import quiet_first_import\n"
        "assert quiet_first_import('broken_tf')\n"
        "try:\n"
        "    import broken_tf\n"
        "except ImportError as err:\n"
        "    os.write(2, f'caught {err}\\n'.encode())\n"
    )
    assert _stderr_of(code) == "C++ says why\ncaught broken\n"


def test_a_notebook_cell_importing_keras_through_the_package_shows_no_stderr_box(monkeypatch):
    import os
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    root = str(Path(__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # the package's own default applies
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)  # under pytest, ipykernel leaves fd 2 uncaptured
    notebook = nbformat.v4.new_notebook()
    cell = ("import os, time\nimport deepjet_nb, keras\nos.write(2, b'a real message\\n')\n"
            "time.sleep(1)  # ipykernel forwards fd 2 from a thread")
    notebook.cells = [nbformat.v4.new_code_cell(cell)]
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    stderr = "".join(o.get("text", "") for o in notebook.cells[0].outputs if o.get("name") == "stderr")
    assert stderr == "a real message\n"
