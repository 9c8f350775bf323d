"""`flame --flamechart` on a real eBPF recording: mmap_ops maps 16 pages, grows a piece of
them by mremap (+26 pages), then maps 8 pages from the same function. The flame graph adds
the two mmaps up; the flame chart keeps them apart, on both sides of the mremap."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.helpers.cli import heaptrace

P = 4096
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def mmap_ops(programs, tmp_path_factory):
    path = tmp_path_factory.mktemp("chart") / "mmap_ops.db"
    proc = heaptrace("run", "-o", str(path), "--", str(programs["mmap_ops"]))
    assert proc.returncode == 0, proc.stderr
    return path


def lines(*args: str) -> list:
    proc = heaptrace(*args)
    assert proc.returncode == 0, proc.stderr
    return [(stack, int(count)) for stack, count in
            (line.rsplit(" ", 1) for line in proc.stdout.splitlines())]


# Every call (--event all; growth would leave out the file mapping): main's calls in order are
# mmap 16 P, munmap 4 P and 6 P (one stack: merged), mremap +26 P, munmap 8 P, mmap 8 P (the
# file), munmap 8 P. The loader's calls come first, on stacks of their own.
MAIN_CALLS = [16 * P, 10 * P, 26 * P, 8 * P, 8 * P, 8 * P]


def mains(chart: list) -> list:
    return [(stack, count) for stack, count in chart if ";main;" in stack]


def test_flame_chart_keeps_the_programs_calls_in_time_order(mmap_ops):
    chart = lines("flame", str(mmap_ops), "--event", "all", "--flamechart", "--folded")
    own = mains(chart)
    assert [count for _, count in own] == MAIN_CALLS  # the order main made the calls in
    assert own[0][0] == own[4][0] != own[2][0]  # the two mmaps, the mremap between
    assert all(a[0] != b[0] for a, b in zip(chart, chart[1:]))  # neighbours merged
    folded = dict(lines("flame", str(mmap_ops), "--event", "all", "--folded"))
    assert folded[own[0][0]] == 24 * P  # the flame graph adds the two mmaps up
    assert sum(folded.values()) == sum(count for _, count in chart)


def test_flame_chart_svg_from_a_real_recording(mmap_ops):
    proc = heaptrace("flame", str(mmap_ops), "--event", "all", "--flamechart", "--minwidth", "0")
    assert proc.returncode == 0, proc.stderr
    doc = ET.fromstring(proc.stdout)
    assert doc.find(f"{SVG}text[@id='title']").text == "Memory Flame Chart"
    frames = list(doc.find(f"{SVG}g[@id='frames']"))
    titles = [g.find(SVG + "title").text for g in frames]
    assert titles[0].startswith("all (") and any(t.startswith("mmap_ops (") for t in titles)
    assert all(" s)" in t for t in titles)  # every frame says when, in seconds
    chart = lines("flame", str(mmap_ops), "--event", "all", "--flamechart", "--folded")
    stack = mains(chart)[0][0].split(";")
    leaves = sorted((int(g.get("data-x")), int(g.get("data-w"))) for g in frames
                    if g.get("data-d") == str(len(stack))
                    and g.find(SVG + "title").text.startswith(stack[-1] + " ("))
    assert [w for _, w in leaves] == [16 * P, 8 * P]  # two frames, not one of 24 pages
    assert leaves[1][0] - leaves[0][0] == sum(MAIN_CALLS[:4])  # the calls between them
