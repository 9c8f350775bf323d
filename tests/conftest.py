"""Fixtures of every tier, and each test marked with its tier (the folder it is in):

    unit         pure logic: Python and the venv's packages only (`make unit`)
    host         the host's compiler, binutils, libc, pip, protoc, go
    browser      headless Chromium (and the speedscope app, installed with npm)
    integration  root and real eBPF
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest

from tests.helpers import TESTS
from tests.helpers.programs import build_all

TIERS = ("unit", "host", "browser", "integration")


def pytest_collection_modifyitems(items):
    for item in items:
        tier = Path(item.fspath).relative_to(TESTS).parts[0]
        assert tier in TIERS, f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}"
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def programs() -> Dict[str, Path]:
    """Every program of tests/programs compiled into tests/programs/bin/ (rebuilt only
    when its source is newer), by name: programs["big_malloc"]. Needs gcc and g++: only
    the host and integration tiers use it."""
    return build_all()
