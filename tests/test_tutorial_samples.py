"""tutorials/01_samples.ipynb runs top to bottom and records physics numbers that make sense."""


import pytest


@pytest.mark.slow
def test_samples_tutorial_records_flavour_differences(run_notebook):
    nb = run_notebook("tutorials/01_samples.ipynb", events=300, jobs=1)
    record = nb.summary
    assert record["jets"] > 1000
    assert 0.2 < record["fractions"]["b"] < 0.45
    assert sum(record["fractions"].values()) <= 1.0
    ip = record["median_second_ip_sig"]
    assert ip["b"] > ip["c"] > ip["udsg"]
    sv = record["sv_rate"]
    assert sv["b"] > sv["c"] > sv["udsg"]
    assert 0.5 < record["median_b_sv_mass"] < 5.28
    for plot in ("ip_significance", "sv_mass", "sv_flight_significance", "n_charged", "n_neutral"):
        assert (nb.out_dir / f"{plot}.png").stat().st_size > 10_000
