"""Old module names kept for one release: importing one warns and hands out the renamed module itself."""

from __future__ import annotations

import importlib
import sys
import warnings

# Frames between the user's code and the shim that the warning skips: ``importlib.import_module`` and the
# package's lazy attribute lookup (``djn.old``). warnings.warn skips the import system's own frames itself.
_PASS_THROUGH_MODULES = frozenset(("importlib", "deepjet_nb"))


def alias_renamed_module(old: str, new: str) -> None:
    """Make the module ``old`` (being imported now) the module ``new``, with a :class:`DeprecationWarning`.

    Call it from the shim module ``old``. The warning is attributed to the user's ``import`` (or ``djn.old``)
    line rather than to the import machinery, so a notebook or script shows it by default. Attribute access,
    ``from old import name`` and monkeypatching then all reach ``new`` itself.
    """
    module = importlib.import_module(new)
    warnings.warn(f"{old} is renamed {new}: import {new} instead; the old name goes in the next release",
                  DeprecationWarning, stacklevel=_caller_stacklevel())
    sys.modules[old] = module


def _caller_stacklevel() -> int:
    """``warnings.warn``'s stacklevel, called in alias_renamed_module, of the user's frame above the shim."""
    level, frame = 3, sys._getframe(3)  # level 1 is alias_renamed_module, 2 the shim, 3 who imported it
    while frame is not None:
        if _is_import_system(frame):
            frame = frame.f_back  # not counted by warnings.warn either
        elif frame.f_globals.get("__name__") in _PASS_THROUGH_MODULES:
            frame, level = frame.f_back, level + 1
        else:
            break
    return level


def _is_import_system(frame) -> bool:
    """The frames that warnings.warn leaves out of its stacklevel count (CPython's own rule)."""
    filename = frame.f_code.co_filename
    return "importlib" in filename and "_bootstrap" in filename
