# One-command set-up: `make test` and `make demo` create .venv when it is missing. It holds the
# package with its dev and lsst extras, so the tests run against the real Rubin middleware.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU wheel on the laptop/CI platform. On a CUDA machine pass another build, e.g.
#   make test TORCH_SPEC="torch==<version>"   (or pre-install torch into .venv from PyTorch's CUDA index)
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: all install test lint demo docs clean gpu-inputs gpu-train

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e ".[dev,lsst]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# Style and static checks (configuration in pyproject.toml): ruff on every Python file, mypy on the package.
lint: $(STAMP)
	$(PY) -m ruff check python tests conftest.py config doc/conf.py
	$(PY) -m mypy

demo: $(STAMP)
	$(PY) -m lsst.meas.extensions.madness.demo

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html doc doc/_build/html

clean:
	rm -rf $(VENV) doc/_build build *.egg-info python/*.egg-info

# --- Budget training on a bare GPU machine (torch, numpy, scipy only; see doc/models.md) ----------
# Here (with the .venv): the small wheels the trainer needs and the train/validation galaxies,
# into .whl/ and .gpu/ (both ignored by git; carried to the GPU machine).
GPU_WHEELS := pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 typing_extensions==4.16.0 \
	typing_inspection==0.4.5 zuko==1.6.0 tqdm==4.70.1
GPU_POPULATION := .gpu/population.npz
gpu-inputs: $(STAMP)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl $(GPU_WHEELS)
	$(VENV)/bin/madness-train population --out $(GPU_POPULATION) --population-size 200000 --population-seed 1

# There: make gpu-train OUT=$$OUT MINUTES=8 (installs the carried wheels into /tmp/site, nothing else).
MINUTES ?= 8
OUT ?= runs/gpu
INIT ?= shipped
gpu-train:
	python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
	PYTHONPATH=/tmp/site:python python3 -m lsst.meas.extensions.madness.models.trainCli all --minutes $(MINUTES) \
		--device cuda --population $(GPU_POPULATION) --init $(INIT) --out $(OUT)/run
