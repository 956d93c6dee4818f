# MPR-CMA developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
PYTEST_ARGS ?=

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

demo:
	@echo "make demo is not available yet (issue #6): the synthetic data generator exists" >&2
	@echo "(python scripts/make_synthetic_data.py --out data_tiny --seed 0) and the tiny" >&2
	@echo "training/evaluation paths work (README.md), but the demo run and report do not." >&2
	@exit 2
