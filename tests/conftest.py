"""Shared fixtures; they live in tests/fixtures/, one module per pipeline stage.

Slow tests: a test that generates samples with Pythia 8, trains, exports a model, runs a notebook, starts a
server or runs a job on worker processes is marked ``slow``; ``make test-fast`` (``pytest -m "not slow"``)
leaves those out, ``make test`` runs everything. A test whose own body does such work carries
``@pytest.mark.slow`` (or its module a ``pytestmark``). A test that gets it from a fixture, directly or through
other fixtures, is marked here, by the fixture's name in :data:`SLOW_FIXTURES`, so a new test that asks for a
generated sample is slow without anyone having to remember it.
"""

import pytest

pytest_plugins = ["fixtures.samples", "fixtures.notebooks", "fixtures.predictions", "fixtures.datasets",
                  "fixtures.runs", "fixtures.models", "fixtures.browser", "fixtures.events", "fixtures.xrootd"]

# Fixture name -> the slow work it does. Datasets, runs and models built from these are covered through them.
SLOW_FIXTURES = {
    "ttbar_sample": "generates a sample (fixtures/samples.py)",
    "qcd_sample": "generates a sample (fixtures/samples.py)",
    "exported_models": "exports two models (fixtures/models.py)",
    "run_notebook": "runs a notebook with papermill (fixtures/notebooks.py)",
    "lab": "starts JupyterLab (fixtures/browser.py)",
    "xrootd_server": "starts an XRootD server (fixtures/xrootd.py)",
    "zprime_file": "generates a fat-jet sample (test_fatjets.py)",
    "qcd_boosted": "generates a fat-jet sample (test_fatjets.py)",
    "wprime": "generates a fat-jet sample (test_fatjets.py)",
    "ttbar_events_file": "generates an event-level sample (test_fatjets.py)",
    "qcd_events_file": "generates an event-level sample (test_fatjets.py)",
    "events_trainer": "trains the event classifier (test_events_model.py)",
    "deepcsv_run": "trains DeepCSV (test_train.py)",
    "sets_run": "trains a model from a user's file (test_custom_models.py)",
    "scanned": "runs a notebook scan (test_scan.py)",
}


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
