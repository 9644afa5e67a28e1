# Entry points, each doing its own set-up on a fresh machine:
#   make demo   perturb HumanEval with all five concepts (rule-based, offline), validate, print the table
#   make test       run the whole test suite (what CI runs)
#   make test-fast  leave out the tests marked slow or gpu (a few minutes on a laptop CPU)
#   make test-newest-allowed  the trainer tests on the newest trl/transformers setup.cfg allows (CI runs it)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast test-newest-allowed clean

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

# pytest exits 5 when it collects no tests: that is not a failure of the code under test.
PYTEST := HF_HUB_OFFLINE=1 HF_EVALUATE_OFFLINE=1 $(PY) -m pytest
test: $(STAMP)
	$(PYTEST) tests; rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

test-fast: $(STAMP)
	$(PYTEST) tests -m "not slow and not gpu"; rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

test-newest-allowed: $(STAMP)
	PY=$(PY) NEWEST=$(VENV)-newest .ci/test_newest_allowed

clean:
	rm -rf $(VENV) $(VENV)-newest outputs build *.egg-info
