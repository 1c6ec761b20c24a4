"""Exceptions of deepjet-nb.

Every error that a user can cause (a bad argument, a missing file, a branch that is not in a tree, a config
key that does not exist) is raised as a subclass of :class:`DeepJetError` whose message names the file, tree,
branch or key at fault. Like uproot's ``KeyInFileError``, an error also carries structured fields: ``path``
(the file, URL or directory at fault), ``key`` (the name that was asked for) and ``choices`` (the names that
exist); given both ``key`` and ``choices``, the message ends with the closest valid names. The CLI turns these
into one line on stderr and a non-zero exit code (:func:`one_line`).

>>> err = InputFileError("jets.root: tree 'tree' has no branch 'jet_tp'", path="jets.root", key="jet_tp",
...                      choices=["jet_pt", "jet_eta", "jet_phi"])
>>> str(err)
"jets.root: tree 'tree' has no branch 'jet_tp' (did you mean 'jet_pt'?)"
>>> err.key, err.path
('jet_tp', 'jets.root')
"""

import difflib
import re

# How many close names a message suggests, and how many choices it lists when none is close.
_SUGGESTED = 3
_LISTED = 12


class DeepJetError(Exception):
    """Base class of all errors raised on purpose by deepjet-nb.

    ``path``: the file, URL or directory at fault (None when there is none); ``key``: the name that was asked
    for and is not there (a branch, tree, config key, ...); ``choices``: the names that would have been valid;
    ``hint``: what to do, said after the suggestion.
    """

    def __init__(self, message="", *, path=None, key=None, choices=None, hint=""):
        self.path = None if path is None else str(path)
        self.key = key
        self.choices = None if choices is None else tuple(str(c) for c in choices)
        if key is not None and self.choices:
            message = f"{message}{suggestion(str(key), self.choices)}"
        super().__init__(f"{message}{hint}")

    def __reduce__(self):
        # Rebuilt from the finished message (no second suggestion) and the fields: errors cross process
        # boundaries in parallel conversions.
        return self.__class__, self.args, self.__dict__


def suggestion(key: str, choices) -> str:
    """``" (did you mean 'a' or 'b'?)"`` with the names of ``choices`` closest to ``key`` (difflib); when none
    is close, ``" (one of: ...)"`` listing a short list of choices, and ``""`` for a long one.

    >>> suggestion("jet_tp", ["jet_pt", "jet_eta"])
    " (did you mean 'jet_pt'?)"
    """
    choices = list(dict.fromkeys(choices))
    close = _closest(key, choices) or _closest(key.lower(), choices, str.lower)  # a case slip is a near miss
    if close:
        return f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    if len(choices) <= _LISTED:
        return f" (one of: {', '.join(repr(c) for c in choices)})"
    return ""


def _closest(key, choices, fold=lambda name: name):
    """The choices most similar to ``key`` (difflib ratio >= 0.6, and within 0.05 of the best one)."""
    scored = []
    for choice in choices:
        matcher = difflib.SequenceMatcher(None, key, fold(choice))
        if matcher.real_quick_ratio() >= 0.6 and matcher.quick_ratio() >= 0.6 and matcher.ratio() >= 0.6:
            scored.append((matcher.ratio(), choice))
    scored.sort(key=lambda item: -item[0])
    return [choice for ratio, choice in scored[:_SUGGESTED] if ratio >= scored[0][0] - 0.05]


class ArgumentError(DeepJetError, ValueError):
    """A function or command-line argument is out of range or of the wrong kind."""


class ConfigError(DeepJetError, ValueError):
    """A data or training configuration is invalid (names the config file and key)."""


class InputFileError(DeepJetError):
    """An input file is missing, corrupt, empty, or lacks a tree or branch (names which)."""


class DatasetError(DeepJetError):
    """A converted dataset is missing, incomplete or inconsistent (names the directory and file)."""


class RunError(DeepJetError):
    """A training run directory is missing, incomplete or does not match the data (names the directory)."""


class DeployError(DeepJetError):
    """An exported model directory is missing or inconsistent, or an export fails its checks (names the
    directory and file)."""


class ModelError(ArgumentError):
    """A model, loss, metric, optimizer or callback named by the user cannot be imported, its builder fails, or
    the model it builds does not fit the dataset (names the import path or file and what is wrong)."""


def one_line(message) -> str:
    """``message`` on one line: line breaks of wrapped causes (uproot, YAML) folded into spaces, and a name
    repeated at the start ("x.root: x.root: ...") given once."""
    text = " ".join(str(message).split())
    return re.sub(r"^(\S+: )\1+", r"\1", text)


class ServiceError(DeepJetError):
    """The model service refused a request or a model (names the model, field or file at fault)."""
