# Two commands: `make demo` runs the main job end to end, `make test` runs the test suite.
# Both create .venv on first use and install mmwork with everything it needs (JupyterLab included,
# so the tests that drive a real Jupyter server run). `make lab` opens the notebooks in JupyterLab.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lab clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,lab,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mmwork demo

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	MMWORK_SLOW=1 $(PY) -m pytest

# The kernel goes into the venv (--sys-prefix), not ~/.local: this checkout's JupyterLab sees it, another
# checkout's "mmwork" kernel is never overwritten, and `make clean` takes it away with the venv.
# More options: make lab LAB_ARGS="--no-browser --port 8890"  (as root in a container: --allow-root)
LAB_ARGS ?=
lab: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name mmwork --display-name "Python (mmwork)"
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(LAB_ARGS)

clean:
	rm -rf $(VENV) data/processed/* reports/*
