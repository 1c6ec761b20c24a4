# deepjet-nb: `make demo` and `make test` both work as the first command on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test lab clean

install: $(STAMP)

# A current pip resolves the pinned stack in about a minute; the pip bundled with 3.11 backtracks for long.
$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3"
	$(PY) -m pip install --quiet -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: install
	$(PY) -m deepjet_nb.demo --out runs/demo

test: install
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		|| echo "make test: Chromium or chromium-driver not found: the browser tests (tests/test_browser.py) will be SKIPPED (apt-get install chromium chromium-driver)"
	$(PY) -m pytest -q tests

lab: install
	$(VENV)/bin/jupyter lab tutorials

clean:
	rm -rf runs .cache
