"""Fixtures shared by unit and integration tests: the compiled test programs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

import pytest

TESTS = Path(__file__).resolve().parent
# Tests import the helpers next to this file (strace_oracle, programs.build) by plain name,
# whatever pytest's import mode and whether tests/ is a package.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from programs.build import build_all  # noqa: E402


@pytest.fixture(scope="session")
def programs() -> Dict[str, Path]:
    """Every program of tests/programs compiled into tests/programs/bin/ (rebuilt only
    when its source is newer), by name: programs["big_malloc"]."""
    return build_all()
