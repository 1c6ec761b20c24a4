"""Data configs: shipped configs load with the CMS shapes (docs/reference.md §4); mistakes name the key/branch and the file."""

import numpy as np
import pytest
import yaml

from deepjet_nb.config import CONFIG_DIR, REQUIRED_SPECTATORS, evaluate_selection, load_config
from deepjet_nb.errors import ConfigError


def test_deepjet_config_has_reference_groups_and_classes():
    cfg = load_config("deepjet")
    assert {g.name: g.shape for g in cfg.inputs} == {"global": (15,), "cpf": (25, 16), "npf": (25, 6),
                                                     "sv": (4, 12)}
    assert cfg.class_names == ("B", "BB", "LeptB", "C", "UDS", "G")
    assert cfg.classes["C"] == ("isC", "isCC", "isGCC")
    assert cfg.group("cpf").sort_by == "Cpfcan_BtagPf_trackSip2dSig" and cfg.group("cpf").descending
    assert cfg.group("sv").sort_by == "sv_dxysig"
    assert cfg.weighting.pt_edges[0] == 10 and cfg.weighting.pt_edges[-1] == 2000
    assert len(cfg.weighting.pt_edges) == 20 and len(cfg.weighting.eta_edges) == 11


def test_deepcsv_config_has_66_inputs_and_4_classes():
    cfg = load_config("deepcsv")
    assert sum(int(np.prod(g.shape)) for g in cfg.inputs) == 66
    assert cfg.class_names == ("B", "BB", "C", "UDSG")


def test_spectators_always_include_required_ones():
    for name in ("deepjet", "deepcsv"):
        spectators = load_config(name).spectators
        assert spectators[:len(REQUIRED_SPECTATORS)] == REQUIRED_SPECTATORS


