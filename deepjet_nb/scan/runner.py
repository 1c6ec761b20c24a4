"""Running a parameter scan's points (:mod:`deepjet_nb.scan`): each point's notebook executed by papermill in its own
directory, on local processes or a Dask cluster (:class:`deepjet_nb.parallel.Runner`); finished points of an
earlier run are kept, and the table of all points is written."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .._atomic import TMP_PREFIX, atomic_path, sha256_file
from .._jsonio import read_object, to_strict, write_json
from ..errors import ArgumentError, one_line
from .grid import OUT, Plan, value_key
from .ownership import PointWatch, owning
from .results import EXECUTED, KERNEL_LOG, POINT_JSON, POINTS, Scan, write_tables

KERNEL = "python3"          # the Jupyter kernel of the Python running the scan (the venv's)


def run_points(path: Path, planned: Plan, out: Path, *, seeds: int | None, jobs: int | None = None,
               scheduler=None, progress: bool = True) -> Scan:
    """Run the points of ``planned`` (:func:`deepjet_nb.scan.plan`) of notebook ``path`` into the scan
    directory ``out`` (the caller holds its lock) and write the tables.

    Points that finished in an earlier run are skipped. Returns the :class:`Scan` with ``ran`` and ``skipped``
    set. Raises :class:`ArgumentError` when ``out`` holds a scan of another notebook version or other fixed
    parameters; a failed point does not raise (see :func:`run_point`).
    """
    from ..parallel import Runner

    typed, fixed, points = planned
    identity = {"notebook": str(path), "notebook_sha256": sha256_file(path), "parameters": fixed}
    done = _finished_points(out, points, identity)
    todo = [p for p in points if p.id not in done]
    records = dict(done)
    if todo:
        with owning(out) as owner, Runner(jobs, scheduler, n_items=len(todo), what="scan") as runner:
            tasks = [{"notebook": str(path), "directory": str((out / POINTS / p.id).resolve()), "id": p.id,
                      "parameters": to_strict(p.parameters), "fixed": fixed, "identity": identity, "owner": owner}
                     for p in todo]
            results = runner.map(run_point, tasks, desc=f"scan {path.name}", unit="point", progress=progress,
                                 postfix=lambda record: f"{record['id']}: {record['status']}")
            for task, ok, value in results:
                records[task["id"]] = value if ok else _failed_record(task, value)
    result = write_tables(out, identity, typed, seeds, [records[p.id] for p in points])
    result.ran = [p.id for p in todo]
    result.skipped = [p.id for p in points if p.id in done]
    return result


def run_point(task: dict) -> dict:
    """Execute one point (a worker: runs in any process or on a Dask worker) and return its record.

    The notebook runs in a temporary directory next to the point's directory, with that as working directory
    and ``out_dir = "out"``; the directory, with ``point.json`` (the record) written last, then replaces the
    point's directory. The record says ``status`` "ok" (with the recorded ``summary``) or "failed" (with
    ``error`` and, when a cell raised, ``failed_cell``: its execution count, source, exception name and value).

    When the scan that started the point stops, or another scan takes its directory over (``task["owner"]``,
    :mod:`deepjet_nb.scan.ownership`), the notebook's kernel is killed and :class:`ScanStopped` raised: the
    point writes nothing.
    """
    start = time.perf_counter()
    with (atomic_path(task["directory"], directory=True) as tmp,
          PointWatch(task.get("owner"), task["id"]) as watch):
        record = {"id": task["id"], "parameters": task["parameters"], "status": "ok", "summary": None,
                  "error": None, "failed_cell": None, "wall_s": None, "notebook": EXECUTED, "out_dir": OUT,
                  "notebook_sha256": task["identity"]["notebook_sha256"], "fixed": task["fixed"]}
        record.update(_execute(task, tmp, watch.adopt))
        record["wall_s"] = round(time.perf_counter() - start, 3)
        write_json(tmp / POINT_JSON, record)
        watch.check()  # last, right before the directory moves into place
    return to_strict(record)


def _execute(task, directory: Path, on_kernel=lambda process: None) -> dict:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from ..record import read

    parameters = {**task["fixed"], **task["parameters"], "out_dir": OUT}
    try:
        with open(directory / KERNEL_LOG, "w") as log:
            papermill.execute_notebook(task["notebook"], str(directory / EXECUTED), parameters=parameters,
                                       cwd=str(directory), kernel_name=KERNEL, language="python",
                                       progress_bar=False,
                                       kernel_manager_class=_logging_kernel_manager(log, on_kernel))
    except PapermillExecutionError as err:
        source = err.source if isinstance(err.source, str) else "".join(err.source or "")
        cell = {"execution_count": err.exec_count, "source": source, "ename": err.ename,
                "evalue": one_line(err.evalue)}
        return {"status": "failed", "failed_cell": cell,
                "error": f"In [{err.exec_count}] {_first_line(source)!r}: {err.ename}: {one_line(err.evalue)}"}
    except Exception as err:  # the kernel died, could not start, the notebook is not JSON...
        return {"status": "failed", "error": f"{type(err).__name__}: {one_line(str(err))}"}
    try:
        summary = read(directory / OUT)
    except (OSError, ValueError) as err:
        return {"status": "failed", "error": f"the notebook recorded no numbers: {OUT}/summary.json "
                                             f"(deepjet_nb.record.record): {type(err).__name__}: {err}"}
    if not isinstance(summary, dict):
        return {"status": "failed", "error": f"{OUT}/summary.json is not a JSON object"}
    return {"summary": summary}


def _logging_kernel_manager(log, on_kernel):
    """A Jupyter kernel manager class whose kernels write their own stdout and stderr (start-up warnings,
    TensorFlow's log, a crash) into ``log``: the point keeps them, and a scan's terminal keeps its progress bar.
    ``on_kernel`` gets each started kernel's process."""
    from jupyter_client import AsyncKernelManager

    class PointKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            started = await super().start_kernel(**kw)
            process = getattr(self.provisioner, "process", None)
            if process is not None:
                on_kernel(process)
            return started

    return PointKernelManager


def _failed_record(task, cause) -> dict:
    """The record of a point whose worker itself failed (nothing of it was moved into place)."""
    return {"id": task["id"], "parameters": task["parameters"], "status": "failed", "summary": None,
            "error": str(cause), "failed_cell": None, "wall_s": None, "notebook": None, "out_dir": None,
            "notebook_sha256": task["identity"]["notebook_sha256"], "fixed": task["fixed"]}


def _finished_points(out: Path, points, identity) -> dict[str, dict]:
    """Records of the points that finished ("ok") in an earlier run; refuses a scan of another notebook version
    or other fixed parameters. Leftovers of killed runs (``.tmp-`` directories) are removed."""
    done = {}
    root = out / POINTS
    if not root.is_dir():
        return done
    for leftover in root.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for point in points:
        record_path = root / point.id / POINT_JSON
        if not record_path.is_file():
            continue
        record = read_object(record_path, error=ArgumentError, what="scan point record")
        if record.get("status") != "ok":
            continue
        if record.get("notebook_sha256") != identity["notebook_sha256"]:
            raise ArgumentError(f"{record_path}: this point was run with another version of {identity['notebook']}; "
                                f"scan into a new directory (or remove {out})")
        if value_key(record.get("fixed")) != value_key(identity["parameters"]):
            raise ArgumentError(f"{record_path}: this point was run with other fixed parameters "
                                f"({record.get('fixed')}, now {identity['parameters']}); scan into a new directory")
        done[point.id] = record
    return done


def _first_line(text: str) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[0].strip() if lines else ""
