"""Shared fixtures; they live in tests/fixtures/, one module per pipeline stage."""

pytest_plugins = ["fixtures.samples", "fixtures.notebooks", "fixtures.predictions", "fixtures.datasets",
                  "fixtures.runs", "fixtures.models", "fixtures.browser", "fixtures.events"]
