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
	$(BIN)/ridgelens demo --out ridgelens-demo --overwrite

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
	@start=$$(date +%s); \
	$(BIN)/ruff check src tests benchmarks && \
	$(BIN)/lint-imports && \
	$(BIN)/python -m pytest -q; status=$$?; \
	echo "make test took $$(( $$(date +%s) - start )) s"; exit $$status

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "slow or not slow"

# Benchmarks run in their own environment, .venv-bench: the project plus the peers it is
# measured against (PyHessian, curvlinops) and transformers (bench_lm.py --arch gpt2). Peers are
# never runtime or test dependencies.
BENCH_VENV  ?= .venv-bench
BENCH_BIN   := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_PEERS := pyhessian==0.1 python-glmnet==2.6.1
# curvlinops (bench_lm.py) without its declared deps: backpack-for-pytorch pulls torchvision, which
# breaks against this torch; the Hessian/GGN operators need only these.
BENCH_NODEPS := curvlinops-for-pytorch==3.0.1 einconv linear_operator jaxtyping wadler_lindig
BENCH_NODEPS_NEEDS := tqdm einops opt-einsum

.PHONY: bench-env gpu-wheels
bench-env: $(BENCH_STAMP)

# Wheels a lent GPU machine needs for benchmarks/gpu_lm.sh (its Python is 3.12, it has PyTorch and
# transformers, and no network): curvlinops and einconv, pure Python. Into .whl/ (git-ignored).
gpu-wheels:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux2014_x86_64 -d .whl curvlinops-for-pytorch==3.0.1 einconv==0.1.0

$(BENCH_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip
	$(BENCH_BIN)/python -m pip install --quiet -c constraints.txt -e '.[plot,hf]' $(BENCH_PEERS)
	$(BENCH_BIN)/python -m pip install --quiet -c constraints.txt $(BENCH_NODEPS_NEEDS)
	$(BENCH_BIN)/python -m pip install --quiet --no-deps -c constraints.txt $(BENCH_NODEPS)
	touch $(BENCH_STAMP)

# All benchmarks at full size (about 20 minutes on 2 cores); each prints its ratios.
bench: $(BENCH_STAMP)
	$(BENCH_BIN)/python benchmarks/bench_linear_path.py
	$(BENCH_BIN)/python benchmarks/bench_hvp.py
	$(BENCH_BIN)/python benchmarks/bench_eigen.py
	$(BENCH_BIN)/python benchmarks/bench_path.py
	$(BENCH_BIN)/python benchmarks/bench_scale.py

# The README's gallery (docs/gallery/): the demos, a torch MLP and `ridgelens demo --lm` (about 10
# minutes on 2 cores). `docs/make_gallery.py --mlp RESULTS.json --lm DIR` redraws from earlier runs.
gallery: $(STAMP) browser
	$(BIN)/python docs/make_gallery.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) ridgelens-demo .pytest_cache .hypothesis
