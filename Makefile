PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit demo emulator bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

JSFORCE := tests/jsforce
JSFORCE_STAMP := $(JSFORCE)/node_modules/.installed

# jsforce (npm), an independent client the emulator is also tested with; skipped where npm is missing.
$(JSFORCE_STAMP): $(JSFORCE)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(JSFORCE) --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@ \
			|| echo "jsforce could not be installed: the jsforce tests will be skipped"; \
	else \
		echo "npm not found: the jsforce tests will be skipped"; \
	fi

install: $(STAMP) $(JSFORCE_STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check sfconnector sfemulator tests bench

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/sfconnector demo

emulator: $(STAMP)
	$(BIN)/sfconnector emulator --seed demo --tls-dir state/tls

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(JSFORCE)/node_modules
