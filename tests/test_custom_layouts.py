"""Data configs for layouts that no shipped schema describes (``schema: custom``), errors that suggest the
closest valid name, and ``inspect``."""

import pickle

import numpy as np
import pytest
import uproot

from deepjet_nb import schema
from deepjet_nb.config import config_from_dict, load_config
from deepjet_nb.errors import ConfigError, DatasetError, InputFileError, suggestion
from deepjet_nb.flavours import class_labels
from deepjet_nb.inspect import inspect
from deepjet_nb.rootio import input_files, open_tree
from fixtures.custom_ntuples import NANOAOD_CONFIG, WEAVER_CONFIG, write_weaver_ntuple


@pytest.fixture(scope="module")
def weaver_file(tmp_path_factory):
    return write_weaver_ntuple(tmp_path_factory.mktemp("weaver") / "jets.root", 600, seed=1)


def test_a_config_naming_another_tree_describes_its_own_layout():
    cfg = config_from_dict(WEAVER_CONFIG)
    assert cfg.schema == schema.CUSTOM
    layout = cfg.ntuple
    assert layout.tree == "tree"
    assert layout.object_lists[0].branches == ("part_pt_log", "part_deta", "part_dphi", "part_d0")
    # the class branches and the declared truth are truth: never inputs, always carried for evaluation
    assert layout.truth_branches == ("jet_hflav", "jet_genpt")
    assert cfg.spectators[:3] == ("jet_pt", "jet_eta", "jet_hflav") and "jet_mass" in cfg.spectators
    assert "jet_hflav" in cfg.scalar_branches()


def test_a_custom_config_round_trips_through_its_dict_with_the_same_hash():
    cfg = config_from_dict(WEAVER_CONFIG)
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and again.hash == cfg.hash
    assert cfg.to_dict()["schema"] == "custom" and cfg.to_dict()["truth"] == ["jet_genpt"]


def test_the_deepntuples_default_is_kept_for_configs_without_schema_on_the_deepntuples_tree():
    cfg = load_config("deepjet")
    assert cfg.schema == "deepntuples" and "schema" not in cfg.to_dict() and "truth" not in cfg.to_dict()


def test_a_custom_config_without_tree_is_refused():
    raw = {**WEAVER_CONFIG, "schema": "custom"}
    del raw["tree"]
    with pytest.raises(ConfigError, match="tree must be a non-empty string"):
        config_from_dict(raw)


def test_truth_branches_of_a_custom_layout_cannot_be_inputs():
    raw = {**WEAVER_CONFIG, "inputs": {"jet": {"branches": ["jet_pt", "jet_genpt"]}}}
    with pytest.raises(ConfigError, match="'jet_genpt' is generator-level truth"):
        config_from_dict(raw)
    raw["inputs"] = {"jet": {"branches": ["jet_pt", "jet_hflav"]}}
    with pytest.raises(ConfigError, match="'jet_hflav' is generator-level truth"):
        config_from_dict(raw)


def test_classes_are_expressions_over_branches():
    classes = {"B": ["hflav == 5"], "C": ["hflav == 4", "isCC"], "L": ["(hflav == 0) & (pt > 10)"]}
    arrays = {"hflav": np.array([5, 4, 0, 0, 4, 1]), "isCC": np.array([0, 0, 0, 0, 0, 1]),
              "pt": np.array([20, 20, 20, 5, 20, 20])}
    assert class_labels(arrays, classes).tolist() == [0, 1, 2, -1, 1, 1]


def test_preset_classes_may_be_expressions_over_the_schemas_truth():
    raw = load_config("deepcsv").to_dict()
    raw["classes"] = {"B": ["jet_hadronFlavour == 5"], "C": ["jet_hadronFlavour == 4"],
                      "UDSG": ["jet_hadronFlavour == 0"]}
    cfg = config_from_dict(raw)
    assert cfg.flags == ("jet_hadronFlavour",) and "jet_hadronFlavour" in cfg.scalar_branches()
    raw["classes"]["B"] = ["jet_pt > 5"]
    with pytest.raises(ConfigError, match="'jet_pt' in 'jet_pt > 5' is not a truth branch"):
        config_from_dict(raw)


