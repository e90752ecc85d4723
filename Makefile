# `make run` and `make test` bootstrap everything from nothing: a virtualenv in .venv,
# the package installed editable with its test extras, then the job itself.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test data bench clean sysdeps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/trimtab run configs/usdt_eth_staking_hedged_leveraged.yaml

# The browser tests (HTML report, console) drive Debian's Chromium headless, and the state
# diagrams are laid out by Graphviz `dot`: both come from the system packages. scripts/sysdeps.sh
# installs them when missing (as root, with apt-get) or says exactly why it cannot; the tests
# that need them then say so too.
sysdeps:
	@bash scripts/sysdeps.sh

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q

# Rebuild the bundled data/ from the raw files in ../shared/data (needs ../shared).
data: $(STAMP)
	$(BIN)/python scripts/build_data.py --raw ../shared/data --out data

# Figures only (issue 14), each with its ratio: the flagship's budgets, its engine loop with and
# without quiet stretches (numpy) and with and without quiet spans (ticks in bulk), the engine
# against the hand loop, the drift basket against bt, `trimtab compare` on all cores (and on
# one), a live run resumed after 1,000 and 10,000 ticks, and a live tick's cost as a run grows
# to 5,000 ticks.
# About 6 minutes on 2 cores. Everything is byte-compiled first, so the whole-process figures
# time a user's warm start (cached .pyc), not a first run after an edit compiling every module.
bench: $(STAMP)
	$(BIN)/python -m compileall -q src bench
	$(BIN)/python bench/backtest.py
	$(BIN)/python bench/quiet_stretches.py --runs 3
	$(BIN)/python bench/quiet_spans.py --runs 3
	$(BIN)/python bench/compare_hand.py --no-backtest
	$(BIN)/python bench/drift_vs_bt.py
	$(BIN)/python bench/compare_all.py --sequential
	$(BIN)/python bench/resume.py --ticks 1000 10000
	$(BIN)/python bench/live_ticks.py --ticks 5000

clean:
	rm -rf $(VENV) runs .pytest_cache
