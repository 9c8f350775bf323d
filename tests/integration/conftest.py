"""The integration tier: the real CLI as root with real eBPF (marked `integration`)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _require_root():
    # These tests are the point of the project: never skip them silently.
    assert os.geteuid() == 0, "integration tests need root (real eBPF); run them with sudo"
