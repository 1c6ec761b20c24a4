"""Expressions over branches: the safe grammar of a data config's ``selection`` and of its ``classes``.

An expression is Python syntax restricted to names (branches), numbers, ``+ - * /``, comparisons (chained
too), ``& | ~``, ``and or not`` and ``abs()``; it is parsed with :mod:`ast` and evaluated node by node on numpy
arrays, never with Python's ``eval``. A bare branch name is an expression too (its value).

>>> import numpy as np
>>> from deepjet_nb.expressions import evaluate, names
>>> arrays = {"jet_pt": np.array([10.0, 30.0]), "hflav": np.array([5, 0])}
>>> evaluate("(jet_pt > 20) | (hflav == 5)", arrays).tolist()
[True, True]
>>> names("abs(jet_eta) < 2.5")
('jet_eta',)

Every problem raises :class:`~deepjet_nb.errors.ConfigError` naming the config file (``source``), the config
key (``what``) and the expression.
"""

from __future__ import annotations

import ast

import numpy as np

from .errors import ConfigError

__all__ = ["evaluate", "names", "parse", "is_name"]

_BINOPS = {ast.BitAnd: np.logical_and, ast.BitOr: np.logical_or, ast.Add: np.add, ast.Sub: np.subtract,
           ast.Mult: np.multiply, ast.Div: np.divide}
_CMPOPS = {ast.Gt: np.greater, ast.GtE: np.greater_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
           ast.Eq: np.equal, ast.NotEq: np.not_equal}
_FUNCS = {"abs": np.abs}
_NODES = (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Constant, ast.Call,
          ast.Load, ast.And, ast.Or, ast.Not, ast.Invert, ast.USub, ast.UAdd, *_BINOPS, *_CMPOPS)


def evaluate(expression: str, arrays, source: str = "<expression>", what: str = "selection") -> np.ndarray:
    """The value of ``expression`` on the numpy arrays ``arrays`` (branch name → array): a boolean array for a
    comparison, numbers for arithmetic; :func:`numpy.asarray` of the value. NaN comparisons and divisions by
    zero give False / inf quietly."""
    tree = parse(expression, source, what)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(_eval(tree.body, arrays))


def names(expression: str, source: str = "<expression>", what: str = "selection") -> tuple[str, ...]:
    """The branch names ``expression`` reads, in order of first appearance (function names excluded)."""
    tree = parse(expression, source, what)
    calls = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    found = [node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in calls]
    return tuple(dict.fromkeys(found))


def is_name(expression: str) -> bool:
    """Whether ``expression`` is a bare branch name (a truth flag in a ``classes`` list)."""
    return expression.isidentifier()


def parse(expression: str, source: str = "<expression>", what: str = "selection") -> ast.Expression:
    """The checked syntax tree of ``expression``; :class:`ConfigError` for invalid syntax or an element
    outside the grammar."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        raise ConfigError(f"{source}: {what} {expression!r}: invalid syntax ({err.msg})", path=source,
                          key=what) from None
    for node in ast.walk(tree):
        if not _allowed(node):
            element = ast.unparse(node) if hasattr(node, "lineno") else type(node).__name__
            raise ConfigError(f"{source}: {what} {expression!r}: unsupported element {element!r}", path=source,
                              key=what)
    return tree


def _allowed(node) -> bool:
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id in _FUNCS and len(node.args) == 1 \
            and not node.keywords
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float, bool))
    return isinstance(node, _NODES)


def _eval(node, arrays):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return arrays[node.id]
    if isinstance(node, ast.Call):
        return _FUNCS[node.func.id](_eval(node.args[0], arrays))
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, arrays)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return np.logical_not(value)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, arrays), _eval(node.right, arrays))
    if isinstance(node, ast.BoolOp):
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = _eval(node.values[0], arrays)
        for value in node.values[1:]:
            result = combine(result, _eval(value, arrays))
        return result
    if isinstance(node, ast.Compare):
        left = _eval(node.left, arrays)
        result = True
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval(comparator, arrays)
            result = np.logical_and(result, _CMPOPS[type(op)](left, right))
            left = right
        return result
    raise AssertionError(f"unreachable: {ast.dump(node)}")  # parse() rejected everything else
