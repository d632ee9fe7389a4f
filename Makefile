# Two commands: `make demo` runs the main job end to end, `make test` runs the test suite.
# Both create .venv on first use and install mmwork with everything it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mmwork demo

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	MMWORK_SLOW=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) data/processed/* reports/*
