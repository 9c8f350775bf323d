"""Integration tests run the real CLI as root with real eBPF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAPTRACE = [sys.executable, "-m", "heaptrace"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _require_root():
    # These tests are the point of the project: never skip them silently.
    assert os.geteuid() == 0, "integration tests need root (real eBPF); run them with sudo"


def heaptrace(*args: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([*HEAPTRACE, *args], **kwargs)


def histogram_json(path: Path) -> dict:
    proc = heaptrace("histogram", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
