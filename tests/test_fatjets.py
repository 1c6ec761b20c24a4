"""The boosted samples: the DeepAK8 fat-jet ntuple (Z' -> tt, W' -> WZ, boosted QCD) and the event-level ntuple
(all-hadronic ttbar against QCD multijets): schema, labels, list limits and order, substructure physics,
reproducibility, lepton identification, errors. Samples are small (tens of events), made once per module."""

import awkward as ak
import numpy as np
import pytest
import uproot

from deepjet_nb import schema
from deepjet_nb.errors import ArgumentError
from deepjet_nb.samples import generate
from deepjet_nb.samples import detector, leptons

TOP_MASS = 172.5  # GeV [PDG 2024: 172.57 +- 0.29]
W_MASS = 80.4  # GeV [PDG 2024: 80.37]


def _make(tmp_path_factory, process, events, seed=7, **kwargs):
    out = tmp_path_factory.mktemp(process) / f"{process}.root"
    generate(process, events, out, seed=seed, progress=False, **kwargs)
    return out


@pytest.fixture(scope="module")
def zprime_file(tmp_path_factory):
    return _make(tmp_path_factory, "zprime_tt", 50)


@pytest.fixture(scope="module")
def zprime(zprime_file):
    return uproot.open(zprime_file)[schema.DEEPAK8.tree].arrays()


@pytest.fixture(scope="module")
def qcd_boosted(tmp_path_factory):
    return uproot.open(_make(tmp_path_factory, "qcd_boosted", 40))[schema.DEEPAK8.tree].arrays()


@pytest.fixture(scope="module")
def wprime(tmp_path_factory):
    return uproot.open(_make(tmp_path_factory, "wprime_wz", 40))[schema.DEEPAK8.tree].arrays()


@pytest.fixture(scope="module")
def ttbar_events_file(tmp_path_factory):
    return _make(tmp_path_factory, "ttbar_allhad", 60, event_level=True)


@pytest.fixture(scope="module")
def qcd_events_file(tmp_path_factory):
    return _make(tmp_path_factory, "qcd_multijet", 40, event_level=True)


def np_(arrays, name):
    return ak.to_numpy(arrays[name])


def mask(arrays, *labels):
    return sum(np_(arrays, f"label_{name}") for name in labels) > 0


# ------------------------------------------------------------------------------------------- fat-jet schema


def test_fatjet_file_has_exactly_the_schema_branches_and_types(zprime_file):
    tree = uproot.open(zprime_file)[schema.DEEPAK8.tree]
    assert set(tree.keys()) - {"pfcand", "sv"} == set(schema.DEEPAK8.all_branches)
    for name in schema.DEEPAK8.all_branches:
        interpretation = str(tree[name].interpretation)
        kind = "i4" if name in schema.DEEPAK8.integer_branches else "f4"
        assert f"'>{kind}'" in interpretation, (name, interpretation)
        assert ("AsJagged" in interpretation) == (name in schema.DEEPAK8.jagged), name
    assert tree.num_entries >= 60  # two tops per event, most above 300 GeV


def test_fat_jets_pass_the_selection_and_values_are_finite(zprime, qcd_boosted):
    for arrays in (zprime, qcd_boosted):
        assert np.all(np_(arrays, "fj_pt") > 300) and np.all(np.abs(np_(arrays, "fj_eta")) < 2.4)
        for name in schema.DEEPAK8.all_branches:
            assert np.all(np.isfinite(ak.to_numpy(ak.flatten(arrays[name], axis=None)))), name


def test_exactly_one_label_per_fat_jet(zprime, qcd_boosted, wprime):
    for arrays in (zprime, qcd_boosted, wprime):
        total = sum(np_(arrays, name) for name in schema.FJ_LABELS)
        assert np.all(total == 1)
        assert set(np.unique(np.concatenate([np_(arrays, n) for n in schema.FJ_LABELS]))) <= {0, 1}


def test_list_limits_counters_and_order(zprime, qcd_boosted):
    for arrays in (zprime, qcd_boosted):
        n_pf, n_sv = np_(arrays, "n_pfcands"), np_(arrays, "n_sv")
        assert n_pf.max() <= schema.FATJET_MAX_PFCANDS and n_sv.max() <= schema.FATJET_MAX_SV
        assert n_pf.min() > 0 and (n_pf == schema.FATJET_MAX_PFCANDS).any()  # the cap is reached at 1 TeV
        for objects in schema.DEEPAK8.object_lists:
            for branch in objects.branches:
                assert np.array_equal(ak.to_numpy(ak.num(arrays[branch])), np_(arrays, objects.counter)), branch
        assert ak.all(arrays.pfcand_pt_log[:, 1:] <= arrays.pfcand_pt_log[:, :-1])  # decreasing pT
        assert ak.all(arrays.sv_dxysig[:, 1:] <= arrays.sv_dxysig[:, :-1])  # decreasing flight significance
        # inside the jet: anti-kT R = 0.8 in (rapidity, phi), measured here in pseudorapidity and from the final axis
        assert ak.all(arrays.pfcand_deltaR < 1.0) and ak.mean(arrays.pfcand_deltaR < 0.8) > 0.99


