# Infrastructure targets (issue 4): artifacts, deploy, template linting and checkov's own virtualenv.
# Included from the Makefile, whose VENV, BIN, STAMP, venv_problem and venv_recipe it uses. Include it
# before any rule that names $(CHECKOV_STAMP) (make expands prerequisites as it reads them); it leaves
# the Makefile's default goal as it was.

INFRA_SAVED_GOAL := $(.DEFAULT_GOAL)

CHECKOV_VENV := build/checkov-venv
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_VENV_PROBLEM := $(call venv_problem,$(CHECKOV_VENV))
CHECKOV_REQUIREMENT := checkov>=3.2,<4
CONFIG ?= sgmesh.toml
REGIONS ?=

CONFIRM ?=

.PHONY: build deploy destroy checkov infra-lint

# One code zip for every function and a dependency layer, both from pyproject.toml; prints the sizes.
build: $(STAMP)
	$(BIN)/python -m infra.build

# Deploys (or updates) the cluster's stack in every region of REGIONS, in order. Checks credentials
# first, then builds the artifacts, then deploys: topics first, then every queue onto every topic;
# then subscribes again what SNS lost, and ends with the doctor's verdict (exit 1 when broken).
deploy: $(STAMP)
	@test -n "$(REGIONS)" || { echo "usage: make deploy REGIONS=us-east-1,us-west-2,eu-west-1 [CONFIG=$(CONFIG)]" >&2; exit 2; }
	$(BIN)/python -m infra.deploy --config $(CONFIG) --regions $(REGIONS)

# Tears the cluster down in every region of REGIONS, in order: prints the plan; then, only with
# CONFIRM=<cluster>, retires each region's groups everywhere, revokes its rules, deletes its stack (and
# the artifact bucket with the region's last cluster). Run it again after a failure to finish the job.
destroy: $(STAMP)
	@test -n "$(REGIONS)" || { echo "usage: make destroy REGIONS=eu-west-1 CONFIRM=<cluster> [CONFIG=$(CONFIG)]" >&2; exit 2; }
	$(BIN)/python -m infra.deploy.destroy --config $(CONFIG) --regions $(REGIONS) $(if $(CONFIRM),--confirm $(CONFIRM))

# checkov pins an older boto3 than the project's, so it gets a virtualenv of its own (about 40 s once).
$(CHECKOV_STAMP): infra/infra.mk $(if $(CHECKOV_VENV_PROBLEM),FORCE)
	$(call venv_recipe,$(CHECKOV_VENV),$(CHECKOV_VENV_PROBLEM))
	@echo "installing checkov into $(CHECKOV_VENV) (log: $(CHECKOV_VENV)/install.log)"
	@{ $(CHECKOV_VENV)/bin/python -m pip install --upgrade pip && \
		$(CHECKOV_VENV)/bin/python -m pip install '$(CHECKOV_REQUIREMENT)'; } \
		> $(CHECKOV_VENV)/install.log 2>&1 || { tail -n 40 $(CHECKOV_VENV)/install.log; exit 1; }
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

# The template checks alone: cfn-lint (serverless rules), checkov, and mypy --strict on the scripts.
infra-lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/mypy infra
	$(BIN)/python -m pytest -q tests/infra/test_lint.py

.DEFAULT_GOAL := $(INFRA_SAVED_GOAL)
