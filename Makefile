# One-command set-up: `make test` and `make demo` create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU wheel on the laptop/CI platform. On a CUDA machine pass another build, e.g.
#   make test TORCH_SPEC="torch==<version>"   (or pre-install torch into .venv from PyTorch's CUDA index)
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: all install test demo docs clean

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(PY) -m lsst.meas.extensions.madness.demo

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html doc doc/_build/html

clean:
	rm -rf $(VENV) doc/_build build *.egg-info python/*.egg-info
