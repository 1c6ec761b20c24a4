"""Objects named by the user: ``package.module:name`` or ``path/to/file.py:name``, and where they came from.

A user's model builder, custom layers, loss, metrics, optimizer and callbacks live in the user's own files,
not in the package. This module is the one place that turns such a name into the object, records where it
came from (import path, source file, sha256 of the file) and imports it again in another process, so that
Keras finds the user's registered custom layers when a checkpoint is loaded.

>>> split_import_path("mytagger.models:build_deepsets")
('mytagger.models', 'build_deepsets')
>>> split_import_path("models.py:build")
('models.py', 'build')
>>> is_import_path("deepjet")
False

A file path is imported as a module of its own (named after the file and a hash of its absolute path, so two
``models.py`` of two projects never collide); importing the same file again returns the same module, so the
custom layers it registers are registered once.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

from ._atomic import sha256_file
from .errors import ModelError

__all__ = ["split_import_path", "is_import_path", "load_object", "import_source", "object_source", "source_digest"]

# Module names under which user files are imported (never a name a user package could have).
_FILE_MODULE_PREFIX = "deepjet_nb_user"


def split_import_path(text: str) -> tuple[str, str]:
    """``"where:name"`` → ``(where, name)``; ``where`` a dotted module or a ``.py`` file path.

    Raises :class:`ModelError` for text without one ``:`` followed by a Python name.
    """
    where, sep, name = str(text).rpartition(":")
    if not sep or not where or not name.replace(".", "_").isidentifier():
        raise ModelError(f"{text!r} is not an import path: write package.module:name or path/to/file.py:name",
                         key=str(text))
    return where, name


def is_import_path(text) -> bool:
    """Whether ``text`` is written as an import path (``x:y``) rather than a built-in name."""
    return isinstance(text, str) and ":" in text


def is_file_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def load_object(text: str, *, what: str = "object"):
    """Import the object named ``text`` (``package.module:name``, ``file.py:name``; ``name`` may be dotted, as
    in ``module:Class.method``).

    Raises :class:`ModelError` naming the file or module when it does not exist, fails on import, or lacks
    the name (with the names it has that come close).
    """
    where, name = split_import_path(text)
    module = _import_where(where, what=what, text=text)
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            public = [n for n in vars(module) if not n.startswith("_")]
            raise ModelError(f"{what} {text!r}: {where} has no {name!r}", path=where, key=name, choices=public)
        obj = getattr(obj, part)
    return obj


def import_source(record: dict) -> None:
    """Import the module of a :func:`object_source` record again (in another process: a resume, a prediction),
    so that what it registers with Keras is registered. Notebook cells cannot be imported again and are skipped.

    Raises :class:`ModelError` when the recorded module or file cannot be imported.
    """
    module, file = record.get("module"), record.get("file")
    if module and module in sys.modules and module != "__main__":
        return
    if module and module != "__main__" and not module.startswith(_FILE_MODULE_PREFIX):
        try:
            importlib.import_module(module)
            return
        except ImportError:
            if not file:
                raise ModelError(f"cannot import module {module!r} recorded for {record.get('target')!r}; is it "
                                 f"on the Python path?", key=module) from None
    if file and Path(file).is_file():
        _import_file(Path(file), what="model source", text=record.get("target", file))
    elif file and module != "__main__":
        raise ModelError(f"{file}: the source file recorded for {record.get('target')!r} no longer exists",
                         path=file)


def object_source(obj, target: str | None = None) -> dict:
    """Where ``obj`` (a function or class) comes from: ``{"target", "module", "file", "sha256"}``.

    ``target`` is the import path the user wrote (default ``module:qualname``); ``file`` the absolute path of
    its source file (None for a notebook cell or a built-in); ``sha256`` of that file, or of the object's own
    source text when it has no file (a function typed into a notebook cell).
    """
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    file = _source_file(obj)
    return {"target": target or f"{module}:{qualname}", "module": module, "file": file,
            "sha256": sha256_file(file) if file else source_digest(obj)}


def source_digest(obj) -> str | None:
    """sha256 of the source text of ``obj`` (a notebook's cells are kept by IPython), None when unknown."""
    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


# -- private --------------------------------------------------------------------------------------------------


def _source_file(obj) -> str | None:
    """Absolute path of the real file defining ``obj``; None for notebook cells and objects without one."""
    try:
        file = inspect.getsourcefile(obj)
    except (TypeError, OSError):  # a built-in, or a class of a notebook's __main__
        return None
    if not file or not Path(file).is_file() or Path(file).name.startswith("<"):
        return None
    if "ipykernel" in file or Path(file).parent.name.startswith("ipykernel_"):
        return None  # a notebook cell, stored by the kernel in a temporary file
    return str(Path(file).resolve())


def _import_where(where: str, *, what: str, text: str):
    if is_file_path(where):
        path = Path(where).expanduser()
        if not path.is_file():
            raise ModelError(f"{what} {text!r}: no such file {where}", path=where)
        return _import_file(path.resolve(), what=what, text=text)
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as err:
        if err.name and where.startswith(err.name):
            raise ModelError(f"{what} {text!r}: no module named {err.name!r} (not installed, or not on the Python "
                             f"path; a file is written path/to/file.py:name)", key=err.name) from None
        raise _failed_import(what, text, where, err) from None
    except Exception as err:  # the user's module raised while being imported
        raise _failed_import(what, text, where, err) from None


def _import_file(path: Path, *, what: str, text: str):
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    name = f"{_FILE_MODULE_PREFIX}_{_identifier(path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # The file's folder goes on the path, so a file may import its neighbours (helpers, layer modules).
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise _failed_import(what, text, str(path), err) from None
    return module


def _failed_import(what, text, where, err) -> ModelError:
    return ModelError(f"{what} {text!r}: importing {where} failed ({type(err).__name__}: {err})", path=where)


def _identifier(text: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return name if name and not name[0].isdigit() else f"m_{name}"
