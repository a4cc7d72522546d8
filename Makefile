# Parley: `make up` starts the whole local cluster, `make test` runs every test tier.
# Every target installs what it needs first and is safe to run twice. `make help` lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
CLUSTER := $(RUN) python deploy/local/cluster.py
# every importable package of the workspace, type-checked by module name (src layouts)
MYPY_PACKAGES = $(foreach d,$(wildcard libs/*/src/*/__init__.py services/*/src/*/__init__.py),-p $(notdir $(patsubst %/,%,$(dir $(d)))))
# test roots that exist in this checkout (services/ is empty until the first service lands);
# deploy/tests validates docker-compose.yml, deploy/k8s and the image definition offline
TEST_ROOTS = $(wildcard libs services deploy/tests)
# pytest exits 5 when a tier has no test yet; that is not a failure of the tier
PYTEST_TIER = $(RUN) pytest $(1) ; rc=$$? ; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

# `make up REPLICAS=2`: two of every stateless process behind nginx (issue 22; README)
ifdef REPLICAS
export PARLEY_REPLICAS := $(REPLICAS)
endif

.PHONY: help sync up down clean ps kill pause resume logs test test-unit test-integration test-e2e bench soak faults lint deploy-tools

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

sync: ## install uv if missing and the Python environment from uv.lock (fails if uv.lock is stale)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	@$(UV) sync --locked --all-packages -q

up: sync ## install what is missing, start everything, wait until healthy, print endpoints
	@$(CLUSTER) up

down: ## stop every process, keep the data in .local/
	@$(CLUSTER) down

clean: ## stop everything and delete .local/ (all data, logs, mail)
	@$(CLUSTER) clean

ps: ## one line per managed process: name, state, pid
	@$(CLUSTER) ps

kill: ## SIGKILL one process (S=<name>); the process manager restarts it
	@$(CLUSTER) kill $(S)

pause: ## stop one process until `make resume` (S=<name>)
	@$(CLUSTER) pause $(S)

resume: ## start a paused process again (S=<name>)
	@$(CLUSTER) resume $(S)

logs: ## last lines of one process's log (S=<name>)
	@$(CLUSTER) logs $(S)

lint: sync ## ruff + mypy + import contracts + each workspace member's dependencies (deptry)
	@$(RUN) ruff check .
	@$(RUN) ruff format --check . >/dev/null || { $(RUN) ruff format --check . ; exit 1; }
	@$(RUN) mypy $(MYPY_PACKAGES)
	@cd deploy/local && $(RUN) mypy *.py
	@cd deploy/tests && $(RUN) mypy deploy_tools.py deploy_workspace.py
	@$(RUN) mypy tools/deptry_workspace.py
	@$(RUN) lint-imports --no-cache
	@$(RUN) python tools/deptry_workspace.py

test: sync ## everything: lint, unit, integration (real servers), end-to-end
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory up
	@$(MAKE) --no-print-directory test-integration
	@$(MAKE) --no-print-directory test-e2e

deploy-tools: sync ## pinned kustomize + Compose schema for the deploy checks (built once, cached in ~/.cache/parley)
	@$(RUN) python deploy/tests/deploy_tools.py >/dev/null

test-unit: sync deploy-tools ## fast tests: no server needed (includes the offline deployment checks)
	@$(call PYTEST_TIER,-q -m "not integration and not e2e and not fault" $(TEST_ROOTS))

test-integration: sync ## tests against the real PostgreSQL, Kafka and FerretDB of the local cluster
	@$(call PYTEST_TIER,-q -m "integration or fault" $(TEST_ROOTS))

test-e2e: sync ## the public interfaces of the running cluster
	@$(call PYTEST_TIER,-q tests-e2e)

faults: up ## the fault-injection suite, full profile (three rounds of SIGKILLs under load)
	@PARLEY_FAULT_ROUNDS=3 $(RUN) pytest -q -s -m fault tests-e2e

soak: up ## steady mixed load for MINUTES (default 10): do lag and memory stay flat? -> bench/results/soak.*
	@$(RUN) python -m bench.soak --minutes $(or $(MINUTES),10)

bench: up ## benchmarks -> bench/results/latest.json and PNG plots
	@$(RUN) python bench/run.py