def test_a_class_expression_outside_the_grammar_is_refused():
    raw = {**WEAVER_CONFIG, "classes": {"B": ["__import__('os')"], "C": ["jet_hflav == 4"]}}
    with pytest.raises(ConfigError, match=r"classes.B .*__import__.*: unsupported element"):
        config_from_dict(raw)


# --- errors that suggest ---------------------------------------------------------------------------------

def test_an_unknown_config_key_names_the_closest_allowed_key():
    raw = {**WEAVER_CONFIG, "selction": "jet_pt > 30"}
    with pytest.raises(ConfigError, match=r"unknown key 'selction' \(did you mean 'selection'\?\)") as info:
        config_from_dict(raw)
    assert info.value.key == "selction" and "selection" in info.value.choices


def test_an_unknown_preset_branch_suggests_the_closest_and_the_custom_layout():
    raw = load_config("deepjet").to_dict()
    raw["inputs"]["global"]["branches"].append("jet_ptt")
    with pytest.raises(ConfigError, match=r"'jet_ptt' \(did you mean 'jet_pt'\?\); .*'schema: custom'"):
        config_from_dict(raw)


def test_a_wrong_branch_in_a_config_is_named_with_the_closest_branch_of_the_file(weaver_file, tmp_path):
    from deepjet_nb.convert import convert

    raw = {**WEAVER_CONFIG, "inputs": {**WEAVER_CONFIG["inputs"], "jet": {"branches": ["jet_pt", "jet_etaa"]}}}
    with pytest.raises(DatasetError, match=r"tree 'tree' has no branch 'jet_etaa' \(did you mean 'jet_eta'\?\)"):
        convert([weaver_file], tmp_path / "ds", raw, jobs=1, progress=False)


def test_a_missing_tree_lists_the_trees_of_the_file(weaver_file):
    with pytest.raises(InputFileError, match=r"no tree 'tre' \(did you mean 'tree'\?\)") as info:
        with open_tree(weaver_file, "tre"):
            pass
    assert info.value.path == weaver_file and info.value.choices == ("tree",)


def test_errors_keep_their_fields_across_processes():
    err = InputFileError("f.root: no branch 'jet_tp'", path="f.root", key="jet_tp", choices=["jet_pt"])
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "f.root: no branch 'jet_tp' (did you mean 'jet_pt'?)"
    assert (again.path, again.key, again.choices) == ("f.root", "jet_tp", ("jet_pt",))


def test_suggestion_lists_a_short_list_when_nothing_is_close():
    assert suggestion("zzz", ["mode", "apply"]) == " (one of: 'mode', 'apply')"
    assert suggestion("zzz", [f"name{i}" for i in range(40)]) == ""


# --- inputs: globs ----------------------------------------------------------------------------------------

