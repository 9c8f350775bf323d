"""Where the probe files (BPF C, D scripts) are: package data in a wheel, probes/ in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from heaptrace.errors import HeaptraceError


def probe_dir() -> Path:
    installed = Path(str(resources.files("heaptrace"))) / "probes"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "probes"  # editable install / checkout


def probe_path(name: str) -> Path:
    path = probe_dir() / name
    if not path.is_file():
        raise HeaptraceError(f"probe file missing from the installation: {name}")
    return path
