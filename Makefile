# The two commands: `make demo` and `make test`. Each creates .venv when missing and installs the
# project with its dev extras; nothing has to be installed beforehand but Python 3.11.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

DASHBOARD_SRC := $(shell find dashboard/src dashboard/index.html dashboard/vite.config.ts dashboard/tsconfig.json -type f 2>/dev/null)
DASHBOARD_BUILT := dashboard/dist/index.html
NODE_MODULES := dashboard/node_modules/.package-lock.json

.PHONY: demo test bench soak lint typecheck install lock dashboard browser clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet 'pip==26.3'

# Install exactly the locked set, each file checked against its sha256 in requirements.lock, then the project
# itself with no resolution and no isolated build (the lock carries setuptools and wheel). The venv's own
# pip 23.2 refuses --require-hashes when a locked package asks for another's extra (gql[requests]), hence
# the pinned pip above. Reinstall whenever the lock or the project's metadata changes.
$(STAMP): requirements.lock pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Renew requirements.lock after changing pyproject.toml's dependencies (tests/test_lock.py fails until then):
# pip-compile in a throwaway venv, keeping every pin that still fits; `make lock ARGS=--upgrade` moves all
# packages to their newest allowed versions. Needs Python 3.11 as $(PYTHON).
lock:
	$(PYTHON) infra/lock.py $(ARGS)

# The dashboard: npm ci from the committed lockfile, then a production build that the daemon serves.
$(NODE_MODULES): dashboard/package-lock.json dashboard/package.json
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error

$(DASHBOARD_BUILT): $(NODE_MODULES) $(DASHBOARD_SRC)
	cd dashboard && npm run build --silent

dashboard: $(DASHBOARD_BUILT)

# The browser test drives Debian's chromium with playwright-core (npx playwright install cannot download
# browsers here); install chromium when it is missing (needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update >/dev/null && $$SUDO apt-get install -y --no-install-recommends chromium; }; }

demo: $(STAMP) $(DASHBOARD_BUILT)
	$(VENV)/bin/depthcharge demo

# The suite on every core (pytest-xdist), a test module per worker at a time, the longest modules first in
# the order tests/conftest.py sorts them (--no-loadscope-reorder: xdist would otherwise hand out the modules
# with the most tests first); TEST_WORKERS=0 runs it in this process, one test after another.
TEST_WORKERS ?= auto
test: $(STAMP) $(DASHBOARD_BUILT) browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# All benchmarks → bench/results.json and docs/benchmarks.md; a subset: make bench BENCH_ONLY=features,orderbook
# (BENCH_QUICK=1: small sizes, tables printed, nothing written).
bench: $(STAMP)
	$(PY) -m bench

soak: $(STAMP)
	$(VENV)/bin/depthcharge soak

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean-venv:
	rm -rf $(VENV)
