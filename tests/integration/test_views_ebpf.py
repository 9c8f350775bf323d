"""The views on real eBPF recordings: the pkgin story (buffering a download, then streaming
it) told by `flame`, `flame --retained` and `diff`."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers.cli import heaptrace

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
BUFFER = "download_package"


@pytest.fixture(scope="module")
def grow(tmp_path_factory):
    subprocess.run(["make", "-s", "-C", str(EXAMPLES)], check=True)
    root = tmp_path_factory.mktemp("grow")
    for name, args in (("before", []), ("after", ["--stream"])):
        heaptrace("run", "-o", str(root / f"{name}.db"), "--", str(EXAMPLES / "grow"), *args,
                  check=True)
    return root


def folded(*args: str) -> dict:
    proc = heaptrace(*args)
    assert proc.returncode == 0, proc.stderr
    lines = [line.rsplit(" ", 1) for line in proc.stdout.splitlines()]
    return {stack: int(count) for stack, count in lines}


def bytes_under(stacks: dict, function: str) -> int:
    """Bytes of the stacks through `function` (or a specialised copy, e.g. f.constprop.0)."""
    return sum(n for stack, n in stacks.items()
               if any(f.split(".")[0] == function for f in stack.split(";")))


def test_growth_flame_blames_the_download_buffer(grow):
    stacks = folded("flame", str(grow / "before.db"), "--folded")
    assert bytes_under(stacks, BUFFER) > 0.8 * sum(stacks.values())
    assert all(stack.startswith("grow;_start;") for stack in stacks)


def test_retained_view_drops_what_was_freed(grow):
    held = folded("flame", str(grow / "before.db"), "--folded", "--retained")
    mapped = {stack: n for stack, n in held.items() if stack.endswith((";mmap", ";mremap"))}
    assert bytes_under(mapped, BUFFER) == 0  # the buffer's mapping was freed before exit
    assert bytes_under(held, BUFFER) > 0  # the heap that its first malloc grew was not
    assert bytes_under(held, "index_entries") > 0  # the index never was
    peak = folded("flame", str(grow / "before.db"), "--folded", "--at", "peak")
    assert bytes_under(peak, BUFFER) >= 48 << 20


def test_diff_shows_what_the_fix_removed(grow):
    proc = heaptrace("diff", str(grow / "before.db"), str(grow / "after.db"), "--folded")
    assert proc.returncode == 0, proc.stderr
    gone = [line for line in proc.stdout.splitlines() if BUFFER in line]
    assert gone and all(line.endswith(" 0") for line in gone)
    before_bytes = sum(int(line.split()[-2]) for line in gone)
    # The default picture shows what went away: the buffer, blue, at its before width.
    for args in ((), ("--negate",)):
        svg = heaptrace("diff", *args, str(grow / "before.db"), str(grow / "after.db"))
        frames = diff_frames(ET.fromstring(svg.stdout))
        buffer = [f for f in frames if f[0].split(".")[0] == BUFFER]
        assert buffer, [f[0] for f in frames]
        _, value, fill = buffer[0]
        assert value == before_bytes and fill.endswith(",255)") and not fill.startswith("rgb(255")


def diff_frames(svg: ET.Element) -> list:
    """(name, bytes, fill) of each frame of a heaptrace flame graph SVG."""
    ns = "{http://www.w3.org/2000/svg}"
    return [(g.find(ns + "title").text.rsplit(" (", 1)[0], int(g.get("data-w")),
             g.find(ns + "rect").get("fill")) for g in svg.iter(ns + "g") if g.get("data-w")]


def test_flame_svg_is_well_formed_with_our_frames(grow):
    proc = heaptrace("flame", str(grow / "before.db"), "--title", "grow")
    assert proc.returncode == 0, proc.stderr
    root = ET.fromstring(proc.stdout)
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any(t and t.startswith(BUFFER) for t in titles), titles[:20]
