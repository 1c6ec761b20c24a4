"""Verification of a whole directory: a converted dataset, a training run or an exported model.

Each kind is checked against what its writer recorded, byte for byte where it recorded checksums:

- a **dataset**: the manifest, every shard's headers, sizes and content checksums, the values training needs
  (finite inputs and weights, labels that are class indices), and the source files (still there, unchanged
  since their shards were converted);
- a **run**: the manifest copy, the training config, the history (finite losses), every model file (each
  ``.keras`` archive's CRCs) and, when the dataset it trained on is still there, that the dataset is the one it
  was trained on (same config, classes and normalisation);
- an **exported model**: the checksums of its files and the card against the ONNX graph (see
  :func:`deepjet_nb.predictor.model_problems`).

Example::

    >>> from deepjet_nb.verify import verify
    >>> report = verify("data/deepjet")          # doctest: +SKIP
    >>> report.ok, report.problems               # doctest: +SKIP
    (False, ['data/deepjet/shards/qcd/cpf.npy: content differs from the conversion (...)'])

Command line: ``deepjet-nb verify DIR...`` prints what is wrong and exits 1 when anything is.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .dataset import MANIFEST, SHARDS, Dataset, file_checksum
from .errors import ArgumentError, DeepJetError, one_line


@dataclass
class Verification:
    """What :func:`verify` found: ``problems`` (each one line naming the file: the directory cannot be
    trusted as it is), ``notes`` (what could not be checked, or is unusual but harmless), ``checked``
    (what was checked, one line each)."""

    path: Path
    kind: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The report as lines: a verdict, then the problems and notes."""
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        head = f"{self.path} ({self.kind}): {verdict}; checked {', '.join(self.checked) or 'nothing'}"
        return [head, *(f"  problem: {one_line(p)}" for p in self.problems),
                *(f"  note: {one_line(n)}" for n in self.notes)]


def verify(path: str | os.PathLike, *, sources: bool = True) -> Verification:
    """Check the directory ``path`` (a dataset, a run or an exported model, recognised by its files) and
    return a :class:`Verification`. ``sources``: for a dataset, also hash its source files (one read of each).
    Raises :class:`ArgumentError` when ``path`` is none of the three."""
    path = Path(path)
    kind = kind_of(path)
    report = Verification(path=path, kind=kind)
    if kind == "dataset":
        _verify_dataset(path, report, sources)
    elif kind == "run":
        _verify_run(path, report)
    else:
        _verify_model(path, report)
    return report


def kind_of(path: str | os.PathLike) -> str:
    """"dataset", "run" or "model": what the directory ``path`` holds, from its marker files."""
    from .predictor import CARD
    from .run import TRAIN_CONFIG

    path = Path(path)
    if not path.is_dir():
        raise ArgumentError(f"{path}: no such directory", path=path)
    if (path / TRAIN_CONFIG).is_file():
        return "run"
    if (path / CARD).is_file():
        return "model"
    if (path / MANIFEST).is_file():
        return "dataset"
    raise ArgumentError(f"{path}: not a converted dataset ({MANIFEST}), a run directory ({TRAIN_CONFIG}) or an "
                        f"exported model ({CARD})", path=path)


# --- datasets -------------------------------------------------------------------------------------------

def _verify_dataset(path: Path, report: Verification, sources: bool) -> None:
    try:
        dataset = Dataset(path)
    except DeepJetError as err:
        report.problems.append(str(err))
        return
    records = dataset.manifest.shards
    report.checked += [f"{len(records)} shard(s): headers, sizes, content checksums, values"]
    for record in records:
        _verify_shard(dataset, record, report)
    _note_unlisted_shards(dataset, report)
    if sources:
        report.checked.append("source files")
        _verify_sources(dataset, report)


def _verify_shard(dataset: Dataset, record: dict, report: Verification) -> None:
    from .dataset import ARRAY_CHECKSUMS

    problem = dataset.manifest.shard_problem(dataset.path, record, content=True)
    if problem:
        report.problems.append(problem)
        return
    if not record.get(ARRAY_CHECKSUMS):
        report.notes.append(f"shard {record['name']!r} has no content checksums (converted by an earlier "
                            "version): only its headers and sizes were checked")
    try:
        dataset.check_values(record["name"], dataset.shard(record["name"], mmap=True))
    except DeepJetError as err:
        report.problems.append(str(err))


def _note_unlisted_shards(dataset: Dataset, report: Verification) -> None:
    listed = set(dataset.shard_names)
    shards_dir = dataset.path / SHARDS
    extra = sorted(p.name for p in shards_dir.iterdir() if p.name not in listed and not p.name.startswith(".")) \
        if shards_dir.is_dir() else []
    if extra:
        report.notes.append(f"{shards_dir}: {', '.join(extra)} not in the manifest (never read)")


