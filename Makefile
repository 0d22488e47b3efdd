# Two commands do all set-up on a fresh machine: `make sweep` and `make test`.
# Both create .venv and install the project (editable, with dev extras) the first time,
# and skip that step afterwards unless pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RDC := $(VENV)/bin/rdc
STAMP := $(VENV)/.installed
RUNS ?= runs
SWEEP_ARGS ?=
# The experiment `make sweep` profiles and queries; set it when SWEEP_ARGS picks another space.
SWEEP_NAME ?= demo
PYTEST_ARGS ?=
# Ray keeps every process of a local instance on 127.0.0.1 only with this set.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: install sweep frontier test test-deps cluster-up cluster-down mlflow-server bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo sweep: embedded defaults (scikit-image photographs, sqlite MLflow under runs/, local Ray).
# Trials share the CPU while they train, so clean runtimes come from `rdc profile` afterwards.
sweep: $(STAMP)
	$(RDC) sweep $(SWEEP_ARGS)
	$(RDC) profile --experiment $(SWEEP_NAME) --tracking-uri sqlite:///$(RUNS)/mlflow.db --threads 1
	$(RDC) frontier --experiment $(SWEEP_NAME) --tracking-uri sqlite:///$(RUNS)/mlflow.db

test-deps: $(STAMP)
	@bash .ci/install-test-deps.sh

test: $(STAMP) test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

mlflow-server: $(STAMP)
	$(PY) -m sweep.tracking_server --runs $(RUNS)

cluster-up: $(STAMP)
	$(PY) -m sweep.testcluster up

cluster-down:
	$(PY) -m sweep.testcluster down

bench: $(STAMP)
	@echo "see bench/README.md for the command of each benchmark"

clean:
	rm -rf $(RUNS) .pytest_cache
