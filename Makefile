# Two commands a new user needs: `make demo` and `make test`.
# Both create ./.venv with the project's Python (3.11) and install everything.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint bench gallery browser clean

# The interactive page is tested in a real headless browser: Debian's chromium (never
# `playwright install`). Installed here when missing and we are root; if that fails the
# browser tests are skipped and say why.
CHROMIUM ?= /usr/bin/chromium

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[plot,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ridgelens demo --out ridgelens-demo

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get) for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	      || echo "note: could not install chromium; the browser test will be skipped"; \
	  else \
	    echo "note: $(CHROMIUM) is missing and we are not root; the browser test will be skipped"; \
	  fi; \
	fi

test: $(STAMP) browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_linear_path.py

gallery: $(STAMP) browser
	$(BIN)/python docs/make_gallery.py

clean:
	rm -rf $(VENV) ridgelens-demo .pytest_cache .hypothesis
