# The two commands of the quick start: `make up` and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
# The interpreter: python3 >= 3.11 that, when root, an unprivileged user can run too (the
# server drops to the service user; see scripts/pick-python.sh).
PYTHON ?= $(shell ./scripts/pick-python.sh 2>/dev/null || echo python3)
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; cat package-lock.json 2>/dev/null; echo $(PYTHON)) | sha1sum | cut -c1-12)

.PHONY: up test setup venv system assets glyphs serve down lint bench clean-data

up: setup ## set everything up, load the demo city and serve on http://127.0.0.1:$${GIS_PORT:-8000}
	$(VENV)/bin/gis-platform up

test: setup ## set up and run the whole test suite against a real PostGIS
	$(VENV)/bin/pytest

# A sub-make, so that PYTHON is chosen after the system packages (python3-venv) are in.
setup: system
	@$(MAKE) --no-print-directory venv assets glyphs

venv: $(STAMP)

system:
	@./scripts/install-system.sh

$(STAMP): pyproject.toml
	@if [ -x $(PY) ] && [ "$$($(PY) -c 'import os, sys; print(os.path.realpath(sys._base_executable))')" != "$$(readlink -f $(PYTHON))" ]; then \
		echo "rebuilding $(VENV) on $(PYTHON)"; rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

assets:
	@./scripts/install-assets.sh

# Map label glyphs (SDF PBFs) from the installed Noto Sans CJK KR: styles label offline.
glyphs: venv
	@$(PY) scripts/build-glyphs.py

down: ## stop the embedded database
	-$(VENV)/bin/gis-platform db stop

lint: setup
	$(VENV)/bin/ruff check gis_platform layers tile_server policy_maps tests bench

bench: setup ## run the benchmarks against their peers (see bench/README.md)
	$(PY) bench/run_all.py
