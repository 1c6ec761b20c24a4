"""Exceptions of deepjet-nb.

Every error that a user can cause (a bad argument, a missing file, a branch that is not in a tree, a config
key that does not exist) is raised as a subclass of :class:`DeepJetError` whose message names the file, tree,
branch or key at fault. The CLI turns these into one line on stderr and a non-zero exit code
(:func:`one_line`).
"""

import re


class DeepJetError(Exception):
    """Base class of all errors raised on purpose by deepjet-nb."""


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


def one_line(message) -> str:
    """``message`` on one line: line breaks of wrapped causes (uproot, YAML) folded into spaces, and a name
    repeated at the start ("x.root: x.root: ...") given once."""
    text = " ".join(str(message).split())
    return re.sub(r"^(\S+: )\1+", r"\1", text)


class ServiceError(DeepJetError):
    """The model service refused a request or a model (names the model, field or file at fault)."""
