# usrad: one command installs and runs the demo (`make demo`), one installs and runs the tests (`make test`).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: install demo demo-bootstrap test bench bench-real bench-harmonize paper clean

install: $(STAMP)

# Idempotent: rebuilt only when the lock or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	bash ci/setup-graphviz.sh  # Graphviz lays out the workflow diagram (skipped with a note without root/apt)
	touch $(STAMP)

demo: install
	$(BIN)/snakemake --cores $(CORES)

# The demo plus Harrell's optimism-corrected bootstrap of each task (10 resamples): both internal validations.
demo-bootstrap: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo-bootstrap.yaml

paper: install
	$(BIN)/snakemake --cores $(CORES) paper

# Two pytest workers (pytest-xdist) share the two CI cores; a test module runs whole on one worker (its module
# fixtures once), the longest modules first (tests/conftest.py). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -ra -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py

# The whole workflow on the real BUS-BRA images (internal + external validation), baseline, leakage probe.
bench-real: install
	$(BIN)/python bench/bench_busbra.py --cores $(CORES)

# ComBat by scanner on BUS-BRA (needs the internal run's feature table): bench/results/harmonize.tsv
bench-harmonize: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/busbra.yaml -- results/busbra/features/features.parquet results/busbra/cohort/cohort.tsv
	$(BIN)/python bench/bench_harmonize.py --cores $(CORES)

clean:
	rm -rf results .snakemake
