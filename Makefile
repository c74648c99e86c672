# One virtualenv, created on first use and reused; every target installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# build, deploy, checkov and infra-lint; defines CHECKOV_STAMP, so it comes before the test rule.
include infra/infra.mk

.PHONY: test demo lint typecheck unit schemas bench chaos clean

# The install log stays out of the way unless the install fails.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
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

# Call counts, CPU, import and convergence times against the 2017 blog's algorithm (README: Performance).
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

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis
