"""Models installed into the served folder: uploads checked before they cost anything, crash-safe replacement.

:func:`install` takes an upload (a bare ONNX file, or a tarball of an exported model directory) into
scratch space inside the served folder, checks it and only then moves it into place:

- a tarball is read as a stream, member by member: the member count, each member's size and the total
  expanded size are checked against :class:`UploadLimits` from each header, before its data is read, and
  the folder's free space against the declared sizes before anything is written; only regular files and
  directories with relative paths inside the model directory are accepted (no links, devices, ``..``);
- the model card may only name files inside its own directory (relative, normalised, no links): checked
  before any file it names is opened, so no error says anything about a path outside;
- the model must answer, with finite probabilities of the right shape, at batch sizes 1, 3 and the
  server's largest batch, and give each row the answer it gives that row alone (a model that is right only
  for one row, or mixes rows, is refused: merged requests would get wrong or failed answers).

A replacement is two renames (old model aside, new one in place); :func:`recover`, run at start-up,
removes stale scratch and completes or rolls back a replacement that a crash interrupted, so a model is
never lost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DeepJetError
from .models import CARD, LABELS, MODEL_ONNX, PARAMS, check_card_files, check_name, inside, open_served
from .tensors import RequestError

__all__ = ["UploadLimits", "install", "remove", "recover"]

log = logging.getLogger("deepjet_nb.service")
_SCRATCH = re.compile(r"\.(upload|staged|replaced|removed)-(.+)-([A-Za-z0-9_]{8})")
_CHUNK = 1 << 20
_ORDER = {"staged": 0, "replaced": 1, "upload": 2, "removed": 3}


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on an uploaded tarball, checked while it streams: ``members`` entries, ``member_bytes`` per
    file and ``total_bytes`` in all once expanded; ``reserve_bytes`` stay free in the models folder."""

    members: int = 64
    member_bytes: int = 512 * 2**20
    total_bytes: int = 1024 * 2**20
    reserve_bytes: int = 64 * 2**20


def install(root: str | os.PathLike, name: str, model, *, filename: str = MODEL_ONNX, params: bytes | None = None,
            labels: bytes | None = None, limits: UploadLimits = UploadLimits(), max_batch_size: int = 32) -> Path:
    """Install an uploaded model as ``root/name``: ``model`` (bytes or a binary file object) is a bare ONNX
    file (``filename`` ending in ``.onnx``; then ``labels`` is required) or a tarball of an exported model
    directory (``.tar``, ``.tar.gz``, ``.tgz``). Checked in scratch, then moved into place, replacing the
    old model; a failed check leaves the old model as it was. Returns the directory. Raises
    :class:`RequestError` naming the upload field at fault (413 over a limit, 507 without the space)."""
    check_name(name)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stream = _as_stream(model)
    scratch = Path(tempfile.mkdtemp(prefix=f".upload-{name}-", dir=root))
    try:
        if _is_tarball(filename, stream):
            _unpack(stream, scratch, limits)
        else:
            if not filename.endswith(".onnx"):
                raise RequestError("model", f"{filename[:80]!r}: upload a model.onnx or a tarball (.tar.gz) of an "
                                            f"exported model directory")
            _check_space(stream, scratch, limits)
            _copy(stream, scratch / MODEL_ONNX)
        if params is not None:
            try:
                json.loads(params)
            except ValueError as err:
                raise RequestError("params", f"not JSON ({err})") from None
            (scratch / PARAMS).write_bytes(params)
        if labels is not None:
            (scratch / LABELS).write_bytes(labels)
        _validate(scratch, name, sorted({1, 3, max(1, int(max_batch_size))}))
        _replace(scratch, root / name)
        return root / name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove(root: str | os.PathLike, name: str) -> None:
    """Remove the model ``root/name`` (moved aside first, so readers never see half a directory)."""
    check_name(name)
    target = Path(root) / name
    if not target.is_dir():
        raise RequestError("model", f"no model {name!r}", status=404)
    aside = target.with_name(f".removed-{name}-{uuid.uuid4().hex[:8]}")
    os.rename(target, aside)
    shutil.rmtree(aside, ignore_errors=True)


def recover(root: str | os.PathLike) -> list[str]:
    """Start-up repair of the served folder: stale upload scratch and removed models are deleted; a
    replacement interrupted between its renames is completed (the checked new model put in place) or rolled
    back (the old one put back). Returns one line per action, also logged."""
    root = Path(root)
    actions = []
    found = [(m, p) for p in (root.iterdir() if root.is_dir() else ()) if (m := _SCRATCH.fullmatch(p.name))]
    # a checked new model is put in place before an old one is put back; the newest first
    found.sort(key=lambda item: (_ORDER[item[0].group(1)], -item[1].lstat().st_mtime))
    for match, entry in found:
        kind, name = match.group(1), match.group(2)
        target = root / name
        try:
            if kind in ("staged", "replaced") and not target.exists() and entry.is_dir():
                os.rename(entry, target)  # staged: the checked new model; replaced: the old one, put back
                done = "completed the replacement" if kind == "staged" else "restored the old model"
                actions.append(f"{name}: {done} from {entry.name}")
                continue
            shutil.rmtree(entry)
            actions.append(f"removed stale {entry.name}")
        except OSError as err:  # a read-only models folder (a KServe volume): serve it as it is
            actions.append(f"could not repair {entry.name} ({type(err).__name__}: {err})")
    for line in actions:
        log.warning("models folder %s: %s", root, line)
    return actions


