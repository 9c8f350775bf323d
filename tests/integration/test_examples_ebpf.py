"""`examples/render.py` on a real eBPF recording of the liquidsoap example (the script behind
`make example-liquidsoap` and `make example-pages`): the recording attributes each mapping to the
code that made it, with the sizes the program asked for, and the page is filled with the views."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import heaptrace

ROOT = Path(__file__).resolve().parent.parent.parent
MIB = 1 << 20


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    subprocess.run(["make", "-s", "-C", str(ROOT / "examples")], check=True)
    build = tmp_path_factory.mktemp("examples")
    out = build / "pages"
    heaptrace_bin = str(Path(sys.executable).parent / "heaptrace")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "render.py"), "liquidsoap",
         "--build", str(build), "--out", str(out), "--pages"],
        capture_output=True, text=True, env={"HEAPTRACE": heaptrace_bin, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return build / "liquidsoap" / "liquidsoap.db", out


def folded(recording: Path, *args: str) -> dict[str, int]:
    proc = heaptrace("flame", str(recording), "--folded", *args)
    assert proc.returncode == 0, proc.stderr
    sums: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        stack, count = line.rsplit(" ", 1)
        sums[stack] = sums.get(stack, 0) + int(count)
    return sums


def bytes_through(sums: dict[str, int], frame: str, leaf: str) -> int:
    """Bytes of the stacks through FRAME (a clone such as FRAME.constprop.0 too) ending in LEAF."""
    return sum(
        n
        for s, n in sums.items()
        if any(f.split(".")[0] == frame for f in s.split(";")) and s.endswith(";" + leaf)
    )


def test_each_mapping_is_attributed_to_the_code_that_made_it(rendered):
    recording, _ = rendered
    mapped = folded(recording, "--event", "mmap")  # every mapping, whatever its class
    assert bytes_through(mapped, "read_library", "mmap") == 64 * MIB  # the file, mapped whole
    assert bytes_through(mapped, "share_buffer", "mmap") == 8 * MIB  # the shared buffer
    sums = folded(recording)  # growth: committed memory only, neither of them
    assert bytes_through(sums, "read_library", "mmap") == 0
    assert bytes_through(sums, "share_buffer", "mmap") == 0
    # 384 frames of 64 KiB through malloc: the heap grows by brk by at least their sum
    heap = bytes_through(sums, "decode_frames", "brk")
    assert 24 * MIB <= heap < 26 * MIB


def test_the_page_is_filled_with_the_views(rendered):
    _, out = rendered
    page = (out / "liquidsoap.md").read_text()
    assert "{{" not in page
    for svg in ("liquidsoap-flame.svg", "liquidsoap-mmap.svg", "liquidsoap-held.svg",
                "liquidsoap-timeline.svg"):
        assert f"]({svg})" in page
        assert (out / svg).read_text().lstrip().startswith(("<?xml", "<svg"))
    assert "read_library" in (out / "liquidsoap-mmap.svg").read_text()
    # the report excerpt is the real report (the file and shared mappings apart), and the
    # program's own RSS line is there
    assert "file/shared" in page and "decode_frames" in page
    assert "rss total=" in page
    # a view this heaptrace cannot draw yet is said so, not left out silently
    if not (out / "liquidsoap-resident.svg").exists():
        assert "not drawn yet" in page