def test_candidate_types_are_exclusive_and_neutrals_have_no_track_variables(zprime):
    kinds = sum(ak.flatten(zprime[f"pfcand_{k}"]) for k in ("isEl", "isMu", "isGamma", "isChargedHad",
                                                             "isNeutralHad"))
    assert ak.all(kinds == 1)
    neutral = ak.flatten((zprime.pfcand_isGamma + zprime.pfcand_isNeutralHad) > 0)
    for name in ("charge", "normchi2", "dz", "dxy", "btagSip3dSig", "btagJetDistVal"):
        assert ak.all(ak.flatten(zprime[f"pfcand_{name}"])[neutral] == 0), name
    charged = ~ak.to_numpy(neutral)
    assert np.all(np.abs(ak.to_numpy(ak.flatten(zprime.pfcand_charge))[charged]) == 1)


# ------------------------------------------------------------------------------------------ physics


def test_zprime_fat_jets_are_mostly_fully_merged_tops(zprime):
    # a 2 TeV Z' gives tops of pT ~ 1 TeV, decay cone ~ 2 m_t / pT ~ 0.35 < 0.6: most jets are bqq'/bcq
    top = mask(zprime, "Top_bqq", "Top_bcq")
    assert top.mean() > 0.4
    assert mask(zprime, "Top_bqq", "Top_bcq", "Top_bq", "Top_bc", "Top_others", "W_qq", "W_cq").mean() > 0.8


def test_top_jets_soft_drop_mass_peaks_at_the_top_mass(zprime):
    # target: m_t = 172.5 GeV [PDG]; the soft-drop mass of merged tops peaks there [CMS JME-18-002]. With
    # ~50 jets the median's statistical error is ~5 GeV; the window (+-25 GeV) allows 3 sigma plus a ~10 GeV
    # detector scale shift; a QCD-like median (~50 GeV) or a W-like one (~80 GeV) fails it.
    top = mask(zprime, "Top_bqq", "Top_bcq")
    assert top.sum() >= 25
    median = np.median(np_(zprime, "fj_sdmass")[top])
    assert abs(median - TOP_MASS) < 25, median
    # the matched resonance is the top, near its pole
    assert abs(np.median(np_(zprime, "fj_gen_res_mass")[top]) - TOP_MASS) < 5


def test_top_jets_have_lower_tau32_than_qcd_jets(zprime, qcd_boosted):
    # three-prong tops have small tau3/tau2 [Thaler, Van Tilburg, JHEP 03 (2011) 015: top ~0.5, QCD ~0.7-0.8]
    top = np.median(np_(zprime, "fj_tau32")[mask(zprime, "Top_bqq", "Top_bcq")])
    qcd = np.median(np_(qcd_boosted, "fj_tau32"))
    assert top < qcd - 0.1, (top, qcd)


def test_w_jets_soft_drop_mass_peaks_at_the_w_mass(wprime):
    # target: m_W = 80.4 GeV [PDG]; window +-15 GeV (about 3 sigma of the median of ~25 jets of width ~20 GeV,
    # plus the detector scale); the QCD median lies far below and the top far above
    w = mask(wprime, "W_qq", "W_cq")
    assert w.sum() >= 15
    median = np.median(np_(wprime, "fj_sdmass")[w])
    assert abs(median - W_MASS) < 15, median
    z = mask(wprime, "Z_qq", "Z_bb", "Z_cc")
    assert z.sum() >= 10  # the Z of W' -> WZ


def test_qcd_fat_jets_soft_drop_mass_is_well_below(qcd_boosted):
    # QCD jets of pT 300-600 GeV: soft-drop mass falling from ~10 GeV, median ~40-60 GeV [CMS JME-18-002]
    qcd_labels = ("QCD_bb", "QCD_cc", "QCD_b", "QCD_c", "QCD_others")
    assert mask(qcd_boosted, *qcd_labels).mean() > 0.9
    assert np.median(np_(qcd_boosted, "fj_sdmass")) < 0.5 * W_MASS + 30  # < 70 GeV, below the W window
    assert np.all(np_(qcd_boosted, "fj_gen_res_pt")[mask(qcd_boosted, *qcd_labels)] == 0)
    assert (np_(qcd_boosted, "fj_genjet_pt") > 0).mean() > 0.95


