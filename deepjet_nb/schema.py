"""The DeepNTuples jet-ntuple schema: one TTree entry per jet (docs/reference.md §1, docs/formats.md §1).

Real CMS DeepNTuples files use these names, so code written against this module works on them too. This is the
one list of branch names: the sample producer, the synthetic test writer, the data-config validation,
conversion and evaluation all take their names from here.

Jagged branches hold one value per object. Each kind of object is an :class:`ObjectList`: the branches share
a counter branch (their per-jet length) and a name prefix (``Cpfcan_``, ``sv_``, ...), which is how uproot
groups them when writing.
"""

from __future__ import annotations

from dataclasses import dataclass

TREE = "deepntuplizer/tree"

KINEMATICS = ("jet_pt", "jet_eta", "jet_phi", "jet_mass", "gen_pt", "npv", "nCpfcand", "nNpfcand", "nsv")

FLAVOUR_FLAGS = (
    "isB", "isBB", "isGBB", "isLeptonicB", "isLeptonicB_C",
    "isC", "isCC", "isGCC", "isUD", "isS", "isG", "isUndefined",
)
FLAVOUR_INTS = ("jet_hadronFlavour", "jet_partonFlavour")

CSV_SCALARS = (
    "TagVarCSV_trackSumJetEtRatio", "TagVarCSV_trackSumJetDeltaR", "TagVarCSV_vertexCategory",
    "TagVarCSV_trackSip2dValAboveCharm", "TagVarCSV_trackSip2dSigAboveCharm",
    "TagVarCSV_trackSip3dValAboveCharm", "TagVarCSV_trackSip3dSigAboveCharm",
    "TagVarCSV_jetNSelectedTracks", "TagVarCSV_jetNTracksEtaRel", "TagVarCSV_jetNSecondaryVertices",
    "TagVarCSV_vertexMass", "TagVarCSV_vertexNTracks", "TagVarCSV_vertexEnergyRatio",
    "TagVarCSV_vertexJetDeltaR", "TagVarCSV_flightDistance2dVal", "TagVarCSV_flightDistance2dSig",
    "TagVarCSV_flightDistance3dVal", "TagVarCSV_flightDistance3dSig",
)

CSV_TRACKS = (
    "TagVarCSVTrk_trackJetDistVal", "TagVarCSVTrk_trackPtRel", "TagVarCSVTrk_trackDeltaR",
    "TagVarCSVTrk_trackPtRatio", "TagVarCSVTrk_trackSip3dSig", "TagVarCSVTrk_trackSip2dSig",
    "TagVarCSVTrk_trackDecayLenVal",
)
CSV_ETAREL = ("TagVarCSV_trackEtaRel",)

CPF = (
    "Cpfcan_BtagPf_trackEtaRel", "Cpfcan_BtagPf_trackPtRel", "Cpfcan_BtagPf_trackPPar",
    "Cpfcan_BtagPf_trackDeltaR", "Cpfcan_BtagPf_trackPParRatio", "Cpfcan_BtagPf_trackSip2dVal",
    "Cpfcan_BtagPf_trackSip2dSig", "Cpfcan_BtagPf_trackSip3dVal", "Cpfcan_BtagPf_trackSip3dSig",
    "Cpfcan_BtagPf_trackJetDistVal", "Cpfcan_ptrel", "Cpfcan_drminsv", "Cpfcan_VTX_ass", "Cpfcan_puppiw",
    "Cpfcan_chi2", "Cpfcan_quality",
)
NPF = ("Npfcan_ptrel", "Npfcan_deltaR", "Npfcan_isGamma", "Npfcan_HadFrac", "Npfcan_drminsv", "Npfcan_puppiw")
SV = (
    "sv_pt", "sv_deltaR", "sv_mass", "sv_ntracks", "sv_chi2", "sv_normchi2", "sv_dxy", "sv_dxysig", "sv_d3d",
    "sv_d3dsig", "sv_costhetasvpv", "sv_enratio",
)


@dataclass(frozen=True)
class ObjectList:
    """One kind of object per jet: its jagged ``branches`` are named ``<record>_<field>`` and have the
    per-jet length held in the scalar branch ``counter``."""

    record: str
    counter: str
    branches: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """Branch names without the ``<record>_`` prefix (how uproot names the fields of a record)."""
        return tuple(b[len(self.record) + 1:] for b in self.branches)


OBJECT_LISTS = (
    ObjectList("Cpfcan", "nCpfcand", CPF),
    ObjectList("Npfcan", "nNpfcand", NPF),
    ObjectList("sv", "nsv", SV),
    # the CSV track lists have their lengths in TagVarCSV_* scalars
    ObjectList("TagVarCSVTrk", "TagVarCSV_jetNSelectedTracks", CSV_TRACKS),
    ObjectList("TagVarCSV", "TagVarCSV_jetNTracksEtaRel", CSV_ETAREL),
)
# Counter branch of each jagged group (branch tuple -> counter name).
COUNTERS = {objects.branches: objects.counter for objects in OBJECT_LISTS}

SCALARS = KINEMATICS + FLAVOUR_FLAGS + FLAVOUR_INTS + CSV_SCALARS
JAGGED = CSV_TRACKS + CSV_ETAREL + CPF + NPF + SV
ALL_BRANCHES = SCALARS + JAGGED

# Generator-level (truth) branches: never network inputs (see deepjet_nb.config).
TRUTH_BRANCHES = FLAVOUR_FLAGS + FLAVOUR_INTS + ("gen_pt",)

# Integer-valued branches; every other branch is float32.
INTEGER_BRANCHES = frozenset(
    ("npv", "nCpfcand", "nNpfcand", "nsv", "TagVarCSV_vertexCategory", "TagVarCSV_jetNSelectedTracks",
     "TagVarCSV_jetNTracksEtaRel", "TagVarCSV_jetNSecondaryVertices", "TagVarCSV_vertexNTracks")
    + FLAVOUR_FLAGS + FLAVOUR_INTS
)


def object_list(branch: str) -> ObjectList | None:
    """The :class:`ObjectList` a jagged branch belongs to (None for a scalar or unknown branch)."""
    for objects in OBJECT_LISTS:
        if branch in objects.branches:
            return objects
    return None


def counter_of(branch: str) -> str | None:
    """The counter branch of a jagged branch (None for a scalar or unknown branch)."""
    objects = object_list(branch)
    return objects.counter if objects else None


def branch_problem(name: str, jagged: bool, dtype) -> str | None:
    """Why a branch stored as one value per jet (``jagged`` false) or a list per jet, of numpy ``dtype``, does
    not fit the schema entry ``name``; None when it fits or ``name`` is not a schema branch.

    Lists must be lists and scalars scalars; the truth flags and flavours must be integers (or bools), since a
    fractional flag would silently move jets out of their class; every other branch must be numeric, not bool.
    """
    if name not in ALL_BRANCHES:
        return None
    if jagged != (name in JAGGED):
        have, want = ("a list", "one value") if jagged else ("one value", "a list")
        return f"branch {name!r} holds {have} per jet; the schema has {want} per jet"
    kind = getattr(dtype, "kind", "O")
    if name in FLAVOUR_FLAGS + FLAVOUR_INTS:
        if kind not in "iub":
            return f"branch {name!r} has type {dtype}; truth flags and flavours are integers (0/1 flags)"
    elif kind not in "iuf":
        return f"branch {name!r} has type {dtype}; the schema has a number (float32)"
    return None

