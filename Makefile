PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit dates demo emulator bench clean salesforce-tools

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check sfconnector sfemulator tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Salesforce's source-deploy-retrieve (Node), pinned by salesforce/.tools/package-lock.json, for the test that
# converts salesforce/ the way `sf project deploy start` does. Reinstalled only when the lock file changes.
SF_TOOLS := salesforce/.tools
SF_TOOLS_STAMP := $(SF_TOOLS)/node_modules/.installed

$(SF_TOOLS_STAMP): $(SF_TOOLS)/package.json $(SF_TOOLS)/package-lock.json
	cd $(SF_TOOLS) && npm ci --engine-strict --no-audit --no-fund --loglevel=error
	touch $(SF_TOOLS_STAMP)

salesforce-tools: $(SF_TOOLS_STAMP)

unit: $(STAMP) $(SF_TOOLS_STAMP)
	$(BIN)/pytest

# The date-sensitive tests again with the wall clock of every process moved to another year (.ci/at-date):
# nothing they check may depend on the day they run.
DATE_SHIFT ?= 2030-06-30T12:00:00
dates: $(STAMP)
	.ci/at-date $(DATE_SHIFT) $(BIN)/pytest -q -p no:cacheprovider tests/test_state_store.py \
		tests/test_rules_rewards.py tests/test_rules_lifecycle.py tests/test_rules_routing_attribution.py \
		tests/test_demo_command.py tests/test_reconcile_lifecycle.py tests/test_lifecycle_e2e.py

test: lint typecheck unit dates

demo: $(STAMP)
	$(BIN)/sfconnector demo

emulator: $(STAMP)
	$(BIN)/sfconnector emulator --seed demo --tls-dir state/tls

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(SF_TOOLS)/node_modules
