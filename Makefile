# MPR-CMA developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: install test lint bench demo

# Installs only when scripts/check_env.py finds a missing or different package, so it is
# a sub-second no-op on a machine that is already set up.
install:
	@$(PYTHON) scripts/check_env.py >/dev/null 2>&1 || bash scripts/install_deps.sh $(PYTHON)

test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: install
	$(PYTHON) -m ruff check .

bench: install
	$(PYTHON) scripts/bench_mba.py

# Trains the tiny model on the synthetic benchmark and writes work_dirs/demo/report/
# (about 8.5 minutes on 2 CPU cores; DEMO_ARGS=--quick for a one-minute smoke run).
demo: install
	$(PYTHON) scripts/run_demo.py $(DEMO_ARGS)
