"""The layout a data config reads: a preset schema (:mod:`deepjet_nb.schema`), or the custom layout the config
describes itself (``schema: custom``).

A custom layout is what the config names: the tree, its scalar branches (scalar input groups, spectators,
selection, the weighting pT and η), its object lists (one per padded input group: the group's branches and
sort key) and its truth (the branches the class expressions read, and the ``truth`` list). Nothing else is
assumed; the file says the rest when it is read (:func:`deepjet_nb.rootio.open_tree` checks that each branch is
there, holds numbers, and is a list or not as the config uses it).

Without ``schema``, a config reads the DeepNTuples preset unless it names another tree: a config written for
``Events`` or ``tree`` describes its own layout.
"""

from __future__ import annotations

from . import schema
from .errors import ConfigError
from .expressions import is_name, names as expression_names
from .flavours import flavour_classes

__all__ = ["layout_name", "from_raw", "custom", "class_branches", "check_classes"]


def layout_name(raw: dict, source: str) -> str:
    """The preset a raw config names, or :data:`~deepjet_nb.schema.CUSTOM` for a layout of its own (see the
    module docstring). Raises :class:`ConfigError` for an unknown schema, naming the closest known one."""
    layout = raw.get("schema")
    if layout is None:
        tree = raw.get("tree")
        return schema.CUSTOM if isinstance(tree, str) and tree != schema.TREE else schema.DEEPNTUPLES.name
    known = (*schema.SCHEMAS, schema.CUSTOM)
    if not isinstance(layout, str) or layout not in known:
        raise ConfigError(f"{source}: schema: unknown ntuple schema {layout!r} (known: {', '.join(known)})",
                          path=source, key=str(layout), choices=known)
    return layout


def from_raw(raw: dict, tree: str, classes: dict, truth, collection, source: str) -> schema.Schema:
    """The custom layout a raw config describes, from the names it uses (their form is checked by the config's
    validation and, against the file, when it is read)."""
    scalars, lists = [], {}
    for group, spec in (raw["inputs"] if isinstance(raw["inputs"], dict) else {}).items():
        if isinstance(spec, dict):
            branches = _names_in(spec.get("branches"))
            if spec.get("max_length") is None:
                scalars += branches
            else:
                lists[str(group)] = branches + _names_in(spec.get("sort_by"))
    scalars += _names_in(raw.get("spectators"))
    if isinstance(raw.get("selection"), str):
        scalars += expression_names(raw["selection"], source)
    weighting = raw.get("weighting") if isinstance(raw.get("weighting"), dict) else {}
    pt = (_names_in(weighting.get("pt_branch")) or [schema.DEEPNTUPLES.pt_branch])[0]
    eta = (_names_in(weighting.get("eta_branch")) or [schema.DEEPNTUPLES.eta_branch])[0]
    return custom(tree, scalars, lists, classes, truth, pt, eta, source, collection)


def custom(tree, scalars, lists, classes, truth, pt, eta, source, collection=None) -> schema.Schema:
    """The custom layout of a validated config: ``scalars`` and ``lists`` ({group: branches}) as its input
    groups, spectators and selection use them, its ``classes`` and ``truth``, its weighting ``pt``/``eta``,
    and the ``collection`` of objects of an entry that is an event (:mod:`deepjet_nb.collection`)."""
    return schema.custom(tree, scalars=scalars, object_lists=lists, truth_flags=class_branches(classes, source),
                         truth_floats=truth, pt_branch=pt, eta_branch=eta, flavour_classes=flavour_classes(classes),
                         collection=collection)


def class_branches(classes: dict, source: str) -> tuple[str, ...]:
    """The branches the classes read, in class order: each entry of a class is a truth flag or an expression
    over branches (:mod:`deepjet_nb.expressions`)."""
    names = [n for cls, entries in classes.items() for entry in entries
             for n in expression_names(entry, source, f"classes.{cls}")]
    return tuple(dict.fromkeys(names))


def check_classes(classes: dict, ntuple: schema.Schema, source: str) -> None:
    """Classes of a preset schema: its truth flags, or expressions over its truth branches. Raises
    :class:`ConfigError` naming the class and the closest valid name."""
    for cls, entries in classes.items():
        for entry in entries:
            if is_name(entry):
                if entry not in ntuple.truth_flags:
                    raise ConfigError(f"{source}: classes.{cls}: unknown truth flag {entry!r} of the {ntuple.name} "
                                      f"schema", path=source, key=entry, choices=ntuple.truth_flags)
                continue
            for name in expression_names(entry, source, f"classes.{cls}"):
                if name not in ntuple.truth_branches:
                    raise ConfigError(f"{source}: classes.{cls}: {name!r} in {entry!r} is not a truth branch of "
                                      f"the {ntuple.name} schema", path=source, key=name,
                                      choices=ntuple.truth_branches)


def _names_in(value) -> list[str]:
    """The strings in a name or list of names of a raw config (anything else is reported by validation)."""
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v]
