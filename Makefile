# FGLN reproduction: build the executable book and run the tests.
#   make book       - create .venv if needed, execute every chapter at paper scale, HTML in
#                     _build/html; fails if a cell raises, a reference or glue key is missing,
#                     or a chapter's asserted claim status is not what its numbers give
#   make test       - create .venv if needed: lint, the test suite (incl. notebook validation),
#                     and the whole HTML book at quick scale with warnings as errors
#   make book-quick - only that quick build (into _build/quick, fresh result cache)
#   make lint       - ruff
#   make venv       - only create/update .venv
#   make clean      - remove build outputs (keeps .venv and the result cache .cache/)
#   make distclean  - also remove .venv and .cache

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.fgln-installed
JB     := $(VENV)/bin/jupyter-book build --all -W -n --keep-going

# Progress bars would end up in the rendered book / test logs.
export FGLN_PROGRESS ?= 0
# Prefer the kernelspec registered inside .venv over any user-level one.
export JUPYTER_PREFER_ENV_PATH := 1
# One id per make invocation: the reproduction page accepts only ledgers of this build.
export FGLN_BUILD_ID ?= $(shell date +%Y%m%dT%H%M%S)-$(shell echo $$PPID)

.PHONY: venv test lint book book-quick clean distclean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -e ".[dev,cluster]"
	# Kernel "python3" -> this venv's interpreter (installed under .venv, nothing global).
	$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fgln .venv)"
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

test: venv lint
	$(VPY) -m pytest -q
	$(MAKE) book-quick

# Quick sizes, a fresh result cache (so that everything is recomputed) and separate
# figure/ledger folders; the HTML lands in _build/quick/_build/html.
book-quick: venv
	rm -rf _build/quick
	tmp=$$(mktemp -d) && \
	FGLN_SCALE=quick FGLN_CACHE_DIR=$$tmp/cache FGLN_FIG_DIR=$$PWD/_build/quick/figures \
	FGLN_LEDGER_DIR=$$PWD/_build/quick/ledger \
	$(JB) --path-output _build/quick . ; rc=$$?; rm -rf $$tmp; exit $$rc

# Execution is forced (see _config.yml): Sphinx would otherwise skip unchanged chapters
# even though src/ changed.
book: venv
	FGLN_SCALE=paper $(JB) .

clean:
	rm -rf _build .pytest_cache src/*.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache
