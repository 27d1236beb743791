# The two commands of the README: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# A short tour on a throwaway home: start godeld, publish and follow events, status, stop.
demo: install
	bash scripts/demo.sh

# The whole test suite (CI runs this). pytest's exit code 5, "no tests ran", fails it like any error.
test: install
	$(BIN)/python -m pytest

# The figures of the README (each script prints its figure and a same-run baseline).
bench: install
	$(BIN)/python bench/rpc.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/workflows.py
	$(BIN)/python bench/swarms.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
