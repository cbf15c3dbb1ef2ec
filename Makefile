# The two commands the README starts with are `make demo` and `make test`.
# Both set up what they need: a virtual environment with the pinned packages
# and the distribution packages (openssh-server, sudo, sshpass) when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# the tiers (tests/utils/tier-*) run in this environment too
export VENV
VENV_PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-packages demo test unit sanity lint integration molecule contract bench clean

setup: $(VENV)/.installed system-packages

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements-test.txt
	touch $@

system-packages:
	@tests/utils/ensure-system-packages

demo: setup
	$(VENV_PY) -m simulator demo

# Every tier runs, even after a failure, and the summary names what failed.
test: setup
	@tests/utils/run-tiers unit sanity lint integration molecule contract

unit: setup
	@tests/utils/tier-unit

sanity: setup
	@tests/utils/tier-sanity

lint: setup
	@tests/utils/tier-lint

integration: setup
	@tests/utils/tier-integration

molecule: setup
	@tests/utils/tier-molecule

contract: setup
	@tests/utils/tier-contract

bench: setup
	$(VENV_PY) -m benchmarks

clean:
	rm -rf .build tests/output .pytest_cache
