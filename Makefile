# FGLN reproduction: build the executable book and run the tests.
#   make book   - create .venv if needed, execute every chapter (paper scale), HTML in _build/html
#   make test   - create .venv if needed, run the whole test suite (incl. notebook validation)
#   make venv   - only create/update .venv
#   make clean  - remove build outputs (keeps .venv and the result cache .cache/)
#   make distclean - also remove .venv and .cache

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.fgln-installed

# Progress bars would end up in the rendered book / test logs.
export FGLN_PROGRESS ?= 0
# Prefer the kernelspec registered inside .venv over any user-level one.
export JUPYTER_PREFER_ENV_PATH := 1

.PHONY: venv test book clean distclean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -e ".[dev]"
	# Kernel "python3" -> this venv's interpreter (installed under .venv, nothing global).
	$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fgln .venv)"
	touch $(STAMP)

test: venv
	$(VPY) -m pytest -q

# --all: Sphinx would otherwise skip unchanged chapters even though src/ changed.
book: venv
	$(VENV)/bin/jupyter-book build --all .

clean:
	rm -rf _build .pytest_cache src/*.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache
