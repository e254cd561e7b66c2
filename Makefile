# elastrain's developer entry points. Every target does its own set-up on an empty machine:
# a virtualenv with the project installed, and the control plane built from Go modules.
#
# The venv and the Go build cache live outside the repo (under ~/.cache) so that a fresh
# clone on the same machine reuses torch's multi-GB install and the control-plane binaries.

SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE      ?= $(HOME)/.cache/elastrain
VENV       ?= $(CACHE)/venv
PY         := $(VENV)/bin/python
PYTHON     ?= python3
PYTEST_ARGS ?=
BENCH      ?= cluster_startup
ARGS       ?=
# Per-clone stamp: the venv is shared, the editable install points at this clone.
STAMP      := .make/venv-$(shell sha256sum pyproject.toml | cut -c1-12)

export ELASTRAIN_CACHE := $(CACHE)

.PHONY: help venv controlplane cluster-up cluster-down demo test lint crds bench clean images

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@mkdir -p .make $(CACHE)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade-strategy only-if-needed -e '.[dev]'
	@rm -f .make/venv-* && touch $@

venv: $(STAMP)  ## create the venv and install elastrain with all extras (dev, operator, trainer)
	@# The venv is shared between clones: point its editable install back at this one if another took it.
	@$(PY) -c "import elastrain_trainer, sys; sys.exit(not elastrain_trainer.__file__.startswith('$(CURDIR)/'))" \
		|| $(PY) -m pip install -q --no-deps -e .

controlplane:  ## build etcd, kube-*, kubectl, kwok and helm from Go modules (once per version)
	@bash hack/build-controlplane.sh >/dev/null

cluster-up: venv controlplane  ## start the local control plane with 4 fake GPU nodes
	@$(VENV)/bin/elastrain-dev cluster-up

cluster-down: venv  ## stop the local cluster and delete its state
	@$(VENV)/bin/elastrain-dev cluster-down

demo: venv controlplane  ## the main job: local cluster, the operator, a TrainingJob through a node loss and back
	@$(VENV)/bin/elastrain-dev demo

test: venv controlplane  ## run every test tier (unit, cluster, trainer, e2e); PYTEST_ARGS='-m unit' to select
	$(PY) -m pytest $(PYTEST_ARGS)

images:  ## build elastrain/operator and elastrain/trainer with podman (installed if missing); prints sizes and times
	@bash hack/images/build-images.sh

lint: venv  ## ruff, mypy --strict, import-linter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

crds: venv controlplane  ## regenerate the CRD, the chart's CRD template, the API reference, the chart README and the docs' tables
	$(PY) hack/gen_crds.py
	$(PY) hack/gen_chart_readme.py
	$(PY) hack/gen_docs.py

bench: venv controlplane  ## run benchmarks/NAME.py with BENCH=NAME (default cluster_startup): a table, JSON in benchmarks/results/
	$(PY) benchmarks/$(BENCH).py $(ARGS)

clean:  ## remove this clone's build stamps (the shared venv and binaries stay cached)
	rm -rf .make
