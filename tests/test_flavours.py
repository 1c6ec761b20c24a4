"""Flavours, classes and discriminants: the definitions every stage shares (docs/reference.md §2)."""

import numpy as np
import pytest
from fixtures.predictions import DEEPCSV, DEEPJET, RAW_FLAGS

from deepjet_nb.errors import ArgumentError
from deepjet_nb.flavours import (class_flavours, class_labels, discriminants, flavour_masks, flavours_from_truth,
                                 truth_flavour)


def test_truth_flavour_groups_the_raw_flags():
    flags = {f: np.zeros(len(RAW_FLAGS), dtype=np.int32) for f in RAW_FLAGS}
    for i, f in enumerate(RAW_FLAGS):
        flags[f][i] = 1
    expected = [5, 5, 5, 5, 5, 4, 4, 4, 0, 0, 0, -1]
    np.testing.assert_array_equal(truth_flavour(flags), expected)


def test_truth_flavour_refuses_two_flavours_and_names_a_missing_flag():
    flags = {f: np.zeros(2, dtype=np.int32) for f in RAW_FLAGS}
    flags["isB"][1] = flags["isC"][1] = 1
    with pytest.raises(ArgumentError, match="jet 1"):
        truth_flavour(flags)
    del flags["isGCC"]
    with pytest.raises(ArgumentError, match="x.root:tree: missing flavour flag branch 'isGCC'"):
        truth_flavour(flags, source="x.root:tree")


def test_discriminants_follow_the_cms_definitions_for_deepjet_and_deepcsv():
    deepjet = {"B": np.array([0.3]), "BB": np.array([0.1]), "LeptB": np.array([0.1]), "C": np.array([0.2]),
               "UDS": np.array([0.2]), "G": np.array([0.1])}
    d = discriminants(deepjet)
    assert d["b"][0] == pytest.approx(0.5)
    assert d["CvsL"][0] == pytest.approx(0.2 / 0.5)
    assert d["CvsB"][0] == pytest.approx(0.2 / 0.7)
    deepcsv = {"B": np.array([0.4]), "BB": np.array([0.1]), "C": np.array([0.3]), "UDSG": np.array([0.2])}
    d = discriminants(deepcsv)
    assert (d["b"][0], d["CvsL"][0], d["CvsB"][0]) == pytest.approx((0.5, 0.6, 0.375))


def test_discriminant_ratios_with_zero_denominator_are_zero_and_unknown_classes_refused():
    d = discriminants({"B": np.array([1.0]), "C": np.array([0.0]), "UDSG": np.array([0.0])})
    assert d["CvsL"][0] == 0.0
    with pytest.raises(ArgumentError, match="'Tau'"):
        discriminants({"B": np.array([1.0]), "Tau": np.array([0.0])})
    d = discriminants({"B": np.array([0.5]), "Tau": np.array([0.5])}, class_flavours={"Tau": "udsg"})
    assert d["CvsL"][0] == 0.0 and d["b"][0] == 0.5


def test_class_labels_sum_the_flags_of_each_class_and_leave_other_jets_at_minus_one():
    flags = {f: np.zeros(len(RAW_FLAGS), dtype=np.int32) for f in RAW_FLAGS}
    for i, f in enumerate(RAW_FLAGS):
        flags[f][i] = 1
    labels = class_labels(flags, DEEPCSV)
    # B = isB + isLeptonicB + isLeptonicB_C, BB = isBB + isGBB, C = isC + isCC + isGCC, UDSG; isUndefined -1
    np.testing.assert_array_equal(labels, [0, 1, 1, 0, 0, 2, 2, 2, 3, 3, 3, -1])
    assert labels.dtype == np.int8


def test_class_flavours_follow_the_flags_and_give_up_on_mixed_classes():
    assert class_flavours(DEEPJET) == {"B": "b", "BB": "b", "LeptB": "b", "C": "c", "UDS": "udsg", "G": "udsg"}
    assert class_flavours({"Heavy": ("isB", "isC"), "L": ("isUD",)}) is None


def test_flavour_masks_and_flavours_from_truth_agree_with_truth_flavour():
    flags = {f: np.zeros(len(RAW_FLAGS), dtype=np.int32) for f in RAW_FLAGS}
    for i, f in enumerate(RAW_FLAGS):
        flags[f][i] = 1
    masks = flavour_masks(flags)
    assert [int(m.sum()) for m in masks.values()] == [5, 3, 3]
    flavour = truth_flavour(flags)
    truth = {"Tau": flags["isUD"], "Mixed": flags["isB"] + flags["isC"]}
    assert flavours_from_truth(truth, flavour) == {"Tau": "udsg"}
