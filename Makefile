# Two commands do all set-up on a fresh machine: `make sweep` and `make test`.
# Both create .venv and install the project (editable, with dev extras) the first time,
# and skip that step afterwards unless pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RDC := $(VENV)/bin/rdc
STAMP := $(VENV)/.installed
# Where `make sweep` keeps its MLflow store and Ray state (the sweep's runs_dir).
RUNS ?= runs
# The store `make sweep` profiles and queries; set it with tracking=server in SWEEP_ARGS.
TRACKING_URI ?= sqlite:///$(RUNS)/mlflow.db
# Evaluation images of the sweep (default: built-in photographs); `rdc profile` times each run on its own.
EVAL_DIR ?=
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
# Exit status 1 from `rdc sweep` means some variants failed (it lists them): the ones that
# finished are still profiled and shown, and make fails at the end. Bad input (2) stops here.
sweep: $(STAMP)
	@status=0; \
	$(RDC) sweep runs_dir=$(RUNS) $(if $(EVAL_DIR),data.eval_dir=$(EVAL_DIR)) $(SWEEP_ARGS) || status=$$?; \
	if [ $$status -le 1 ]; then \
	  $(RDC) profile --experiment $(SWEEP_NAME) --tracking-uri $(TRACKING_URI) --threads 1 && \
	  $(RDC) frontier --experiment $(SWEEP_NAME) --tracking-uri $(TRACKING_URI) || status=$$?; \
	fi; \
	exit $$status

# The frontier table of the last `make sweep` (same variables).
frontier: $(STAMP)
	$(RDC) frontier --experiment $(SWEEP_NAME) --tracking-uri $(TRACKING_URI)

test-deps: $(STAMP)
	@bash .ci/install-test-deps.sh

# Three test files at a time (pytest-xdist, whole files per worker so a module's fixtures, its
# Ray instance among them, are built once): most of the suite waits on processes, Ray and
# stores rather than computing (one core busy on average with one worker, on two cores).
# 12-14 minutes on this box's AVX-512 VMs (21-25 on the older ones); xdist's own order (files with most tests first) beat keeping the
# slow files first (--no-loadscope-reorder: 23 min 8 s), which ran every Ray-heavy file at once.
TEST_WORKERS ?= 3

test: $(STAMP) test-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

mlflow-server: $(STAMP)
	$(PY) -m sweep.tracking_server --runs $(RUNS)

cluster-up: $(STAMP)
	$(PY) -m tests.cluster.testcluster up

cluster-down:
	$(PY) -m tests.cluster.testcluster down

bench: $(STAMP)
	@echo "see bench/README.md for the command of each benchmark"

clean:
	rm -rf $(RUNS) .pytest_cache