def test_glob_patterns_expand_to_sorted_files(tmp_path):
    for name in ("b.root", "a.root", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert input_files([str(tmp_path / "*.root")], "convert") == [tmp_path / "a.root", tmp_path / "b.root"]
    with pytest.raises(Exception, match="no file matches"):
        input_files(str(tmp_path / "*.nothing"), "convert")


# --- inspect ----------------------------------------------------------------------------------------------

def test_inspect_reports_trees_branches_and_object_lists(weaver_file):
    info = inspect(weaver_file)
    assert info.trees == {"tree": 600} and info.tree == "tree"
    (part,) = info.object_lists
    assert part.name == "part" and part.counter == "npart"
    assert part.branches == ("part_pt_log", "part_deta", "part_dphi", "part_d0")
    assert 1 <= part.mean_length <= 19 and part.max_length <= 19
    assert "part_d0" in info.summary() and "counter npart" in info.summary()


def test_the_starter_config_of_inspect_loads_and_converts(weaver_file, tmp_path):
    from deepjet_nb.convert import convert

    info = inspect(weaver_file)
    path = tmp_path / "starter.yaml"
    path.write_text(info.starter_yaml())
    cfg = load_config(str(path))
    assert cfg.schema == "custom" and cfg.classes["B"] == ("jet_hflav == 5",)
    assert cfg.ntuple.truth_branches == ("jet_hflav", "jet_genpt")  # the gen-level pT is recognised as truth
    assert "jet_genpt" not in cfg.group("global").branches and cfg.group("part").max_length >= 10
    result = convert([weaver_file], tmp_path / "ds", cfg, jobs=1, progress=False)
    assert result.ok and result.manifest.n_jets == 600


def test_inspect_of_a_missing_tree_names_the_trees(weaver_file):
    with pytest.raises(InputFileError, match="did you mean 'tree'"):
        inspect(weaver_file, tree="trees")


def test_inspect_groups_vector_branches_without_counter_by_prefix_and_length(tmp_path):
    import awkward as ak

    path = tmp_path / "rntuple.root"
    with uproot.recreate(path) as f:  # uproot writes an RNTuple here: no counter branches
        f["events"] = {"x": np.arange(3.0), "trk_pt": ak.Array([[1.0], [2.0, 3.0], []]),
                       "trk_eta": ak.Array([[0.1], [0.2, 0.3], []]), "trk_bad": ak.Array([[1.0, 2.0], [], []])}
    info = inspect(path)
    lists = {o.name: o.branches for o in info.object_lists}
    assert {name: set(branches) for name, branches in lists.items()} == {"trk": {"trk_pt", "trk_eta"},
                                                                         "trk_bad": {"trk_bad"}}
    assert all(o.counter is None for o in info.object_lists)


def test_inspect_command_prints_the_report_and_writes_the_config(weaver_file, tmp_path, capsys):
    from deepjet_nb.cli import main

    assert main(["inspect", weaver_file, "--config-out", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    assert "object lists (1):" in out and "schema: custom" in out
    assert load_config(str(tmp_path / "c.yaml")).tree == "tree"


def test_inspect_command_reports_a_missing_file_in_one_line(tmp_path, capsys):
    from deepjet_nb.cli import main

    assert main(["inspect", str(tmp_path / "none.root")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("deepjet-nb inspect: error:") and "no such file" in err and "\n" not in err


def test_an_object_list_of_unequal_lengths_names_the_first_entry_that_breaks_it(tmp_path):
    import awkward as ak

    from deepjet_nb.jets import iter_arrays

    path = tmp_path / "uneven.root"
    with uproot.recreate(path) as f:
        f.mktree("tree", {"pt": np.float32, "flag": np.int32, "a": ak.Array([[1.0]]).type,
                          "b": ak.Array([[1.0]]).type})
        f["tree"].extend({"pt": np.full(5, 30, np.float32), "flag": np.array([1, 0, 1, 0, 1], np.int32),
                          "a": ak.Array([[1.0], [1.0, 2.0], [], [1.0], [2.0]]),
                          "b": ak.Array([[1.0], [1.0, 2.0], [], [1.0, 5.0], [2.0]])})
    config = {"name": "uneven", "tree": "tree", "classes": {"S": ["flag == 1"], "B": ["flag == 0"]},
              "weighting": {"pt_branch": "pt", "eta_branch": "pt"},
              "inputs": {"objects": {"branches": ["a", "b"], "max_length": 2}}}
    with pytest.raises(InputFileError, match=r"branch 'b' has other list lengths than 'a' .*2 against 1 in entry 3"):
        list(iter_arrays(path, config))


# --- entries that are events ------------------------------------------------------------------------------

def test_events_explode_into_jets_with_candidates_attached_by_pair_table_and_parent_index():
    from fixtures.custom_ntuples import nanoaod_events
    import awkward as ak

    from deepjet_nb.collection import explode, links

    raw = nanoaod_events(40, seed=3)
    arrays = {k: ak.Array([list(np.atleast_1d(v)) for v in values]) if np.ndim(values[0]) else np.asarray(values)
              for k, values in raw.items()}
    arrays["nJet"] = np.array([len(v) for v in raw["Jet_pt"]])
    rows = explode(arrays, "nJet", links(config_from_dict(NANOAOD_CONFIG)), entry_start=100)
    expected_d0, expected_sv, expected_npv = [], [], []
    for e in range(40):  # the plain-Python reference: each jet's candidates and vertices, in file order
        for j in range(len(raw["Jet_pt"][e])):
            pairs = [c for jet, c in zip(raw["JetPFCands_jetIdx"][e], raw["JetPFCands_pFCandsIdx"][e]) if jet == j]
            expected_d0.append([float(np.float32(raw["PFCands_d0"][e][c])) for c in pairs])
            expected_sv.append([float(np.float32(m)) for m, o in zip(raw["SV_mass"][e], raw["SV_jetIdx"][e]) if o == j])
            expected_npv.append(raw["PV_npvs"][e])
    for name, expected in (("PFCands_d0", expected_d0), ("SV_mass", expected_sv)):
        assert ak.num(rows[name]).tolist() == [len(x) for x in expected]
        np.testing.assert_allclose(ak.to_numpy(ak.flatten(rows[name])), [v for x in expected for v in x], rtol=1e-6)
    assert rows["PV_npvs"].tolist() == expected_npv
    assert rows["entry"][0] == 100 and rows["object_index"].tolist()[:len(raw["Jet_pt"][0])] == list(
        range(len(raw["Jet_pt"][0])))


def test_an_index_outside_the_collection_names_the_event():
    import awkward as ak

    from deepjet_nb.collection import explode

    arrays = {"nJet": np.array([1, 2]), "Jet_pt": ak.Array([[10.0], [20.0, 30.0]]),
              "c_pt": ak.Array([[1.0], [2.0, 3.0]]), "c_jetIdx": ak.Array([[0], [1, 2]])}
    with pytest.raises(InputFileError, match=r"'c_jetIdx' holds index 2 in entry 8, which has 2 objects"):
        explode(arrays, "nJet", {("c_jetIdx",): ("c_pt",)}, path="f.root", entry_start=7)


def test_a_collection_branch_of_other_length_names_the_event():
    import awkward as ak

    from deepjet_nb.collection import explode

    arrays = {"nJet": np.array([1, 2]), "Jet_pt": ak.Array([[10.0], [20.0]])}
    with pytest.raises(InputFileError, match=r"'Jet_pt' has 1 values in entry 1 and the collection 'nJet' 2"):
        explode(arrays, "nJet", {}, path="f.root")


def test_a_link_needs_a_collection_and_a_collection_a_custom_layout():
    raw = {**WEAVER_CONFIG, "inputs": {**WEAVER_CONFIG["inputs"],
                                       "part": {**WEAVER_CONFIG["inputs"]["part"], "link": "part_jetIdx"}}}
    with pytest.raises(ConfigError, match="link attaches objects .* needs 'collection'"):
        config_from_dict(raw)
    raw = {**load_config("deepcsv").to_dict(), "collection": "nJet"}
    with pytest.raises(ConfigError, match="'collection' is for a custom layout"):
        config_from_dict(raw)


def test_an_event_config_carries_entry_and_object_index_and_round_trips():
    from fixtures.custom_ntuples import NANOAOD_CONFIG as nano

    cfg = config_from_dict(nano)
    assert cfg.collection == "nJet" and cfg.ntuple.entry == "event"
    assert ("entry", "object_index") == cfg.ntuple.generated and {"entry", "object_index"} <= set(cfg.spectators)
    assert "entry" not in cfg.scalar_branches() and "nJet" in cfg.scalar_branches()
    assert {"JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "SV_jetIdx"} <= set(cfg.jagged_branches())
    assert config_from_dict(cfg.to_dict()).hash == cfg.hash
