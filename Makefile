# Two commands a new user needs: `make demo` and `make test`.
# Both create ./.venv with the project's Python (3.11) and install everything.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint bench gallery clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[plot,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ridgelens demo --out ridgelens-demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_linear_path.py

gallery: $(STAMP)
	$(BIN)/ridgelens demo --out docs/gallery

clean:
	rm -rf $(VENV) ridgelens-demo .pytest_cache .hypothesis
