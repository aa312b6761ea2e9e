# icx — developer entry points. `make run` and `make test` work from a fresh clone.
# The interpreter the venvs are made from: a distribution's PGO+LTO build when it can make a
# venv and build extensions, else python3 (tools/pick-python says why). Override:
# `make PYTHON=/path/to/python3.11` (then `make clean` first: an existing .venv is kept).
ifndef PYTHON
PYTHON := $(shell tools/pick-python)
endif
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# python-diameter lives in its own venv: it imports as `diameter` and clashes with ours.
PDVENV := .venv-pydiameter
CONFIG ?= config/icx.toml
PYTEST_ARGS ?=

.PHONY: build ext run test test-ext test-pure soak bench lint typecheck clean interop-venv

build: $(VENV)/.installed ext interop-venv

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "setuptools==80.9.0" "wheel==0.45.1" "Cython==3.1.4"
	$(BIN)/pip install -q --no-build-isolation -e '.[dev]'
	touch $@

ext: $(VENV)/.installed
	$(PY) setup.py -q build_ext --inplace

interop-venv: $(PDVENV)/.installed

$(PDVENV)/.installed:
	$(PYTHON) -m venv $(PDVENV)
	$(PDVENV)/bin/pip install -q "python-diameter==0.9.0"
	touch $@

# The demo needs no interop peer: only the suite runs python-diameter (`make test`).
run: $(VENV)/.installed ext
	$(BIN)/icx serve -c $(CONFIG)

# The suite runs twice: with the compiled twins, then forced pure Python.
test: build test-ext test-pure

test-ext:
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-pure:
	ICX_NO_EXTENSIONS=1 $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Long crash/soak runs (run before resolving an issue).
soak: build
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

bench: build
	@for m in $$(ls benchmarks/*.py | xargs -n1 basename | sed -n 's/\.py$$//p' | grep -v '^_' | grep -v '^__init__'); do \
		$(PY) -m benchmarks.$$m || exit $$?; \
	done

lint: build
	$(BIN)/ruff check .
	$(BIN)/mypy diameter mediation charging settlement icx

clean:
	rm -rf build $(VENV) $(PDVENV) cython_ext/*.c cython_ext/*.so *.egg-info
