# The README's two commands: `make demo` (set up + run the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast
setup:
	VENV=$(VENV) bash scripts/setup.sh

demo: setup
	$(VENV)/bin/pluralign demo --out runs/demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"