@pytest.mark.slow
def test_same_seed_gives_the_same_arrays(tmp_path):
    first, second = tmp_path / "a.root", tmp_path / "b.root"
    for out in (first, second):
        generate("zprime_tt", 6, out, seed=5, progress=False)
    a = uproot.open(first)[schema.DEEPAK8.tree].arrays()
    b = uproot.open(second)[schema.DEEPAK8.tree].arrays()
    assert len(a) > 0
    for name in schema.DEEPAK8.all_branches:
        assert ak.to_list(a[name]) == ak.to_list(b[name]), name


# --------------------------------------------------------------------------------------- event level


def test_event_level_file_has_exactly_the_schema_branches(ttbar_events_file, qcd_events_file):
    for path in (ttbar_events_file, qcd_events_file):
        tree = uproot.open(path)[schema.EVENTS.tree]
        assert set(tree.keys()) == set(schema.EVENTS.all_branches)
        for name in schema.EVENTS.all_branches:
            kind = "i4" if name in schema.EVENTS.integer_branches else "f4"
            assert f"'>{kind}'" in str(tree[name].interpretation), name
        assert tree.num_entries > 5


def test_event_labels_zeros_for_absent_jets_and_ordering(ttbar_events_file, qcd_events_file):
    for path, label in ((ttbar_events_file, "label_ttbar"), (qcd_events_file, "label_QCD")):
        a = uproot.open(path)[schema.EVENTS.tree].arrays(library="np")
        assert np.all(a[label] == 1) and np.all(a["label_ttbar"] + a["label_QCD"] == 1)
        n = a["nJets"]
        ht = sum(a[f"jetPt_{i}"] for i in range(schema.EVENT_JETS))
        assert np.all(ht > 0.5 * 400)  # H_T > 400 GeV over all jets; the five leading carry most of it
        for i in range(schema.EVENT_JETS):
            absent = n <= i
            for name in schema.EVENT_JET_FEATURES:
                assert np.all(a[f"{name}_{i}"][absent] == 0), (name, i)
            assert np.all(a[f"jetPt_{i}"][~absent] > 30) and np.all(np.abs(a[f"jetEta_{i}"][~absent]) < 2.4)
            if i:
                assert np.all(a[f"jetPt_{i}"] <= a[f"jetPt_{i - 1}"])


def test_all_hadronic_ttbar_has_almost_no_isolated_lepton(ttbar_events_file):
    # target: no prompt lepton in all-hadronic ttbar; leptons from b/c decays are not isolated, and hadron
    # misidentification is ~0.3 % per track; >= 90 % of events must have nLeptons = 0
    a = uproot.open(ttbar_events_file)[schema.EVENTS.tree].arrays(library="np")
    assert np.mean(a["nLeptons"] == 0) >= 0.9


# ------------------------------------------------------------------------------------ lepton identification


def test_lepton_identification_efficiencies():
    # a synthetic candidate table: 4000 muon, electron and pion tracks of 10 GeV at eta = 0; targets
    # (leptons.py, CMS JINST 13 (2018) P06015 and JINST 16 (2021) P05014): 0.98, 0.90, <= 0.5 % fakes
    n = 4000
    species = np.repeat([13, 11, 211], n)
    cand = np.zeros((detector.N_CANDIDATE_COLUMNS, 3 * n))
    cand[detector.C_PX] = 10.0
    cand[detector.C_E] = 10.0
    cand[detector.C_KIND] = detector.TRACK
    cand[detector.C_GEN] = np.arange(3 * n) + 1
    cand[detector.C_ORIGIN] = detector.ORIGIN_GENERATOR
    gen_pid = np.concatenate([[2212], species]).astype(np.int32)
    code = leptons.identify(cand, np.array([0, 3 * n]), np.array([0, 3 * n + 1]), gen_pid,
                            leptons.identification_uniforms(3, 3 * n))
    mu, el, pi = code[:n], code[n:2 * n], code[2 * n:]
    assert abs(np.mean(mu == leptons.MUON) - 0.98) < 0.01
    assert abs(np.mean(el == leptons.ELECTRON) - 0.90) < 0.02
    assert 0.001 < np.mean(pi != leptons.NOT_LEPTON) < 0.012
    cand[detector.C_KIND] = detector.PHOTON
    assert np.all(leptons.identify(cand, np.array([0, 3 * n]), np.array([0, 3 * n + 1]), gen_pid,
                                   leptons.identification_uniforms(3, 3 * n)) == 0)


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, message", [
    ({"process": "zprime_tt", "event_level": True}, "--event-level"),
    ({"process": "ttbar", "fatjet_pt_min": 200.0}, "--fatjet-pt-min"),
    ({"process": "zprime_tt", "fatjet_pt_min": -1.0}, "--fatjet-pt-min"),
])
def test_bad_boosted_arguments_raise_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        generate(events=1, out=tmp_path / "x.root", progress=False, **kwargs)
