# Two entry points do all the set-up on a fresh Debian machine (as root):
#   make demo   what running heaptrace needs, `heaptrace` on PATH, then the bundled example
#   make test   that and the test tools, then every tier, from unit to real eBPF (docs/testing.md)
# and one needs nothing but Python, no root and no system set-up:
#   make unit   ruff, mypy and the unit tier (tests/unit)
VENV ?= .venv
PYTHON ?= /usr/bin/python3
PY := $(VENV)/bin/python
HEAPTRACE := $(VENV)/bin/heaptrace
# `heaptrace` and `sudo heaptrace` from any directory: a link here (on sudo's secure_path)
BINDIR ?= /usr/local/bin

.PHONY: setup setup-test system system-test venv venv-run link demo test unit lint typecheck \
	bench clean examples example-pages example-pkgin example-venice example-python \
	example-liquidsoap

setup: system venv-run link

setup-test: system-test venv link

system:
	bash scripts/setup-system.sh run

system-test:
	bash scripts/setup-system.sh test

# The system Python (not pyenv's) so that Debian's bcc module is importable.
$(VENV)/.created:
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

# What running heaptrace needs.
$(VENV)/.installed-run: pyproject.toml $(VENV)/.created
	$(PY) -m pip install -q -e .
	touch $@

# And the test tools (pytest, hypothesis, ruff, mypy, playwright).
$(VENV)/.installed: pyproject.toml $(VENV)/.created
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv-run: $(VENV)/.installed-run

venv: $(VENV)/.installed

link: $(VENV)/.installed-run
	BINDIR=$(BINDIR) bash scripts/link-command.sh install $(abspath $(HEAPTRACE))

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

test: setup-test lint typecheck
	$(PY) -m pytest -ra

# Pure logic only: no root, browser, compiler, binutils or system packages, just the venv.
unit: lint typecheck
	$(PY) -m pytest -ra tests/unit

lint: venv
	$(PY) -m ruff check heaptrace tests bench

# The type annotations checked (configured in pyproject.toml).
typecheck: venv
	$(PY) -m mypy

bench: setup-test
	$(PY) bench/run.py
	$(PY) bench/faults.py
	$(PY) bench/scale.py

clean:
	BINDIR=$(BINDIR) bash scripts/link-command.sh remove $(abspath $(HEAPTRACE))
	rm -rf $(VENV) build dist *.egg-info examples/build
