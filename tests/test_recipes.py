"""The recipe rule that scales training to the sample, the candidate grid every tagger shares, and the boosted-tree
reference's training on the networks' split."""

import math

import numpy as np
import pytest

from deepjet_nb import recipes
from deepjet_nb.errors import ArgumentError, RunError
from deepjet_nb.train import RECIPES, Trainer


@pytest.mark.parametrize("n_train", [6_400, 20_000, 64_000, 250_000, 3_000_000])
def test_scaled_batch_is_the_largest_power_of_two_with_enough_steps_per_epoch(n_train):
    for model in ("deepcsv", "deepjet"):
        recipe = recipes.scale_recipe(model, n_train)
        batch = recipe["batch_size"]
        steps = math.ceil(n_train / batch)
        if batch < RECIPES[model]["batch_size"]:
            assert batch & (batch - 1) == 0  # a power of two
            assert steps >= recipes.MIN_STEPS_PER_EPOCH
            assert math.ceil(n_train / (2 * batch)) < recipes.MIN_STEPS_PER_EPOCH or \
                2 * batch > RECIPES[model]["batch_size"]  # twice the batch would give too few steps
        else:  # millions of jets: the CMS batch
            assert batch == RECIPES[model]["batch_size"]
        assert recipe["epochs"] == min(recipes.MAX_EPOCHS, math.ceil(recipes.STEP_BUDGET / steps))


def test_the_demo_sample_gets_hundreds_of_steps_per_epoch_not_the_cms_batch():
    # ~64k training jets: the CMS DeepCSV batch of 10,000 would give 7 steps per epoch
    recipe = recipes.scale_recipe("deepcsv", 64_000)
    assert (recipe["batch_size"], recipe["epochs"]) == (512, 48)
    assert math.ceil(64_000 / recipe["batch_size"]) == 125


def test_both_networks_get_the_same_rule_and_the_same_grid():
    n = 64_000
    csv, jet = recipes.scale_recipe("deepcsv", n), recipes.scale_recipe("deepjet", n)
    assert {k: v for k, v in csv.items() if k != "freeze_input_bn_after"} == \
        {k: v for k, v in jet.items() if k != "freeze_input_bn_after"}
    assert csv["freeze_input_bn_after"] is None and jet["freeze_input_bn_after"] == 1
    grids = {m: recipes.candidates(m, n) for m in ("deepcsv", "deepjet")}
    assert len(grids["deepcsv"]) == len(recipes.LEARNING_RATES) * len(recipes.BATCH_FACTORS) == 6
    for a, b in zip(grids["deepcsv"], grids["deepjet"]):
        assert (a["lr"], a["batch_size"], a["epochs"]) == (b["lr"], b["batch_size"], b["epochs"])
        assert b["lr_after_freeze"] == b["lr"]  # no CMS drop to 1e-4: the plateau schedule for both
        assert "lr_after_freeze" not in a
    budgets = {min(c["epochs"] * math.ceil(n / c["batch_size"]), recipes.MAX_EPOCHS * 10**9)
               for c in grids["deepcsv"]}
    assert max(budgets) <= recipes.STEP_BUDGET + math.ceil(n / min(c["batch_size"] for c in grids["deepcsv"]))
    assert {c["batch_size"] for c in grids["deepcsv"]} == {512, 256}


def test_scale_recipe_refuses_unknown_models_and_empty_samples():
    with pytest.raises(ArgumentError, match="unknown model"):
        recipes.scale_recipe("resnet", 1000)
    with pytest.raises(ArgumentError, match="positive"):
        recipes.scale_recipe("deepcsv", 0)


def test_train_jets_counts_the_training_split_of_the_trainer(deepcsv_dataset, tmp_path):
    trainer = Trainer("deepcsv", deepcsv_dataset, tmp_path / "run", seed=4, dashboard="off")
    expected = sum(trainer.split_record()["train"]["sources"].values())
    assert recipes.train_jets(deepcsv_dataset, seed=4) == expected


def test_bdt_holds_out_the_networks_validation_jets_and_chooses_by_validation_loss(deepcsv_dataset, tmp_path):
    from deepjet_nb.bdt import load_bdt
    from deepjet_nb.dataset import open_dataset
    from deepjet_nb.run import open_run

    grid = {"learning_rate": (0.1, 0.3), "max_leaf_nodes": (15,)}
    choice = recipes.choose_bdt(deepcsv_dataset, tmp_path / "bdt", seed=4, grid=grid)
    assert len(choice["candidates"]) == 2
    best = min(choice["candidates"], key=lambda c: c["best_val_loss"])
    assert choice["chosen"] == {"learning_rate": best["learning_rate"], "max_leaf_nodes": 15}
    run_dir = tmp_path / "bdt" / "learning_rate=0.1_max_leaf_nodes=15"
    network = Trainer("deepcsv", deepcsv_dataset, tmp_path / "net", seed=4, dashboard="off")
    assert open_run(run_dir).split() == network.split_record()  # the same validation jets
    ds = open_dataset(deepcsv_dataset)
    arrays = ds.load()
    probs = load_bdt(run_dir).predict({g: arrays[g] for g in ds.inputs})
    assert probs.shape == (ds.n_jets, len(ds.classes))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    again = recipes.choose_bdt(deepcsv_dataset, tmp_path / "bdt", seed=4, grid=grid)  # finished runs reused
    assert again == choice
    with pytest.raises(RunError, match="already holds a run"):
        from deepjet_nb.bdt import train_bdt

        train_bdt(deepcsv_dataset, run_dir)


def test_tutorial_recipe_takes_only_the_overrides_that_are_given():
    from deepjet_nb import tutorial_samples

    chosen = tutorial_samples.recipe("deepcsv")
    assert chosen == tutorial_samples.RECIPES["deepcsv"] and chosen is not tutorial_samples.RECIPES["deepcsv"]
    quick = tutorial_samples.recipe("deepcsv", epochs=2, batch_size=None)
    assert quick == {**chosen, "epochs": 2}
    with pytest.raises(ArgumentError, match="pcnn"):
        tutorial_samples.recipe("pcnn")


def test_tutorial_dataset_refuses_an_unknown_weighting_before_any_work(tmp_path):
    from deepjet_nb import tutorial_samples

    with pytest.raises(ArgumentError, match="'reweight'"):
        tutorial_samples.dataset("deepcsv", events=10, weighting="reweight", directory=tmp_path)
    assert not any(tmp_path.iterdir())


def test_candidates_at_a_fixed_batch_give_every_sample_size_the_same_step_budget():
    from deepjet_nb.recipes import candidates

    for n_train in (34_544, 96_073):
        grid = candidates("deepjet", n_train, learning_rates=(1e-3, 3e-3), batch_size=256, step_budget=4000)
        assert [c["batch_size"] for c in grid] == [256, 256] and [c["lr"] for c in grid] == [1e-3, 3e-3]
        steps = -(-n_train // 256)
        assert grid[0]["epochs"] == -(-4000 // steps) and grid[0]["lr_after_freeze"] == 1e-3