def test_config_by_path_equals_config_by_name(tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_text((CONFIG_DIR / "deepjet.yaml").read_text())
    assert load_config(path).hash == load_config("deepjet").hash
    assert load_config(str(path)) == load_config("deepjet")


def test_hash_changes_with_content():
    cfg = load_config("deepjet")
    assert cfg.with_fraction(0.5).hash != cfg.hash


def edited(tmp_path, edit, config="deepjet"):
    """A copy of the shipped ``config`` changed by ``edit`` (a function of the raw dict), written to a file."""
    raw = yaml.safe_load((CONFIG_DIR / f"{config}.yaml").read_text())
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("edit, needle", [
    (lambda r: r["inputs"]["cpf"]["branches"].append("Cpfcan_nonsense"), "'Cpfcan_nonsense'"),
    (lambda r: r["inputs"]["global"]["branches"].append("jet_ptt"), "'jet_ptt'"),
    (lambda r: r.update(colour="blue"), "'colour'"),
    (lambda r: r["inputs"]["sv"].update(maxlen=3), "'maxlen'"),
    (lambda r: r["preprocessing"].update(fractoin=0.2), "'fractoin'"),
    (lambda r: r["classes"].update(X=["isTop"]), "'isTop'"),
    (lambda r: r.update(selection="jet_pt > 20 & bogus < 3"), "'bogus'"),
    (lambda r: r.update(selection="__import__('os')"), "selection"),
    (lambda r: r.update(spectators=["nope"]), "'nope'"),
    (lambda r: r["weighting"].update(reference_class="Z"), "'Z'"),
    (lambda r: r["weighting"].update(mode="sideways"), "'sideways'"),
    (lambda r: r["inputs"]["cpf"]["branches"].append("sv_pt"), "different object lists"),
    (lambda r: r["inputs"]["global"]["branches"].append("sv_pt"), "'sv_pt'"),
    (lambda r: r["inputs"]["sv"].update(max_length=0), "max_length"),
    (lambda r: r["preprocessing"].update(fraction=0.0), "fraction"),
    (lambda r: r["classes"].update(UDS=["isUD", "isG"]), "'isG'"),
])
def test_bad_config_error_names_key_and_file(tmp_path, edit, needle):
    path = edited(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("branch", ["isB", "jet_hadronFlavour", "gen_pt"])
def test_truth_branch_as_input_is_refused_unless_opted_in(tmp_path, branch):
    path = edited(tmp_path, lambda r: r["inputs"]["global"]["branches"].append(branch))
    with pytest.raises(ConfigError, match=f"inputs.global: '{branch}' is generator-level truth") as info:
        load_config(path)
    assert str(path) in str(info.value) and "allow_truth_inputs" in str(info.value)
    study = edited(tmp_path, lambda r: r.update(allow_truth_inputs=True) or
                   r["inputs"]["global"]["branches"].append(branch))
    cfg = load_config(study)
    assert cfg.allow_truth_inputs and branch in cfg.group("global").branches
    assert cfg.to_dict()["allow_truth_inputs"] is True and load_config("deepjet").hash != cfg.hash


def test_shipped_configs_hash_as_before_the_truth_opt_in_existed():
    # the opt-in key is written only when set, so datasets converted before it keep their config hash
    for name in ("deepjet", "deepcsv"):
        assert "allow_truth_inputs" not in load_config(name).to_dict()


def test_fat_jet_configs_read_the_deepak8_schema():
    cfg = load_config("fatjet")
    assert cfg.ntuple.name == "deepak8" and cfg.class_names == ("Top", "W", "QCD")
    assert {g.name: g.shape for g in cfg.inputs} == {"pfcand": (100, 28), "sv": (7, 14)}
    assert cfg.spectators[:len(cfg.required_spectators)] == cfg.required_spectators
    assert "fj_sdmass" in cfg.spectators and cfg.weighting.pt_branch == "fj_pt"
    assert cfg.to_dict()["schema"] == "deepak8"
    assert load_config("fatjet_substructure").ntuple is cfg.ntuple
    # the schema key is written only when not the default, so DeepNTuples hashes stay as they were
    assert "schema" not in load_config("deepjet").to_dict()


@pytest.mark.parametrize("edit, needle", [
    (lambda r: r.update(schema="deepak4"), "unknown ntuple schema 'deepak4'"),
    (lambda r: r["classes"].update(B=["isB"]), "'isB' of the deepak8 schema"),
    (lambda r: r["inputs"]["pfcand"]["branches"].append("Cpfcan_ptrel"), "unknown branch of the deepak8"),
    (lambda r: r.update(selection="jet_pt > 300"), "'jet_pt'"),
    (lambda r: r.update(spectators=["trackCounting_sip3dSig2"]), "'trackCounting_sip3dSig2'"),
    (lambda r: r["inputs"].update(jet={"branches": ["fj_sdmass", "fj_gen_res_mass"]}),
     "'fj_gen_res_mass' is generator-level truth"),
    (lambda r: r["inputs"].update(jet={"branches": ["label_QCD_b"]}), "'label_QCD_b' is generator-level truth"),
])
def test_fat_jet_config_is_checked_against_its_schema(tmp_path, edit, needle):
    path = edited(tmp_path, edit, "fatjet")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_unknown_config_name_lists_shipped_ones():
    with pytest.raises(ConfigError, match="deepcsv"):
        load_config("deepflavour")


def test_invalid_yaml_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("inputs: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(path)


def test_selection_expression_evaluates_like_numpy():
    arrays = {"jet_pt": np.array([10.0, 30.0, 50.0, np.nan]), "jet_eta": np.array([0.0, -2.6, 1.0, 0.0])}
    mask = evaluate_selection("(jet_pt > 20) & (abs(jet_eta) < 2.5)", arrays)
    assert mask.tolist() == [False, False, True, False]
    assert evaluate_selection("20 < jet_pt <= 50 and not jet_eta > 0.5", arrays).tolist() == \
        [False, True, False, False]
