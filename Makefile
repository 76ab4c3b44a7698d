PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit demo emulator bench clean salesforce-tools

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

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/sfconnector demo

emulator: $(STAMP)
	$(BIN)/sfconnector emulator --seed demo --tls-dir state/tls

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(SF_TOOLS)/node_modules
