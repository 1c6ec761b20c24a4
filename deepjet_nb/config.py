"""Data configs: one YAML file describes inputs, classes, selection, spectators, preprocessing and weights.

The converter, the dataset reader and the model builders derive everything from the validated
:class:`DataConfig` (weaver-style: the config is the single source of truth). Shipped configs live in
``deepjet_nb/configs/`` and are selected by name (``"deepjet"``, ``"deepcsv"``, the fat-jet ``"fatjet"`` and
``"fatjet_substructure"``); any other config by path. A config reads one ntuple schema
(:data:`deepjet_nb.schema.SCHEMAS`, key ``schema``, default DeepNTuples).

Example::

    >>> from deepjet_nb.config import load_config
    >>> cfg = load_config("deepjet")
    >>> [g.name for g in cfg.inputs], cfg.class_names
    (['global', 'cpf', 'npf', 'sv'], ('B', 'BB', 'LeptB', 'C', 'UDS', 'G'))

Every problem raises :class:`~deepjet_nb.errors.ConfigError` naming the config file and the key or branch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .expressions import evaluate as evaluate_expression, names as expression_names
from .names import DATASET_ARRAYS, identifier_problem
from . import layouts, schema

CONFIG_DIR = Path(__file__).parent / "configs"

# Derived spectators: name -> (jagged branch, n) meaning "n-th largest value per jet, default -10".
# trackCounting_sip3dSig2 is the classic track-counting b tagger (second-highest 3D IP significance).
DERIVED_SPECTATORS = {"trackCounting_sip3dSig2": ("TagVarCSVTrk_trackSip3dSig", 2)}
DERIVED_DEFAULT = -10.0
# What every prediction file of a DeepNTuples config carries (other schemas: Schema.required_spectators).
REQUIRED_SPECTATORS = schema.DEEPNTUPLES.required_spectators

_TOP_KEYS = {"name", "schema", "tree", "selection", "classes", "inputs", "spectators", "preprocessing",
             "weighting", "allow_truth_inputs", "truth", "collection"}
_GROUP_KEYS = {"branches", "max_length", "sort_by", "descending", "pad_value", "link"}
_PRE_KEYS = {"fraction", "clip", "default_values", "replace_with"}
_WEIGHT_KEYS = {"mode", "reference_class", "apply", "seed", "pt_edges", "eta_edges", "pt_branch", "eta_branch"}
_WEIGHT_MODES = ("reference", "flat", "none")
# Said where a preset schema lacks a branch: files with other branches are read with a layout of their own.
_OWN_LAYOUT = "; a file with branches of its own needs 'schema: custom'"
_WEIGHT_APPLY = ("resample", "weight")


@dataclass(frozen=True)
class InputGroup:
    """One model input: scalars (``max_length`` None, shape ``[n]``) or padded object lists."""

    name: str
    branches: tuple[str, ...]
    max_length: int | None = None
    sort_by: str | None = None
    descending: bool = True
    pad_value: float = 0.0
    link: tuple[str, ...] = ()  # entries that are events: how the objects attach to the collection's objects

    @property
    def jagged(self) -> bool:
        return self.max_length is not None

    @property
    def shape(self) -> tuple[int, ...]:
        n = len(self.branches)
        return (self.max_length, n) if self.jagged else (n,)


@dataclass(frozen=True)
class Preprocessing:
    """Standardisation on a ``fraction`` of jets, clipping and replacement of NaN/inf/default values."""

    fraction: float = 0.1
    clip: float = 5.0
    default_values: tuple[float, ...] = (-999.0,)
    replace_with: float = 0.0


@dataclass(frozen=True)
class Weighting:
    """pT–η reweighting per class (docs/reference.md §3): ``mode`` reference/flat/none, ``apply`` resample/weight."""

    mode: str = "none"
    apply: str = "resample"
    reference_class: str | None = None
    seed: int = 42
    pt_edges: tuple[float, ...] = ()
    eta_edges: tuple[float, ...] = ()
    pt_branch: str = "jet_pt"
    eta_branch: str = "jet_eta"


@dataclass(frozen=True)
class DataConfig:
    """A validated data config. ``source`` is the file it came from (not part of the hash)."""

    name: str
    tree: str
    selection: str | None
    classes: dict[str, tuple[str, ...]]
    inputs: tuple[InputGroup, ...]
    spectators: tuple[str, ...]
    preprocessing: Preprocessing
    weighting: Weighting
    allow_truth_inputs: bool = False  # an explicit opt-in for studies: generator-level branches as inputs
    schema: str = schema.DEEPNTUPLES.name  # the ntuple layout (deepjet_nb.schema.SCHEMAS, or "custom")
    truth: tuple[str, ...] = ()  # generator-level branches of a custom layout besides the class branches
    collection: str | None = None  # entries are events: the counter (or a branch) of the objects to classify
    source: str = field(default="<dict>", compare=False)

    @property
    def ntuple(self) -> schema.Schema:
        """The :class:`~deepjet_nb.schema.Schema` of the ntuples this config reads: a preset, or for
        ``schema: custom`` the layout this config describes (what it names; the file says the rest)."""
        if self.schema != schema.CUSTOM:
            return schema.get(self.schema)
        lists = {g.name: (*g.branches, *((g.sort_by,) if g.sort_by else ())) for g in self.inputs if g.jagged}
        scalars = [b for g in self.inputs if not g.jagged for b in g.branches]
        scalars += [*self.spectators, *(expression_names(self.selection, self.source) if self.selection else ())]
        return layouts.custom(self.tree, scalars, lists, self.classes, self.truth, self.weighting.pt_branch,
                              self.weighting.eta_branch, self.source, self.collection)

    @property
    def required_spectators(self) -> tuple[str, ...]:
        return self.ntuple.required_spectators

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    @property
    def flags(self) -> tuple[str, ...]:
        """Every branch the classes read (their truth flags, or the names in their expressions), in class
        order."""
        return layouts.class_branches(self.classes, self.source)

    def group(self, name: str) -> InputGroup:
        for g in self.inputs:
            if g.name == name:
                return g
        raise ConfigError(f"{self.source}: no input group {name!r}")

    @property
    def selection_branches(self) -> tuple[str, ...]:
        return _selection_names(self.selection, self.source, self.ntuple) if self.selection else ()

    def scalar_branches(self) -> tuple[str, ...]:
        """Scalar branches to read: selection, weighting, spectators, flags and scalar input groups."""
        names = [*self.selection_branches, self.weighting.pt_branch, self.weighting.eta_branch,
                 *self.ntuple.truth_flags, *self.flags]
        generated = self.ntuple.generated
        names += [s for s in self.spectators if s not in DERIVED_SPECTATORS and s not in generated]
        for g in self.inputs:
            if not g.jagged:
                names += g.branches
        names += [self.collection] if self.collection else []
        return tuple(dict.fromkeys(names))

    def jagged_branches(self) -> tuple[str, ...]:
        """Jagged branches to read: jagged input groups (with sort keys) and derived-spectator sources."""
        names = []
        for g in self.inputs:
            if g.jagged:
                names += g.branches
                if g.sort_by:
                    names.append(g.sort_by)
                names += g.link
        names += [DERIVED_SPECTATORS[s][0] for s in self.spectators if s in DERIVED_SPECTATORS]
        return tuple(dict.fromkeys(names))

    def to_dict(self) -> dict:
        """Plain dict (YAML/JSON-ready) that :func:`config_from_dict` turns back into this config."""
        # absent when default: the hashes of earlier configs stay unchanged
        study = {"allow_truth_inputs": True} if self.allow_truth_inputs else {}
        layout = {"schema": self.schema} if self.schema != schema.DEEPNTUPLES.name else {}
        truth = {"truth": list(self.truth)} if self.truth else {}
        truth.update({"collection": self.collection} if self.collection else {})
        return {
            **study,
            **layout,
            **truth,
            "name": self.name,
            "tree": self.tree,
            "selection": self.selection,
            "classes": {k: list(v) for k, v in self.classes.items()},
            "inputs": {
                g.name: ({"branches": list(g.branches)} if not g.jagged else
                         {"branches": list(g.branches), "max_length": g.max_length, "sort_by": g.sort_by,
                          "descending": g.descending, "pad_value": g.pad_value,
                          **({"link": list(g.link)} if g.link else {})})
                for g in self.inputs
            },
            "spectators": list(self.spectators),
            "preprocessing": {**dataclasses.asdict(self.preprocessing),
                              "default_values": list(self.preprocessing.default_values)},
            "weighting": {**dataclasses.asdict(self.weighting),
                          "pt_edges": list(self.weighting.pt_edges),
                          "eta_edges": list(self.weighting.eta_edges)},
        }

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_dict` (same content → same hash, whatever the file)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def replace(self, **changes) -> DataConfig:
        """A copy with top-level fields changed, e.g. ``cfg.replace(preprocessing=...)``."""
        return dataclasses.replace(self, **changes)

    def with_fraction(self, fraction: float) -> DataConfig:
        """A copy whose statistics use ``fraction`` of the jets (validated)."""
        pre = dataclasses.replace(self.preprocessing, fraction=fraction)
        new = dataclasses.replace(self, preprocessing=pre)
        _check_fraction(fraction, new.source)
        return new

    def with_weighting(self, **changes) -> DataConfig:
        """A copy with weighting fields changed (validated), e.g. ``cfg.with_weighting(apply="weight")`` keeps
        every jet with a per-jet loss weight instead of resampling. Raises :class:`ConfigError` for an unknown
        field or an invalid value."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(Weighting)}
        if unknown:
            raise ConfigError(f"{self.source}: unknown weighting field(s) {sorted(unknown)} "
                              f"(fields: {', '.join(sorted(_WEIGHT_KEYS))})")
        weighting = dataclasses.replace(self.weighting, **changes)
        _check_weighting(weighting, self.classes, self.source, self.ntuple)
        return dataclasses.replace(self, weighting=weighting)


