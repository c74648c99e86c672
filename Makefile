# One virtualenv, created on first use and reused; every target installs what it needs.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Supported Pythons, preferred first: the Lambda runtime's, so the tests run on it where the machine has
# it. The first of python3.12, python3.13, python3.11 (each on PATH, or installed by pyenv), python3 that
# is one of them and can build a virtualenv (Debian and Ubuntu ship ensurepip apart, in pythonX.Y-venv)
# builds it; PYTHON=... overrides.
SUPPORTED_PYTHONS := 3.12 3.13 3.11
python_version = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
venv_capable_version = $(shell $(1) -c 'import ensurepip, sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# pyenv installs versions its shims answer for only when selected: ask it where each one lives.
pyenv_python = $(shell command -v pyenv >/dev/null 2>&1 && version=$$(pyenv latest $(1) 2>/dev/null) && \
	test -n "$$version" && prefix=$$(pyenv prefix "$$version" 2>/dev/null) && echo "$$prefix/bin/python$(1)")
python_candidates = $(foreach version,$(SUPPORTED_PYTHONS),python$(version) $(call pyenv_python,$(version))) python3
find_python = $(firstword $(foreach candidate,$(python_candidates), \
	$(if $(filter $(SUPPORTED_PYTHONS),$(call venv_capable_version,$(candidate))),$(candidate))))
# Found on first use, so only a target that builds a virtualenv pays for the probes.
ifeq ($(origin PYTHON),undefined)
PYTHON = $(eval PYTHON := $(find_python))$(PYTHON)
endif
NO_PYTHON := sgmesh needs one of Python $(SUPPORTED_PYTHONS) with its venv module, and none of \
	$(addprefix python,$(SUPPORTED_PYTHONS)) python3 is one: install one (README.md, Supported Python) or pass PYTHON=...

# $(call venv_problem,DIR): why the existing virtualenv DIR must be rebuilt, or nothing. One built with any
# supported Python is kept, unless its interpreter no longer starts (that Python was removed or upgraded
# away) or PYTHON=... asks for another version.
ASKED_VERSION := $(if $(filter command line environment,$(origin PYTHON)),$(call python_version,$(PYTHON)))
venv_problem = $(if $(wildcard $(1)/pyvenv.cfg),$(call venv_problem_at,$(call python_version,$(1)/bin/python)))
venv_problem_at = $(if $(1),$(call asked_other_than,$(1)),its Python no longer starts)
asked_other_than = $(if $(filter-out $(1),$(ASKED_VERSION)),it runs Python $(1) and PYTHON=$(PYTHON) is $(ASKED_VERSION))

# $(call venv_recipe,DIR,PROBLEM): recipe lines that rebuild DIR when it has a PROBLEM and create it when
# it is missing.
define venv_recipe
$(if $(2),@echo "rebuilding $(1): $(2)"; rm -rf $(1))
@test -x $(1)/bin/python || { test -n "$(PYTHON)" || { echo "$(NO_PYTHON)" >&2; exit 1; }; \
	echo "creating $(1) with $(PYTHON) ($$($(PYTHON) --version))"; $(PYTHON) -m venv $(1); }
endef

VENV_PROBLEM := $(call venv_problem,$(VENV))

# build, deploy, checkov and infra-lint; defines CHECKOV_STAMP, so it comes before the test rule.
include infra/infra.mk

.PHONY: test demo lint typecheck unit schemas bench chaos clean FORCE

# The install log stays out of the way unless the install fails.
$(STAMP): pyproject.toml $(if $(VENV_PROBLEM),FORCE)
	$(call venv_recipe,$(VENV),$(VENV_PROBLEM))
	@echo "installing sgmesh and its tools into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --upgrade pip && $(BIN)/python -m pip install -e '.[dev]'; } \
		> $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; exit 1; }
	touch $(STAMP)

test: $(STAMP) $(CHECKOV_STAMP) lint typecheck
	$(BIN)/python -m pytest -q

# The product's main job on the embedded default: a local three-region mesh on moto.
demo: $(STAMP)
	$(BIN)/sgmesh demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# Call counts, CPU, import and convergence times against the 2017 blog's algorithm (docs/performance.md).
bench: $(STAMP)
	$(BIN)/python -m tests.bench.run

# Every fault scenario at full size, one table of results; fails on any lost member, extra rule or
# non-convergence (make test runs the same scenarios shortened).
chaos: $(STAMP)
	SGMESH_CHAOS_EXAMPLES=100 $(BIN)/python -m pytest -q -p no:logging tests/chaos/test_schedules.py
	$(BIN)/python -m tests.chaos.run

# Regenerates the published JSON Schemas from the models (a test fails when they are stale).
schemas: $(STAMP)
	$(BIN)/python -m schemas.generate

# Makes a virtualenv's stamp out of date when the virtualenv must be rebuilt.
FORCE:

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis
