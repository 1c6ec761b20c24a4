"""tutorials/11_your_own_model.ipynb: a deep-sets model written in the notebook trains beside DeepJet, is
compared, exported (equivalence check) and served, and the numbers it records make sense."""

import pytest


@pytest.mark.slow
def test_own_model_tutorial_trains_exports_and_serves_a_notebook_defined_model(deepjet_dataset, run_notebook):
    nb = run_notebook("tutorials/11_your_own_model.ipynb", data=str(deepjet_dataset), test_events=200, epochs=2,
                      batch_size=256)
    numbers = nb.summary
    # the deep-sets network is an order of magnitude smaller than DeepJet (~266k with the CMS shapes)
    assert numbers["parameters"]["deepsets"] < numbers["parameters"]["deepjet"] / 5
    assert numbers["epochs"] == {"deepsets": 2, "deepjet": 2}
    assert numbers["model_source"] == "callable"
    for name in ("deepsets", "deepjet"):
        assert 0.0 < numbers["test_auc"][name] < 1.0 and 0.0 <= numbers["beff_at_1pct"][name] <= 1.0
    # the network written in the notebook learns: well above a random tagger on the independent test jets
    assert numbers["test_auc"]["deepsets"] > 0.6
    assert numbers["equivalence_max_abs_diff"] <= 1e-4
    assert numbers["served_max_abs_diff"] <= 1e-5