def load_config(name_or_path: str | os.PathLike | DataConfig) -> DataConfig:
    """Load and validate a data config: a shipped name (``"deepjet"``, ``"deepcsv"``) or a YAML path.

    Raises :class:`ConfigError` for an unknown name, a missing or unparsable file, an unknown key or branch,
    or an inconsistent value; the message names the file and the key.
    """
    if isinstance(name_or_path, DataConfig):
        return name_or_path
    text = str(name_or_path)
    shipped = CONFIG_DIR / f"{text}.yaml"
    if os.sep not in text and not text.endswith((".yaml", ".yml")) and shipped.is_file():
        path = shipped
    else:
        path = Path(text)
        if not path.is_file():
            names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
            raise ConfigError(f"{text}: no such config file and not a shipped config (shipped: {names})")
    import yaml  # local: keeps `import deepjet_nb.config` light for readers that pass dicts

    try:
        raw = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (YAML) file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict, source: str = "<dict>") -> DataConfig:
    """Validate a config given as a dict (as in the YAML file or a manifest's ``config``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a data config must be a mapping, got {type(raw).__name__}")
    _check_keys(raw, _TOP_KEYS, source, "")
    for key in ("name", "classes", "inputs"):
        if key not in raw:
            raise ConfigError(f"{source}: missing key {key!r}")
    name = _string(raw["name"], source, "name")
    layout = layouts.layout_name(raw, source)
    tree = _string(raw.get("tree", schema.get(layout).tree if layout != schema.CUSTOM else None), source, "tree")
    truth = tuple(_strings(raw.get("truth") or [], source, "truth"))
    if truth and layout != schema.CUSTOM:
        raise ConfigError(f"{source}: truth: the {layout} schema lists its own truth branches; 'truth' is for "
                          "a custom layout (schema: custom)", path=source, key="truth")
    collection = raw.get("collection")
    if collection is not None:
        collection = _string(collection, source, "collection")
        if layout != schema.CUSTOM:
            raise ConfigError(f"{source}: collection: entries of the {layout} schema are one {schema.get(layout).entry}"
                              " each; 'collection' is for a custom layout (schema: custom)", path=source,
                              key="collection")

    classes = {}
    if not isinstance(raw["classes"], dict) or not raw["classes"]:
        raise ConfigError(f"{source}: 'classes' must map class names to lists of truth flags or expressions")
    for cls, flags in raw["classes"].items():
        cls = _identifier(cls, source, "classes")
        flags = _strings(flags, source, f"classes.{cls}")
        if not flags:
            raise ConfigError(f"{source}: classes.{cls}: no truth flags")
        classes[str(cls)] = tuple(flags)
    if layout == schema.CUSTOM:
        ntuple = layouts.from_raw(raw, tree, classes, truth, collection, source)
    else:
        ntuple = schema.get(layout)
        layouts.check_classes(classes, ntuple, source)
    used = [f for flags in classes.values() for f in flags]
    dup = sorted({f for f in used if used.count(f) > 1})
    if dup:
        raise ConfigError(f"{source}: classes: flag {dup[0]!r} is in more than one class")

    if not isinstance(raw["inputs"], dict) or not raw["inputs"]:
        raise ConfigError(f"{source}: 'inputs' must map group names to group definitions")
    inputs = tuple(_parse_group(name, spec, source, ntuple) for name, spec in raw["inputs"].items())
    allow_truth = raw.get("allow_truth_inputs", False)
    if not isinstance(allow_truth, bool):
        raise ConfigError(f"{source}: allow_truth_inputs must be true or false, got {allow_truth!r}")
    if not allow_truth:
        _refuse_truth_inputs(inputs, source, ntuple)

    selection = raw.get("selection")
    if selection is not None:
        selection = _string(selection, source, "selection")
        _selection_names(selection, source, ntuple)  # validates syntax and branch names

    spectators = [_identifier(s, source, "spectators")
                  for s in _strings(raw.get("spectators") or [], source, "spectators")]
    derived = DERIVED_SPECTATORS if ntuple is schema.DEEPNTUPLES else {}
    for s in spectators:
        if s not in derived and s not in ntuple.scalars:
            extra = f" or one of {sorted(derived)}" if derived else ""
            raise ConfigError(f"{source}: spectators: unknown branch {s!r} (spectators are scalar branches of the "
                              f"{layout} schema{extra})", path=source, key=s,
                              choices=(*ntuple.scalars, *derived), hint=_OWN_LAYOUT)
    spectators = tuple(dict.fromkeys([*ntuple.required_spectators, *spectators]))

    pre_raw = raw.get("preprocessing") or {}
    _check_keys(pre_raw, _PRE_KEYS, source, "preprocessing.")
    pre = Preprocessing(
        fraction=_number(pre_raw, "fraction", 0.1, source, "preprocessing."),
        clip=_number(pre_raw, "clip", 5.0, source, "preprocessing."),
        default_values=_numbers(pre_raw.get("default_values", [-999.0]), source, "preprocessing.default_values"),
        replace_with=_number(pre_raw, "replace_with", 0.0, source, "preprocessing."),
    )
    _check_fraction(pre.fraction, source)
    if pre.clip < 0:
        raise ConfigError(f"{source}: preprocessing.clip must be >= 0 (0 disables), got {pre.clip}")

    w_raw = raw.get("weighting") or {"mode": "none"}
    _check_keys(w_raw, _WEIGHT_KEYS, source, "weighting.")
    reference = w_raw.get("reference_class")
    weighting = Weighting(
        mode=_string(w_raw.get("mode", "none"), source, "weighting.mode"),
        apply=_string(w_raw.get("apply", "resample"), source, "weighting.apply"),
        reference_class=None if reference is None else _string(reference, source, "weighting.reference_class"),
        seed=_integer(w_raw.get("seed", 42), source, "weighting.seed"),
        pt_edges=_numbers(w_raw.get("pt_edges", []), source, "weighting.pt_edges"),
        eta_edges=_numbers(w_raw.get("eta_edges", []), source, "weighting.eta_edges"),
        pt_branch=_string(w_raw.get("pt_branch", ntuple.pt_branch), source, "weighting.pt_branch"),
        eta_branch=_string(w_raw.get("eta_branch", ntuple.eta_branch), source, "weighting.eta_branch"),
    )
    _check_weighting(weighting, classes, source, ntuple)

    return DataConfig(name=name, tree=tree, selection=selection, classes=classes,
                      inputs=inputs, spectators=spectators, preprocessing=pre, weighting=weighting,
                      allow_truth_inputs=allow_truth, schema=layout, truth=truth, collection=collection,
                      source=source)


def _refuse_truth_inputs(inputs, source, ntuple):
    """A network input must be a reconstructed quantity: a truth flag or generator-level branch is refused."""
    for g in inputs:
        for b in (*g.branches, *((g.sort_by,) if g.sort_by else ())):
            if b in ntuple.truth_branches:
                raise ConfigError(
                    f"{source}: inputs.{g.name}: {b!r} is generator-level truth, not a reconstructed quantity; "
                    "a network that sees it learns the answer. Remove it, or set 'allow_truth_inputs: true' at "
                    "the top of the config for a deliberate study")


# --- selection expressions (grammar in deepjet_nb.expressions) ------------------------------------------

def evaluate_selection(expression: str, arrays: dict, source: str = "<selection>") -> np.ndarray:
    """Boolean mask from a selection expression over scalar branches (numpy arrays in ``arrays``).

    Grammar (:mod:`deepjet_nb.expressions`): names, numbers, ``+ - * /``, comparisons (chained too),
    ``& | ~``, ``and or not``, ``abs()``. No Python ``eval``: only these nodes are accepted.
    """
    return evaluate_expression(expression, arrays, source).astype(bool, copy=False)


def _selection_names(expression: str, source: str, ntuple: schema.Schema = schema.DEEPNTUPLES) -> tuple[str, ...]:
    found = expression_names(expression, source)
    for name in found:
        if name not in ntuple.scalars:
            raise ConfigError(f"{source}: selection: unknown branch {name!r} (only scalar branches of the "
                              f"{ntuple.name} schema)", path=source, key=name, choices=ntuple.scalars)
    return found


# --- validation helpers ---------------------------------------------------------------------------------

def _check_keys(mapping, allowed, source, prefix):
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown key {prefix}{key!r}", path=source, key=key,
                              choices=sorted(allowed))


def _number(mapping, key, default, source, prefix):
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ConfigError(f"{source}: {prefix}{key} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value, source, key) -> tuple[float, ...]:
    """A list of finite numbers (one number is a list of one)."""
    values = value if isinstance(value, list) else [value]
    return tuple(_number({key: v}, key, None, source, "") for v in values)


def _integer(value, source, key) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
    return value


def _string(value, source, key) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: {key} must be a non-empty string, got {value!r}")
    return value


def _strings(value, source, key) -> list[str]:
    """A list of names (one name is a list of one)."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list):
        raise ConfigError(f"{source}: {key} must be a list of names, got {value!r}")
    return [_string(v, source, key) for v in values]


