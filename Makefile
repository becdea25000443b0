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
, := ,
# jemalloc speeds CPU training 1.2-1.5x where Debian's libjemalloc2 is installed.
JEMALLOC := $(wildcard /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2)
FAST_MALLOC := $(if $(JEMALLOC),LD_PRELOAD=$(firstword $(JEMALLOC)) MALLOC_CONF=oversize_threshold:0$(,)background_thread:true$(,)metadata_thp:auto$(,)dirty_decay_ms:-1$(,)muzzy_decay_ms:-1,)

.PHONY: help setup reproduce smoke train test lab strip clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fer2013)"
	touch $(PY)

setup: $(PY) ## Create .venv, install fer_utils with its dev extra, and the nbstripout git filter
	@if git rev-parse --git-dir >/dev/null 2>&1; then $(VENV)/bin/nbstripout --install && echo "nbstripout filter installed"; \
	else echo "not a git checkout: nbstripout filter not installed"; fi

reproduce: $(PY) ## Run notebooks 01-05 headless into reports/ (DATA=path for FER2013; synthetic data otherwise)
	$(FAST_MALLOC) $(PY) -m fer_utils.reproduce --profile $(PROFILE) $(if $(DATA),--data "$(DATA)",)

smoke: $(PY) ## Quick end-to-end run of notebooks 01-05 on a tiny synthetic set (reports/smoke)
	$(PY) -m fer_utils.reproduce --profile smoke

train: $(PY) ## Long training run from TRAIN_CONFIG (resumes from its out_dir; DATA=path)
	$(FAST_MALLOC) $(PY) -m fer_utils.train --config $(TRAIN_CONFIG) $(if $(DATA),--data "$(DATA)",)

test: $(PY) ## Run the test suite
	$(PY) -m pytest

lab: $(PY) ## Start JupyterLab on localhost, with the server settings in jupyter_config/
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter_config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" $(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(PORT) --notebook-dir=.

strip: $(PY) ## Strip outputs from the source notebooks
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean: ## Remove generated reports, caches and training runs (keeps the shipped model)
	find reports -mindepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf data/interim models/runs .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
