# turnout — `make demo` and `make test` do all set-up on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.12 2>/dev/null || ls -1d /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)
VENV := .venv
BIN := $(VENV)/bin
INVOKE := $(BIN)/invoke
APT_PACKAGES := debootstrap systemd-container iproute2 openssh-client socat curl wrk hey chromium groovy busybox-static
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help deps apt venv tools demo test unit integration lint molecule bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: apt venv ## install system packages and the virtualenv (from requirements.lock)

# groovy compiles the Jenkinsfile in the unit tests (Debian's 2.4.21 is the Groovy Jenkins runs);
# busybox-static is the static binary examples/site ships (invoke build --example site);
# npm installs `make tools`. npm goes by command, not by package: NodeSource's nodejs carries its
# own npm and conflicts with Debian's.
apt: ## install the Debian packages the lab and tests need
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed ## create .venv from requirements.lock

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.12 not found: install it (pyenv install 3.12)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

# Lint tools that are no Python runtime dependency, pinned in ci/ (ci/README.md) and installed
# under .cache/ci/, which git, yamllint and ansible-lint all skip.
CI_TOOLS := .cache/ci
AWX_COLLECTIONS := $(CURDIR)/$(CI_TOOLS)/collections

tools: $(CI_TOOLS)/node/.installed $(CI_TOOLS)/collections/.installed ## lint tools pinned in ci/ (npm-groovy-lint, awx.awx)

$(CI_TOOLS)/node/.installed: ci/node/package.json ci/node/package-lock.json
	@command -v npm >/dev/null || { echo "tools: npm not found: make apt installs it"; exit 2; }
	rm -rf $(CI_TOOLS)/node && mkdir -p $(CI_TOOLS)/node
	cp ci/node/package.json ci/node/package-lock.json $(CI_TOOLS)/node/
	npm ci --prefix $(CI_TOOLS)/node --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

$(CI_TOOLS)/collections/.installed: ci/awx-collection.txt ci/awx_collection.py | venv
	$(BIN)/python ci/awx_collection.py $(CI_TOOLS)/collections
	touch $@

demo: deps ## boot the lab, provision it, deploy two versions, roll back once, print the report
	$(INVOKE) lab.up
	$(INVOKE) build --version 1.0.0 --notes "First release."
	$(INVOKE) build --version 1.1.0 --notes "Second release."
	$(INVOKE) provision --env lab
	$(INVOKE) deploy --env lab --version 1.0.0
	$(INVOKE) deploy --env lab --version 1.1.0
	$(INVOKE) rollback --env lab
	$(INVOKE) deploy --env lab --version 1.1.0
	$(INVOKE) report --env lab

# Lint and the unit tests (the controller only) run beside Molecule (lab 'm', mostly waiting on
# its hosts): about four minutes less than one after the other. Their output follows Molecule's.
# Then the lab tests, which share the lab and must not run beside anything.
SIDE_LOG := $(CI_TOOLS)/lint-and-unit.log

test: deps tools ## the whole gating suite: lint, Molecule, unit, lab integration, e2e, drills
	@mkdir -p $(CI_TOOLS); start=$$(date +%s); \
	( $(MAKE) --no-print-directory lint && $(BIN)/python -m pytest tests/unit --durations=10 ) \
	  > $(SIDE_LOG) 2>&1 & side=$$!; \
	$(MAKE) --no-print-directory molecule; molecule=$$?; \
	wait $$side; lint_unit=$$?; \
	echo "test: lint and unit tests (beside Molecule), exit $$lint_unit:"; cat $(SIDE_LOG); \
	echo "test: lint, unit and Molecule took $$(( $$(date +%s) - start ))s"; \
	[ $$molecule -eq 0 ] && [ $$lint_unit -eq 0 ]
	$(BIN)/python -m pytest tests/integration tests/e2e --durations=40  # where CI's time goes

unit: venv $(CI_TOOLS)/collections/.installed ## unit tests only (seconds, no root needed)
	$(BIN)/python -m pytest tests/unit

integration: deps ## lab integration and e2e tests only
	$(BIN)/python -m pytest tests/integration tests/e2e

# ansible-lint sees the real awx.awx (no mock): its syntax check resolves every module of
# awx/configure.yml. The production profile leaves out the experimental args rule (options and
# values against each module's argument_spec), so a second run applies it to awx/, strictly.
lint: venv tools ## ruff, yamllint, ansible-lint (production; awx/ against awx.awx), npm-groovy-lint
	$(BIN)/ruff check src tests tasks.py plugins molecule bench ci
	$(BIN)/yamllint --strict .
	ANSIBLE_COLLECTIONS_PATH=$(AWX_COLLECTIONS) $(BIN)/ansible-lint
	ANSIBLE_COLLECTIONS_PATH=$(AWX_COLLECTIONS) $(BIN)/ansible-lint --enable-list args --strict awx/configure.yml
	$(BIN)/python ci/groovy_lint.py Jenkinsfile

MOLECULE_SCENARIOS := haproxy app_release smoke_test pool_switch

molecule: deps ## every Molecule scenario on real lab hosts (lab 'm'; TURNOUT_MOLECULE_LAB/SUBNET)
	@for scenario in $(MOLECULE_SCENARIOS); do \
	  start=$$(date +%s); \
	  $(BIN)/molecule test -s $$scenario || { echo "molecule: $$scenario FAILED"; exit 1; }; \
	  echo "molecule: $$scenario passed in $$(( $$(date +%s) - start ))s"; \
	done

bench: deps ## benchmarks on a 10+10 lab vs in-place and rolling updates (docs/performance.md)
	$(INVOKE) bench

clean: ## stop the lab (keeps the cached base image)
	-$(INVOKE) lab.down