def _verify_sources(dataset: Dataset, report: Verification) -> None:
    """Each source still has the checksum it had when its shard was converted (and when the statistics were
    computed, where the manifest recorded that too). Records of older versions, with sha256, are not compared."""
    from .convert import CHECKSUM

    expected = dataset.manifest.source_checksums
    for record in dataset.manifest.shards:
        if record.get("source") and record.get(CHECKSUM):
            expected.setdefault(record["source"], record[CHECKSUM])
    for source, checksum in expected.items():
        if not Path(source).is_file():
            report.notes.append(f"{source}: source not found here (moved, remote, or on another machine); not "
                                "compared")
        elif file_checksum(source) != checksum:
            report.problems.append(f"{source}: changed since the dataset was converted from it; the shards and the "
                                   "normalisation are stale (deepjet-nb convert --reconvert redoes the dataset)")


# --- runs -----------------------------------------------------------------------------------------------

def _verify_run(path: Path, report: Verification) -> None:
    from .run import HISTORY, MODEL_FILES, open_run

    try:
        run = open_run(path)
        train_config = run.train_config()
        run.split()
    except DeepJetError as err:
        report.problems.append(str(err))
        return
    report.checked.append("manifest copy, training config, split")
    _verify_history(run.file(HISTORY), report)
    for which, name in MODEL_FILES.items():
        if run.file(name).is_file():
            report.checked.append(name)
            problem = _archive_problem(run.file(name))
            if problem:
                report.problems.append(problem)
        elif which == "final":
            report.notes.append(f"{run.file(name)}: no final model ({run.status()})")
    _verify_run_data(run, train_config, report)


def _verify_history(history: Path, report: Verification) -> None:
    if not history.is_file():
        report.notes.append(f"{history}: no history (no epoch finished)")
        return
    report.checked.append(history.name)
    with open(history, newline="") as f:
        for row in csv.DictReader(f):
            for key in ("loss", "val_loss"):
                value = row.get(key)
                if value not in (None, "") and not math.isfinite(float(value)):
                    report.problems.append(f"{history}: {key} is {value} at epoch {row.get('epoch')}")


def _archive_problem(file: Path) -> str | None:
    """What is wrong with the zip archive ``file`` (a ``.keras`` model): unreadable, or a member whose bytes
    do not match its CRC."""
    try:
        with zipfile.ZipFile(file) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        return f"{file}: not a readable model archive ({err})"
    return f"{file}: member {bad!r} is corrupt (CRC mismatch)" if bad else None


def _verify_run_data(run, train_config: dict, report: Verification) -> None:
    """The dataset the run trained on, when it is still there, is the one in the run's manifest copy."""
    data = train_config.get("data")
    if not data or not (Path(data) / MANIFEST).is_file():
        report.notes.append(f"training data {data!r} not found here; not compared with the run")
        return
    try:
        dataset = Dataset(data)
    except DeepJetError as err:
        report.problems.append(f"training data: {err}")
        return
    report.checked.append(f"training data {data}")
    for key in ("config_hash", "classes", "inputs", "normalisation"):
        if dataset.manifest.get(key) != run.manifest.get(key):
            report.problems.append(f"{data}: {key} differs from the run's {MANIFEST} (the dataset was "
                                   "reconverted since this run trained on it); predictions with this run need "
                                   "the data it was trained with")
            return


# --- exported models ------------------------------------------------------------------------------------

def _verify_model(path: Path, report: Verification) -> None:
    from .predictor import CHECKSUMS, model_problems

    report.checked.append("file checksums, card against the ONNX graph")
    if not (path / CHECKSUMS).is_file():
        report.notes.append(f"{path}: no {CHECKSUMS} (exported by an earlier version): the card's own checksums "
                            "of the model files were checked, not the card")
    report.problems += model_problems(path)


# --- command line ---------------------------------------------------------------------------------------

def register_cli(subparsers) -> None:
    """Add ``deepjet-nb verify``."""
    p = subparsers.add_parser(
        "verify", help="check a dataset, run or exported model directory against its checksums",
        description="Check each directory: a converted dataset (shards byte for byte against the manifest's "
                    "checksums, values, sources), a training run (files, model archives, its dataset) or an "
                    "exported model (file checksums, card against the ONNX graph). Exit code 1 if anything is "
                    "wrong.")
    p.add_argument("paths", nargs="+", metavar="DIR", help="dataset, run or exported model directories")
    p.add_argument("--no-sources", action="store_true", help="do not hash a dataset's source files")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    ok = True
    for path in args.paths:
        report = verify(path, sources=not args.no_sources)
        print("\n".join(report.lines()))
        ok &= report.ok
    return 0 if ok else 1
