# FER2013 research repository. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?=
# Profile: configs/NAME.yaml; full when FER2013 data is given or found under data/, else synthetic.
HAVE_DATA := $(or $(DATA),$(FER2013_CSV),$(wildcard data/fer2013.csv data/fer2013.csv.gz data/icml_face_data.csv))
PROFILE ?= $(if $(HAVE_DATA),full,synthetic)
TRAIN_CONFIG ?= configs/train.yaml
PORT ?= 8888
# glibc malloc with a fixed 32 MiB mmap threshold and a 1 GiB trim threshold: each step's freed activation
# buffers stay in the heap for the next step instead of being unmapped and faulted in again, and the heap is
# reused, so memory stays flat (jemalloc without decay was slower here and grew; README, measured table).
FAST_MALLOC := MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824

.PHONY: help setup reproduce smoke train test lint lab strip clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[notebooks,live,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fer2013)"
	touch $(PY)

setup: $(PY) ## Create .venv, install fer_utils with all its extras (notebooks, live, dev), and the nbstripout git filter
	@if git rev-parse --git-dir >/dev/null 2>&1; then $(VENV)/bin/nbstripout --install && echo "nbstripout filter installed"; \
	else echo "not a git checkout: nbstripout filter not installed"; fi

reproduce: $(PY) ## Run notebooks 01-05 headless into reports/ (DATA=FER2013 file, FERPLUS=votes file, RETRAIN=1)
	$(FAST_MALLOC) $(PY) -m fer_utils.reproduce --profile $(PROFILE) $(if $(DATA),--data "$(DATA)",) $(if $(FERPLUS),--ferplus "$(FERPLUS)",) $(if $(RETRAIN),--retrain,)

smoke: $(PY) ## Quick end-to-end run of notebooks 01-05 on a tiny synthetic set (reports/smoke)
	$(PY) -m fer_utils.reproduce --profile smoke

train: $(PY) ## Long training run from TRAIN_CONFIG (resumes from its out_dir; DATA=path, CONTINUE_FROM=checkpoint)
	$(FAST_MALLOC) $(PY) -m fer_utils.train --config $(TRAIN_CONFIG) $(if $(DATA),--data "$(DATA)",) $(if $(CONTINUE_FROM),--continue_from "$(CONTINUE_FROM)",)

test: $(PY) ## Run the test suite
	$(PY) -m pytest

lint: $(PY) ## Check style (ruff) and types (mypy)
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/ruff format --check --no-cache .
	$(VENV)/bin/mypy

lab: $(PY) ## Start JupyterLab on localhost with jupyter_config/'s settings (ARGS="..." passes more options)
	@if [ "$$(id -u)" = 0 ]; then echo "make lab: running as root, so JupyterLab gets --allow-root"; fi
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter_config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" $(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(PORT) --notebook-dir=. $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(ARGS)

strip: $(PY) ## Strip outputs from the source notebooks
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean: ## Remove generated reports, caches and training runs (keeps the shipped model)
	find reports -mindepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf data/interim models/runs .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
