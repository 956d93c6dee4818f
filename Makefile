# MPR-CMA developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
PYTEST_ARGS ?=
DEMO_ARGS ?=
APP_ARGS ?=

.PHONY: install test lint bench demo app

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
# (11.9 min measured on 2 quiet CPU cores; exits 1 while the
# referring targets of docs/demo.md are not met; DEMO_ARGS=--quick for a smoke run).
demo: install
	$(PYTHON) scripts/run_demo.py $(DEMO_ARGS)

# Serves the model trained by `make demo` (work_dirs/demo/train: its latest checkpoint) at
# http://127.0.0.1:7860 (docs/app.md); APP_ARGS adds tools/app.py options, e.g. --port.
# 32 new tokens, as the demo's evaluations: the tiny model's answers are a few tokens.
app: install
	@test -d work_dirs/demo/train || { echo "make app: no work_dirs/demo/train; run make demo first"; exit 1; }
	$(PYTHON) tools/app.py configs/tiny/demo.py --checkpoint work_dirs/demo/train \
		--max-new-tokens 32 $(APP_ARGS)
