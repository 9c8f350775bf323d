# Two entry points do all the set-up on a fresh Debian machine (as root):
#   make demo   record the bundled example and print its histogram and flame graph
#   make test   run the whole test suite (unit + real eBPF integration tests)
VENV ?= .venv
PY := $(VENV)/bin/python
HEAPTRACE := $(VENV)/bin/heaptrace

.PHONY: setup system venv demo test lint bench clean

setup: system venv

system:
	bash scripts/setup-system.sh

# The system Python (not pyenv's) so that Debian's bcc module is importable.
$(VENV)/.installed: pyproject.toml
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: setup
	$(MAKE) -C examples
	$(HEAPTRACE) run -o examples/demo.db -- examples/grow
	$(HEAPTRACE) histogram examples/demo.db

test: setup
	$(PY) -m ruff check heaptrace tests bench
	$(PY) -m pytest -ra

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
