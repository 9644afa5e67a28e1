# Entry points, each doing its own set-up on a fresh machine:
#   make demo   perturb HumanEval with all five concepts (rule-based, offline), validate, print the table
#   make lint       ruff (lint + import order) and mypy on the package (pyproject.toml configures both)
#   make test       lint, then run the whole test suite (what CI runs)
#   make test-fast  ruff only (mypy takes ~40 s), then the tests not marked slow or gpu (a few minutes on a laptop CPU)
#   make test-newest-allowed  the trainer tests on the newest trl/transformers setup.cfg allows (CI runs it)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo lint ruff test test-fast test-newest-allowed clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build from local disk: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/procure perturb --benchmark humaneval --output outputs/demo/humaneval_counterfactuals.jsonl --seed 0 --overwrite

LINTED := procure_trl tests benchmarks datasets_scripts examples
ruff: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)

lint: ruff
	$(VENV)/bin/mypy

# pytest exits 5 when it collects no tests: that is not a failure of the code under test.
PYTEST := HF_HUB_OFFLINE=1 HF_EVALUATE_OFFLINE=1 $(PY) -m pytest
test: lint
	$(PYTEST) tests; rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

test-fast: ruff
	$(PYTEST) tests -m "not slow and not gpu"; rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

test-newest-allowed: $(STAMP)
	PY=$(PY) NEWEST=$(VENV)-newest .ci/test_newest_allowed

clean:
	rm -rf $(VENV) $(VENV)-newest outputs build *.egg-info
