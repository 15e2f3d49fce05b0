# FCN reproduction suite. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON_SYS ?= python3
VENV       ?= .venv
# CPU build by default; CUDA users: make install TORCH_SPEC='torch==2.13.0' TORCH_INDEX='--index-url https://…'
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed

.PHONY: help install test test-all prototxt benchmark

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	$(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

install: $(STAMP) ## create .venv with pinned CPU torch and the package (TORCH_SPEC, TORCH_INDEX to override)

test: $(STAMP) ## run the test suite (golden tests read ../shared/caffe-golden)
	$(PY) -m pytest -q

prototxt: $(STAMP) ## regenerate prototxt_ref/ from the net definitions
	$(PY) -m reproduce prototxt -o prototxt_ref

benchmark: $(STAMP) ## speed and memory benchmarks; results in BENCHMARKS.md
	$(PY) benchmarks/run.py
