"""Test data for code that reads ntuples: random jets in the DeepNTuples schema, written in seconds.

Values are random but shaped like the real thing (object multiplicities, one truth flag per jet, CMS default
values here and there), so a converter, a reader or a benchmark can be exercised without the Pythia sample
producer. There is no physics in them: a tagger trained on them learns nothing. The project's own tests and
benchmarks use them; so can tests of code built on this package.

>>> from deepjet_nb.testing import write_ntuple
>>> write_ntuple("random.root", 1000, seed=1)                                          # doctest: +SKIP
'random.root'
>>> write_ntuple("bad.root", 100, skip=("jet_pt",))       # an input missing a branch  # doctest: +SKIP
'bad.root'
"""

from __future__ import annotations

import os

import numpy as np

from . import schema

__all__ = ["write_ntuple"]

# Mean object multiplicities (approx. CMS AK4 jets at 20-200 GeV).
_MEAN_COUNTS = {"nCpfcand": 12.0, "nNpfcand": 10.0, "nsv": 0.8,
                "TagVarCSV_jetNSelectedTracks": 5.0, "TagVarCSV_jetNTracksEtaRel": 3.0}
# Flag frequencies (ttbar + QCD-like mixture); isUndefined is kept rare but present.
_FLAG_P = np.array([0.2, 0.03, 0.03, 0.05, 0.03, 0.08, 0.02, 0.03, 0.25, 0.08, 0.18, 0.02])


def write_ntuple(path: str | os.PathLike, n_jets: int, seed: int = 0, *, step: int = 50_000,
                 overrides: dict | None = None, skip: tuple[str, ...] = ()) -> str:
    """Write ``n_jets`` random jets to ``path`` (tree ``deepntuplizer/tree``); returns the path.

    ``overrides`` maps branch → array (numpy for scalars, awkward for jagged) replacing the random values
    (all jets written in one basket then); ``skip`` leaves branches out (to craft bad inputs).
    Jets are written in baskets of ``step`` so large files need little memory.
    """
    import awkward as ak
    import uproot

    rng = np.random.default_rng(seed)
    overrides = overrides or {}
    if overrides:
        step = n_jets
    with uproot.recreate(path) as f:
        tree = None
        for start in range(0, max(n_jets, 1), max(step, 1)):
            n = min(step, n_jets - start)
            data = _random_jets(rng, n)
            for name, value in overrides.items():
                data[name] = value
            for name in skip:
                data.pop(name, None)
            groups = _group_jagged(data, ak)
            if tree is None:
                tree = f.mktree(schema.TREE, {k: _type_of(v, ak) for k, v in groups.items()},
                                counter_name=_counter_name, field_name=_field_name)
            tree.extend(groups)
            if n_jets == 0:
                break
    return str(path)


def _random_jets(rng, n):
    data = {}
    pt = (20.0 + rng.pareto(2.5, n) * 40.0).astype(np.float32)
    data["jet_pt"] = pt
    data["jet_eta"] = rng.uniform(-2.5, 2.5, n).astype(np.float32)
    data["jet_phi"] = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
    data["jet_mass"] = (pt * rng.uniform(0.05, 0.2, n)).astype(np.float32)
    data["gen_pt"] = (pt * rng.normal(1.0, 0.1, n)).astype(np.float32)
    data["npv"] = rng.poisson(25, n).astype(np.int32)
    counts = {c: rng.poisson(m, n).astype(np.int32) for c, m in _MEAN_COUNTS.items()}
    data.update(counts)
    flag = rng.choice(len(schema.FLAVOUR_FLAGS), size=n, p=_FLAG_P / _FLAG_P.sum())
    for i, name in enumerate(schema.FLAVOUR_FLAGS):
        data[name] = (flag == i).astype(np.int32)
    data["jet_hadronFlavour"] = np.where(flag <= 4, 5, np.where(flag <= 7, 4, 0)).astype(np.int32)
    data["jet_partonFlavour"] = rng.choice([1, 2, 3, 4, 5, 21], n).astype(np.int32)
    for name in schema.CSV_SCALARS:
        if name in schema.INTEGER_BRANCHES:
            if name not in data:
                data[name] = rng.integers(0, 3, n).astype(np.int32)
        else:
            values = rng.normal(0.0, 1.0, n).astype(np.float32)
            values[rng.random(n) < 0.1] = -999.0  # CMS default for "not computable"
            data[name] = values
    for members, counter in schema.COUNTERS.items():
        total = int(counts[counter].sum())
        for name in members:
            values = rng.normal(0.0, 2.0, total).astype(np.float32)
            data[name] = (counts[counter], values)
    return data


def _group_jagged(data, ak):
    """Zip the jagged branches of one object kind so they share the schema's counter branch."""
    out = {k: v for k, v in data.items() if not isinstance(v, tuple) and not isinstance(v, ak.Array)}
    for members, counter in schema.COUNTERS.items():
        present = [m for m in members if m in data]
        if not present:
            continue
        fields = {}
        for name in present:
            value = data[name]
            if isinstance(value, tuple):
                value = ak.unflatten(value[1], value[0])
            fields[name] = value
        # The counter branch doubles as a scalar branch (e.g. nCpfcand), so it is written by the zip.
        out.pop(counter, None)
        out[_ZIP_NAME[counter]] = ak.zip(fields)
    return out


# uproot names a zipped group's branches "<group>_<field>"; we use the full branch name as field and an
# empty-prefix rule instead, and name the counter after the schema.
_ZIP_NAME = {counter: f"@{counter}" for counter in schema.COUNTERS.values()}


def _field_name(outer, inner):
    return inner


def _counter_name(counted):
    return counted[1:] if counted.startswith("@") else f"n{counted}"


def _type_of(value, ak):
    if isinstance(value, ak.Array):
        return value.type.content
    return value.dtype
