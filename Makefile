# Two entry points do all the set-up on a fresh Debian machine (as root):
#   make demo   record the bundled example and print its histogram and flame graph
#   make test   run the whole test suite: every tier, from unit to real eBPF (docs/testing.md)
# and one needs nothing but Python, no root and no system set-up:
#   make unit   ruff, mypy and the unit tier (tests/unit)
VENV ?= .venv
PYTHON ?= /usr/bin/python3
PY := $(VENV)/bin/python
HEAPTRACE := $(VENV)/bin/heaptrace

.PHONY: setup system venv demo test unit lint typecheck bench clean examples example-pages \
	example-pkgin example-venice example-python example-liquidsoap

setup: system venv

system:
	bash scripts/setup-system.sh

# The system Python (not pyenv's) so that Debian's bcc module is importable.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# The pkgin story in miniature: record, histogram, flame graph; then the fix, and the diff.
demo: setup
	$(MAKE) -s -C examples
	$(HEAPTRACE) run -o examples/before.db -- examples/grow
	$(HEAPTRACE) histogram examples/before.db
	$(HEAPTRACE) flame examples/before.db --title "grow: heap growth by stack" > examples/before.svg
	$(HEAPTRACE) run -o examples/after.db -- examples/grow --stream
	$(HEAPTRACE) diff examples/before.db examples/after.db > examples/diff.svg
	@echo "Wrote examples/before.svg (flame graph) and examples/diff.svg (before vs after)"

# The four stories as runnable examples (docs/examples/): each builds its program, records it
# under heaptrace (as root) and writes its views into examples/build/STORY/.
STORIES := pkgin venice python liquidsoap

examples:
	$(MAKE) -s -C examples

example-pkgin example-venice example-python example-liquidsoap: example-%: venv examples
	$(PY) examples/render.py $* --pages

# The pictures and pages in docs/examples/, regenerated from real runs (commit the result).
example-pages: venv examples
	$(PY) examples/render.py $(STORIES) --pages --out docs/examples

test: setup lint typecheck
	$(PY) -m pytest -ra

# Pure logic only: no root, browser, compiler, binutils or system packages, just the venv.
unit: lint typecheck
	$(PY) -m pytest -ra tests/unit

lint: venv
	$(PY) -m ruff check heaptrace tests bench

# The type annotations checked (configured in pyproject.toml).
typecheck: venv
	$(PY) -m mypy

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info examples/build