def _identifier(value, source, key) -> str:
    """``value`` when it is an identifier (it becomes a file, array or branch name), else a ConfigError."""
    problem = identifier_problem(value)
    if problem:
        raise ConfigError(f"{source}: {key}: {problem}")
    return value


def _check_fraction(fraction, source):
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"{source}: preprocessing.fraction must be in (0, 1], got {fraction}")


def _parse_group(name, spec, source, ntuple):
    _identifier(name, source, "inputs")
    if name in DATASET_ARRAYS:
        raise ConfigError(f"{source}: inputs.{name}: {name!r} is the name of an array every dataset holds "
                          f"({', '.join(DATASET_ARRAYS)}); rename the input group")
    where = f"inputs.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: {where} must be a mapping with 'branches'")
    _check_keys(spec, _GROUP_KEYS, source, f"{where}.")
    branches = spec.get("branches")
    if not branches or not isinstance(branches, list):
        raise ConfigError(f"{source}: {where}.branches must be a non-empty list")
    branches = _strings(branches, source, f"{where}.branches")
    if len(set(branches)) != len(branches):
        raise ConfigError(f"{source}: {where}.branches lists a branch twice")
    max_length = spec.get("max_length")
    if max_length is None:
        for key in ("sort_by", "descending", "pad_value"):
            if key in spec:
                raise ConfigError(f"{source}: {where}.{key} needs max_length (scalar groups are not padded)")
        for b in branches:
            if b not in ntuple.scalars:
                if b in ntuple.jagged:
                    raise ConfigError(f"{source}: {where}: a jagged branch: give the group a max_length {b!r}")
                raise ConfigError(f"{source}: {where}: unknown branch of the {ntuple.name} schema {b!r}",
                                  path=source, key=b, choices=ntuple.scalars, hint=_OWN_LAYOUT)
        return InputGroup(name=str(name), branches=tuple(branches))
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise ConfigError(f"{source}: {where}.max_length must be a positive integer, got {max_length!r}")
    counters = set()
    for b in branches:
        if b not in ntuple.jagged:
            if b in ntuple.scalars:
                raise ConfigError(f"{source}: {where}: a scalar branch in a padded group {b!r}")
            raise ConfigError(f"{source}: {where}: unknown branch of the {ntuple.name} schema {b!r}",
                              path=source, key=b, choices=ntuple.jagged, hint=_OWN_LAYOUT)
        counters.add(ntuple.counter_of(b))
    sort_by = spec.get("sort_by")
    if sort_by is not None:
        sort_by = _string(sort_by, source, f"{where}.sort_by")
        if sort_by not in ntuple.jagged:
            raise ConfigError(f"{source}: {where}.sort_by: unknown jagged branch {sort_by!r}", path=source,
                              key=sort_by, choices=ntuple.jagged)
        counters.add(ntuple.counter_of(sort_by))
    if len(counters) > 1:
        raise ConfigError(f"{source}: {where}: branches of different object lists ({sorted(counters)}); "
                          "one group holds one kind of object")
    descending = spec.get("descending", True)
    if not isinstance(descending, bool):
        raise ConfigError(f"{source}: {where}.descending must be true or false, got {descending!r}")
    link = tuple(_strings(spec.get("link") or [], source, f"{where}.link"))
    if link and ntuple.collection is None:
        raise ConfigError(f"{source}: {where}.link attaches objects to the objects of a collection: it needs "
                          "'collection' (entries that are events)", path=source, key="link")
    if len(link) > 2:
        raise ConfigError(f"{source}: {where}.link: one parent-index branch, or a pair of index branches "
                          f"(object, candidate), got {list(link)}", path=source, key="link")
    return InputGroup(name=str(name), branches=tuple(branches), max_length=max_length, sort_by=sort_by,
                      descending=descending,
                      pad_value=_number(spec, "pad_value", 0.0, source, f"{where}."), link=link)


def _check_weighting(w, classes, source, ntuple):
    if w.mode not in _WEIGHT_MODES:
        raise ConfigError(f"{source}: weighting.mode must be one of {_WEIGHT_MODES}, got {w.mode!r}")
    if w.apply not in _WEIGHT_APPLY:
        raise ConfigError(f"{source}: weighting.apply must be one of {_WEIGHT_APPLY}, got {w.apply!r}")
    for key in ("pt_branch", "eta_branch"):
        if getattr(w, key) not in ntuple.scalars:
            raise ConfigError(f"{source}: weighting.{key}: unknown branch {getattr(w, key)!r}", path=source,
                              key=getattr(w, key), choices=ntuple.scalars)
    if w.mode == "none":
        return
    if w.mode == "reference" and w.reference_class not in classes:
        raise ConfigError(f"{source}: weighting.reference_class {w.reference_class!r} is not a class "
                          f"(classes: {', '.join(classes)})")
    for key in ("pt_edges", "eta_edges"):
        edges = np.asarray(getattr(w, key))
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ConfigError(f"{source}: weighting.{key} must be at least two increasing numbers")
