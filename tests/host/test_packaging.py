"""Every probe file and renderer asset ships in the wheel, where the code looks for it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_wheel_carries_every_probe_and_asset(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("heaptrace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    probes = sorted(p.name for p in (ROOT / "probes").iterdir())
    assert probes and all(f"heaptrace/probes/{name}" in names for name in probes)
    assets = sorted(p.name for p in (ROOT / "heaptrace/render/assets").iterdir())
    assert all(f"heaptrace/render/assets/{name}" in names for name in assets)
