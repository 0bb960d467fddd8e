# The two commands of the README: `make demo` and `make test`.
# Both bootstrap .venv with the system's python3 (>= 3.11) when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo lab test lint typecheck unit browser-deps clean

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing Debian's python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m notebookswarm demo

lab: $(VENV)/.installed
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check notebookswarm tests bench tools
	$(VENV)/bin/ruff format --check notebookswarm tests bench tools

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

# The dashboard's browser tests drive Debian's Chromium: CI machines start without it.
browser-deps:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && apt-get install -y -qq chromium; }

unit: $(VENV)/.installed-test browser-deps
	$(VENV)/bin/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The side-by-side benchmark against Locust and wrk (not part of `make test`): installs
# Debian's nginx and wrk with apt and Locust into bench/.venv-locust when they are missing,
# runs for about ten minutes and prints the tables of docs/performance.md.
LOCUST_VERSION ?= 2.47.0
.PHONY: bench
bench: $(VENV)/.installed
	$(PY) bench/run_bench.py --setup --locust-version $(LOCUST_VERSION)
