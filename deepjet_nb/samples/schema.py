"""The DeepNTuples branch schema: one TTree entry per jet (REFERENCE: CMS DeepNTuples / DeepJet).

Real CMS DeepNTuples files use these names, so code written against this module works on them too.
Jagged branches hold one value per object; their lengths equal the counter branch named in ``COUNTERS``.
"""

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

# Counter branch of each jagged group. The CSV track lists have their length in TagVarCSV_* scalars.
COUNTERS = {
    CPF: "nCpfcand",
    NPF: "nNpfcand",
    SV: "nsv",
    CSV_TRACKS: "TagVarCSV_jetNSelectedTracks",
    CSV_ETAREL: "TagVarCSV_jetNTracksEtaRel",
}

SCALARS = KINEMATICS + FLAVOUR_FLAGS + FLAVOUR_INTS + CSV_SCALARS
JAGGED = CSV_TRACKS + CSV_ETAREL + CPF + NPF + SV
ALL_BRANCHES = SCALARS + JAGGED

# Integer-valued branches; every other branch is float32.
INTEGER_BRANCHES = frozenset(
    ("npv", "nCpfcand", "nNpfcand", "nsv", "TagVarCSV_vertexCategory", "TagVarCSV_jetNSelectedTracks",
     "TagVarCSV_jetNTracksEtaRel", "TagVarCSV_jetNSecondaryVertices", "TagVarCSV_vertexNTracks")
    + FLAVOUR_FLAGS + FLAVOUR_INTS
)

# Truth flavour groups used for evaluation and plots: the sum of these flags is 1 for a jet of the group.
FLAVOUR_GROUPS = {
    "b": ("isB", "isBB", "isGBB", "isLeptonicB", "isLeptonicB_C"),
    "c": ("isC", "isCC", "isGCC"),
    "udsg": ("isUD", "isS", "isG"),
}


def flavour_masks(arrays) -> dict:
    """Boolean masks {"b", "c", "udsg"} from the raw flavour flags of ``arrays`` (anything indexable by
    branch name: a dict of numpy arrays, an awkward record array, ...). Undefined jets are in none."""
    import numpy as np

    return {group: np.sum([np.asarray(arrays[f]) for f in flags], axis=0) > 0
            for group, flags in FLAVOUR_GROUPS.items()}
