# deepjet-nb: `make demo` and `make test` both work as the first command on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lab clean

install: $(STAMP)

# A current pip resolves the pinned stack in about a minute; the pip bundled with 3.11 backtracks for long.
$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3"
	$(PY) -m pip install --quiet -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m deepjet_nb.samples.warmup  # numba kernels compiled now, not during the first sample
	touch $@

demo: install
	$(PY) -m deepjet_nb.demo --out runs/demo

test: install
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		|| echo "make test: Chromium or chromium-driver not found: the browser tests (tests/test_browser.py) will be SKIPPED (apt-get install chromium chromium-driver)"
	$(PY) -m pytest -q tests

# The developer's inner loop: every test but those marked slow (sample generation, training, export, notebooks,
# servers, worker processes; tests/conftest.py says how they are marked). `make test` runs them all.
test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

lab: install
	$(VENV)/bin/jupyter lab tutorials

clean:
	rm -rf runs .cache
