# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision pinned as a pair known to import together; CPU or CUDA alike.
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e ".[dev,gpu]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/recipe-tui

test: $(STAMP)
	$(PY) -m pytest -q

# pytest exits 5 when no test is marked slow: that is not a failure.
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
