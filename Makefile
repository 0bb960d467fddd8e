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

# JupyterLab is the [lab] extra: `make demo` needs none of it, `make lab` does.
$(VENV)/.installed-lab: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[lab]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-lab

demo: $(VENV)/.installed
	$(PY) -m notebookswarm demo

lab: $(VENV)/.installed-lab
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check notebookswarm tests bench tools
	$(VENV)/bin/ruff format --check notebookswarm tests bench tools
	$(VENV)/bin/lint-imports

# The package as an index serves it: sdist and wheel in dist/, their metadata checked.
.PHONY: dist docs
dist: $(VENV)/.installed-test
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# The documentation site in site/; warnings (a broken link, an unresolved API name) fail it.
# tests/test_docs.py runs the same build, so `make test` checks it too.
docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The package, and the worker-side tests (tests/patched: real modules, strict like the package).
typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy
	MYPYPATH=tests $(VENV)/bin/mypy tests/patched

# deploy/kubernetes/ from the Helm chart (Helm's own library, no binary, no cluster).
# tests/deploy/test_manifests.py fails while they differ.
.PHONY: manifests
manifests: $(VENV)/.installed-test
	$(PY) tools/render_manifests.py

# The dashboard's browser tests drive Debian's Chromium: CI machines start without it.
browser-deps:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && apt-get install -y -qq chromium; }

# The real demo stack (nbs.demo.start_stack) runs Debian's PostgreSQL server; its tests too.
# Only the binaries are wanted: no system cluster is created (and so none started on 5432).
.PHONY: db-deps
db-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the real demo stack"; \
	  mkdir -p /etc/postgresql-common && \
	  echo "create_main_cluster = false" >> /etc/postgresql-common/createcluster.conf && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# tests/cluster/test_netns.py makes network namespaces (as root) with iproute2's ip and bridge.
.PHONY: netns-deps
netns-deps:
	@command -v ip >/dev/null && command -v bridge >/dev/null || { \
	  echo "installing Debian's iproute2 for the network-namespace tests"; \
	  apt-get update -qq && apt-get install -y -qq iproute2; }

# Two lanes: the main suite, then the worker-side tests in one gevent-patched interpreter.
unit: $(VENV)/.installed-test browser-deps db-deps netns-deps
	$(VENV)/bin/pytest
	$(PY) tests/patched/run.py

test: lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache site dist

# The side-by-side benchmark against Locust and wrk (not part of `make test`): installs
# Debian's nginx and wrk with apt and Locust into bench/.venv-locust when they are missing,
# runs for about ten minutes and prints the tables of docs/performance.md.
LOCUST_VERSION ?= 2.47.0
.PHONY: bench
bench: $(VENV)/.installed
	$(PY) bench/run_bench.py --setup --locust-version $(LOCUST_VERSION)

# The fault soak (not part of `make test`, which runs a one-cycle version in tests/notebook/test_soak.py):
# 4 workers against a counting target through three cycles of faults, about 20 minutes;
# prints the table of faults survived and requests accounted for, and the memory slopes.
# `make soak-bench`: a simulated day of 100 endpoints through the controller (docs/performance.md).
.PHONY: soak soak-bench
soak: $(VENV)/.installed-test
	cd tests && ../$(PY) faultsoak.py --cycles 3 --steady 45 --folder ../soak-output

soak-bench: $(VENV)/.installed-test
	cd bench && ../$(PY) soak.py --hours 24 --tmp-store

# Thirty 7-second partitions of a worker across network namespaces, as root (not part of
# `make test`, whose tests/cluster/test_netns.py runs six): about six minutes, one line each.
.PHONY: netns-stress
netns-stress: $(VENV)/.installed-test netns-deps
	NBS_NETNS_PARTITIONS=30 $(VENV)/bin/pytest tests/cluster/test_netns.py -k partitions -s \
	  --timeout 1200 -p no:cacheprovider
