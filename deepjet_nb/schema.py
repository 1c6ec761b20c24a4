"""The ntuple schemas: the DeepNTuples jet ntuple (one TTree entry per AK4 jet), the DeepAK8 fat-jet ntuple (one
entry per AK8 jet) and the event-level ntuple (one entry per event) (docs/reference.md §1, docs/formats.md).

Real CMS DeepNTuples and DeepAK8 files use these names, so code written against this module works on them too.
This is the one list of branch names: the sample producers, the synthetic test writer, the data-config
validation, conversion and evaluation all take their names from here. A data config names its schema
(``schema: deepak8``); without one it is the DeepNTuples schema, whose names are also this module's top-level
constants. These are presets: any other layout is described by its data config (:func:`custom`).

Jagged branches hold one value per object. Each kind of object is an :class:`ObjectList`: the branches share
a counter branch (their per-entry length) and a name prefix (``Cpfcan_``, ``sv_``, ...), which is how uproot
groups them when writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Schema:
    """One ntuple layout: its tree, scalar branches, object lists and truth.

    ``truth_flags`` are the 0/1 class flags (at most one set per entry), ``truth_ints`` further integer truth
    and ``truth_floats`` generator-level numbers: together the :attr:`truth_branches`, never network inputs.
    ``pt_branch``/``eta_branch`` are the default reweighting variables and ``required_spectators`` what every
    prediction file of this schema carries for evaluation. ``entry`` says what one entry is.
    """

    name: str
    tree: str
    entry: str
    scalars: tuple[str, ...]
    object_lists: tuple[ObjectList, ...]
    truth_flags: tuple[str, ...]
    truth_ints: tuple[str, ...] = ()
    truth_floats: tuple[str, ...] = ()
    integer_branches: frozenset = frozenset()
    pt_branch: str = "jet_pt"
    eta_branch: str = "jet_eta"
    required_spectators: tuple[str, ...] = ()
    flavour_classes: bool = False  # a custom layout whose classes are jet flavours (evaluated as DeepNTuples)
    collection: str | None = None  # entries are events holding a collection of the objects (one row each)
    generated: tuple[str, ...] = ()  # columns that reading makes (not in the file): entry, object index
    counters: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "counters", {o.branches: o.counter for o in self.object_lists})

    @property
    def jagged(self) -> tuple[str, ...]:
        return tuple(b for o in self.object_lists for b in o.branches)

    @property
    def all_branches(self) -> tuple[str, ...]:
        return self.scalars + self.jagged

    @property
    def truth_branches(self) -> tuple[str, ...]:
        return self.truth_flags + self.truth_ints + self.truth_floats

    def object_list(self, branch: str) -> ObjectList | None:
        """The :class:`ObjectList` a jagged branch belongs to (None for a scalar or unknown branch)."""
        for objects in self.object_lists:
            if branch in objects.branches:
                return objects
        return None

    def counter_of(self, branch: str) -> str | None:
        """The counter branch of a jagged branch (None for a scalar or unknown branch)."""
        objects = self.object_list(branch)
        return objects.counter if objects else None

    def cast(self, branches: dict) -> dict:
        """``branches`` with every numpy array converted in place to the schema's type: int32 for
        :attr:`integer_branches`, float32 otherwise (jagged records are left as they are)."""
        import numpy as np

        for name, value in branches.items():
            if isinstance(value, np.ndarray):
                branches[name] = value.astype(np.int32 if name in self.integer_branches else np.float32)
        return branches

    def branch_problem(self, name: str, jagged: bool, dtype) -> str | None:
        """Why a branch stored as one value per entry (``jagged`` false) or a list per entry, of numpy ``dtype``,
        does not fit the schema entry ``name``; None when it fits or ``name`` is not a schema branch.

        Lists must be lists and scalars scalars; the truth flags and integer truth must be integers (or bools),
        since a fractional flag would silently move entries out of their class; every other branch must be
        numeric, not bool.
        """
        if name not in self.all_branches:
            return None
        what = self.entry
        # in an event, a per-object branch is a list as much as an object list is: deepjet_nb.collection checks
        if self.collection is None and jagged != (name in self.jagged):
            have, want = ("a list", "one value") if jagged else ("one value", "a list")
            return f"branch {name!r} holds {have} per {what}; the schema has {want} per {what}"
        kind = getattr(dtype, "kind", "O")
        if name in self.truth_flags + self.truth_ints:
            if kind not in "iub":
                return f"branch {name!r} has type {dtype}; truth flags and flavours are integers (0/1 flags)"
        elif kind not in "iuf":
            return f"branch {name!r} has type {dtype}; the schema has a number (float32)"
        return None


DEEPNTUPLES = Schema(
    name="deepntuples", tree=TREE, entry="jet", scalars=SCALARS, object_lists=OBJECT_LISTS,
    truth_flags=FLAVOUR_FLAGS, truth_ints=FLAVOUR_INTS, truth_floats=("gen_pt",),
    integer_branches=INTEGER_BRANCHES,
    required_spectators=("jet_pt", "jet_eta", *FLAVOUR_FLAGS, "trackCounting_sip3dSig2"),
)


def object_list(branch: str) -> ObjectList | None:
    """The DeepNTuples :class:`ObjectList` a jagged branch belongs to (None for a scalar or unknown branch)."""
    return DEEPNTUPLES.object_list(branch)


def counter_of(branch: str) -> str | None:
    """The counter branch of a DeepNTuples jagged branch (None for a scalar or unknown branch)."""
    return DEEPNTUPLES.counter_of(branch)


def branch_problem(name: str, jagged: bool, dtype) -> str | None:
    """:meth:`Schema.branch_problem` of the DeepNTuples schema."""
    return DEEPNTUPLES.branch_problem(name, jagged, dtype)


# ---------------------------------------------------------------------------------------------------------
# DeepAK8 / ParticleNet fat-jet ntuple: one entry per anti-kT R = 0.8 jet (docs/formats.md §1b)

FJ_KINEMATICS = (
    "fj_pt", "fj_eta", "fj_phi", "fj_mass", "fj_sdmass", "fj_tau1", "fj_tau2", "fj_tau3", "fj_tau21", "fj_tau32",
    "fj_sdsj1_pt", "fj_sdsj1_eta", "fj_sdsj1_phi", "fj_sdsj1_mass",
    "fj_sdsj2_pt", "fj_sdsj2_eta", "fj_sdsj2_phi", "fj_sdsj2_mass", "fj_sdsj_dr", "fj_sdsj_z",
    "npv", "n_pfcands", "n_sv",
)
FJ_LABELS = (
    "label_Top_bcq", "label_Top_bqq", "label_Top_bc", "label_Top_bq", "label_Top_others",
    "label_W_cq", "label_W_qq", "label_Z_bb", "label_Z_cc", "label_Z_qq", "label_H_bb", "label_H_cc",
    "label_QCD_bb", "label_QCD_cc", "label_QCD_b", "label_QCD_c", "label_QCD_others", "label_Undefined",
)
# generator level: the matched resonance (0 for QCD jets) and the B/C hadrons inside the jet
FJ_TRUTH_INTS = ("fj_nbHadrons", "fj_ncHadrons")
FJ_TRUTH_FLOATS = ("fj_genjet_pt", "fj_genjet_sdmass", "fj_gen_res_pt", "fj_gen_res_mass")
PFCAND = (
    "pfcand_ptrel_log", "pfcand_erel_log", "pfcand_pt_log", "pfcand_e_log", "pfcand_etarel", "pfcand_phirel",
    "pfcand_deltaR", "pfcand_abseta", "pfcand_charge", "pfcand_isEl", "pfcand_isMu", "pfcand_isGamma",
    "pfcand_isChargedHad", "pfcand_isNeutralHad", "pfcand_normchi2", "pfcand_quality", "pfcand_dz",
    "pfcand_dzsig", "pfcand_dxy", "pfcand_dxysig", "pfcand_btagEtaRel", "pfcand_btagPtRatio",
    "pfcand_btagPParRatio", "pfcand_btagSip2dVal", "pfcand_btagSip2dSig", "pfcand_btagSip3dVal",
    "pfcand_btagSip3dSig", "pfcand_btagJetDistVal", "pfcand_drminsv", "pfcand_puppiw",
)
FJ_SV = (
    "sv_ptrel_log", "sv_erel_log", "sv_pt", "sv_mass", "sv_etarel", "sv_phirel", "sv_deltaR", "sv_abseta",
    "sv_ntracks", "sv_normchi2", "sv_dxy", "sv_dxysig", "sv_d3d", "sv_d3dsig", "sv_costhetasvpv",
)
FATJET_MAX_PFCANDS, FATJET_MAX_SV = 100, 7

DEEPAK8 = Schema(
    name="deepak8", tree=TREE, entry="fat jet",
    scalars=FJ_KINEMATICS + FJ_LABELS + FJ_TRUTH_INTS + FJ_TRUTH_FLOATS,
    object_lists=(ObjectList("pfcand", "n_pfcands", PFCAND), ObjectList("sv", "n_sv", FJ_SV)),
    truth_flags=FJ_LABELS, truth_ints=FJ_TRUTH_INTS, truth_floats=FJ_TRUTH_FLOATS,
    integer_branches=frozenset(("npv", "n_pfcands", "n_sv") + FJ_LABELS + FJ_TRUTH_INTS),
    pt_branch="fj_pt", eta_branch="fj_eta",
    required_spectators=("fj_pt", "fj_eta", "fj_mass", "fj_sdmass", "fj_tau21", "fj_tau32", *FJ_LABELS),
)

# ---------------------------------------------------------------------------------------------------------
# Event-level ntuple (all-hadronic ttbar against QCD multijets): one entry per event in tree "events", the
# features of the five leading AK8 jets (zeros for absent jets) and the process label (docs/formats.md §1c)

EVENT_TREE = "events"
EVENT_JETS = 5
EVENT_JET_FEATURES = ("jetPt", "jetEta", "jetPhi", "jetMass", "jetMassSoftDrop", "jetTau1", "jetTau2", "jetTau3")
EVENT_FEATURES = ("nJets", "nLeptons") + tuple(
    f"{name}_{i}" for i in range(EVENT_JETS) for name in EVENT_JET_FEATURES)
EVENT_LABELS = ("label_ttbar", "label_QCD")

EVENTS = Schema(
    name="events", tree=EVENT_TREE, entry="event", scalars=EVENT_FEATURES + EVENT_LABELS, object_lists=(),
    truth_flags=EVENT_LABELS, integer_branches=frozenset(("nJets", "nLeptons") + EVENT_LABELS),
    pt_branch="jetPt_0", eta_branch="jetEta_0", required_spectators=("nJets", "jetPt_0", *EVENT_LABELS),
)

SCHEMAS = {s.name: s for s in (DEEPNTUPLES, DEEPAK8, EVENTS)}

# ---------------------------------------------------------------------------------------------------------
# Any other layout: described by a data config (``schema: custom``), checked against the file when it is read

CUSTOM = "custom"
# Columns of a custom layout whose entries are events: the entry number of an object's event in its file, and
# the object's index in the event's collection (written to prediction files, to join them back to events).
ENTRY, OBJECT_INDEX = "entry", "object_index"


def custom(tree: str, *, scalars, object_lists, truth_flags, truth_floats=(), pt_branch: str, eta_branch: str,
           flavour_classes: bool = False, collection: str | None = None) -> Schema:
    """The :class:`Schema` of a layout that no preset describes, from what a data config names.

    ``scalars``: branches with one number per entry; ``object_lists``: {name: jagged branches of one kind of
    object} (their counter is whatever the file says: the lengths are checked when the file is read);
    ``truth_flags``: the branches the classes are made of; ``truth_floats``: further generator-level branches
    (never network inputs); ``flavour_classes`` whether the classes are jet flavours; ``collection`` the
    counter (or a per-object branch) of the objects to classify when an entry is an event holding them. What
    every prediction file carries: the objects' pT and η, the class truth and, for events, each object's
    :data:`ENTRY` and :data:`OBJECT_INDEX` (to join the predictions back to the events).
    """
    truth = tuple(dict.fromkeys(truth_flags))
    floats = tuple(b for b in dict.fromkeys(truth_floats) if b not in truth)
    kinematics = tuple(dict.fromkeys((pt_branch, eta_branch)))
    lists = tuple(ObjectList(name, "", tuple(dict.fromkeys(branches))) for name, branches in object_lists.items())
    jagged = {b for o in lists for b in o.branches}
    generated = (ENTRY, OBJECT_INDEX) if collection else ()
    everything = dict.fromkeys((*scalars, *kinematics, *truth, *floats, *generated))
    return Schema(name=CUSTOM, tree=tree, entry="event" if collection else "entry",
                  scalars=tuple(b for b in everything if b not in jagged), object_lists=lists,
                  truth_flags=truth, truth_ints=generated, truth_floats=floats, pt_branch=pt_branch,
                  eta_branch=eta_branch, required_spectators=tuple(dict.fromkeys((*kinematics, *truth, *generated))),
                  flavour_classes=flavour_classes, collection=collection, generated=generated)


def get(name: str) -> Schema:
    """The schema called ``name`` (``deepntuples``, ``deepak8``, ``events``); KeyError lists the known ones."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown schema {name!r} (known: {', '.join(SCHEMAS)})") from None