# ---------------------------------------------------------------------------------------------------------
# reading the upload


def _as_stream(model):
    if isinstance(model, (bytes, bytearray, memoryview)):
        import io

        return io.BytesIO(bytes(model))
    model.seek(0)
    return model


def _is_tarball(filename, stream):
    head = stream.read(512)
    stream.seek(0)
    return filename.endswith((".tar", ".tar.gz", ".tgz")) or head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar"


def _check_space(stream, scratch, limits):
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    free = shutil.disk_usage(scratch).free - limits.reserve_bytes
    if size > free:
        raise RequestError("model", f"{size} bytes; the models folder has {max(free, 0)} bytes to spare", status=507)


def _copy(stream, path):
    with open(path, "wb") as out:
        shutil.copyfileobj(stream, out, _CHUNK)


def _unpack(stream, scratch, limits):
    """Extract the tarball ``stream`` member by member into ``scratch/unpacked``, each header checked first."""
    unpacked = scratch / "unpacked"
    unpacked.mkdir()
    free = shutil.disk_usage(scratch).free - limits.reserve_bytes
    count = total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                count += 1
                if count > limits.members:
                    raise RequestError("model", f"the tarball has more than {limits.members} entries", status=413)
                total += member.size if member.isfile() else 0
                _check_member(member, total, free, limits)
                if member.isdir():
                    (unpacked / member.name).mkdir(parents=True, exist_ok=True)
                    continue
                target = unpacked / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
    except RequestError:
        raise
    except (tarfile.TarError, OSError, EOFError, ValueError) as err:
        raise RequestError("model", f"not a valid tarball ({type(err).__name__}: {str(err)[:200]})") from None
    cards = [p.parent for p in unpacked.rglob(CARD)]
    if len(cards) != 1:
        raise RequestError("model", f"the tarball must hold one exported model directory (one {CARD}), found "
                                    f"{len(cards)}")
    for entry in cards[0].iterdir():
        os.rename(entry, scratch / entry.name)
    shutil.rmtree(unpacked)


def _check_member(member, total, free, limits):
    shown = member.name[:80]
    if not (member.isfile() or member.isdir()):
        raise RequestError("model", f"tarball entry {shown!r}: only regular files and directories are accepted "
                                    f"(no links or devices)")
    if not inside(member.name.rstrip("/") if member.isdir() else member.name):
        raise RequestError("model", f"tarball entry {shown!r}: must be a relative path without '..'")
    if member.size > limits.member_bytes:
        raise RequestError("model", f"tarball entry {shown!r}: {member.size} bytes, over the limit of "
                                    f"{limits.member_bytes} per file", status=413)
    if total > limits.total_bytes:
        raise RequestError("model", f"the tarball expands to more than {limits.total_bytes} bytes", status=413)
    if total > free:
        raise RequestError("model", f"the tarball expands to {total} bytes or more; the models folder has "
                                    f"{max(free, 0)} bytes to spare", status=507)


# ---------------------------------------------------------------------------------------------------------
# checking and moving into place


def _validate(scratch, name, batch_sizes):
    import onnx

    if (scratch / CARD).is_file():
        check_card_files(scratch)
    else:
        try:
            onnx.checker.check_model(str(scratch / MODEL_ONNX))
        except Exception as err:  # onnx raises ValidationError, DecodeError, ...
            raise RequestError("model", f"not a valid ONNX model ({type(err).__name__}: "
                                        f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
        if not (scratch / LABELS).is_file():
            raise RequestError("labels", "a bare ONNX model needs its labels file (class names, one a line)")
    try:
        served = open_served(scratch, name)
    except RequestError:
        raise
    except DeepJetError as err:
        raise RequestError("model", str(err).replace(str(scratch), name)) from None
    for n in batch_sizes:
        _check_batch(served, n)


def _check_batch(served, n):
    """The model on ``n`` random rows: finite ``(n, n_classes)``, each row as the row alone."""
    rng = np.random.default_rng(n)
    feed = {g: rng.normal(size=(n, *s)).astype(np.float32) for g, s in served.shapes.items()}
    try:
        probs = np.asarray(served.run(feed))
        alone = np.concatenate([served.run({g: x[i:i + 1] for g, x in feed.items()}) for i in range(n)]) \
            if n > 1 else probs
    except Exception as err:  # ONNX Runtime failing on the test inference
        raise RequestError("model", f"the test inference of {n} row(s) failed ({type(err).__name__}: "
                                    f"{str(err)[:200]})") from None
    want = (n, len(served.classes))
    if probs.shape != want or not np.all(np.isfinite(probs)):
        raise RequestError("model", f"the test inference of {n} row(s) gave shape {probs.shape} (or non-finite "
                                    f"values), expected {want}")
    if not np.allclose(probs, alone, atol=1e-4):
        raise RequestError("model", f"the test inference of {n} rows differs from the same rows one at a time: the "
                                    f"model mixes the rows of a batch")


def _replace(new, target):
    """Move ``new`` to ``target``: staged beside it, the old directory renamed aside, the staged one renamed
    into place, the old one removed (:func:`recover` finishes any of these steps after a crash)."""
    staged = target.with_name(f".staged-{target.name}-{uuid.uuid4().hex[:8]}")
    os.rename(new, staged)
    aside = None
    if target.exists():
        aside = target.with_name(f".replaced-{target.name}-{uuid.uuid4().hex[:8]}")
        os.rename(target, aside)
    os.rename(staged, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
