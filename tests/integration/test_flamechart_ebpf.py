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


def test_flame_chart_keeps_the_programs_calls_in_time_order(mmap_ops):
    chart = lines("flame", str(mmap_ops), "--flamechart", "--folded")
    counts = [count for _, count in chart]
    first, grow, last = counts.index(16 * P), counts.index(26 * P), counts.index(8 * P)
    assert first < grow < last  # the order main made the calls in
    assert chart[first][0] == chart[last][0] != chart[grow][0]
    assert all(a[0] != b[0] for a, b in zip(chart, chart[1:]))  # neighbours merged
    folded = dict(lines("flame", str(mmap_ops), "--folded"))
    assert folded[chart[first][0]] == 24 * P  # the flame graph adds the two mmaps up
    assert sum(folded.values()) == sum(counts)


def test_flame_chart_svg_from_a_real_recording(mmap_ops):
    proc = heaptrace("flame", str(mmap_ops), "--flamechart", "--minwidth", "0")
    assert proc.returncode == 0, proc.stderr
    doc = ET.fromstring(proc.stdout)
    assert doc.find(f"{SVG}text[@id='title']").text == "Memory Flame Chart"
    frames = list(doc.find(f"{SVG}g[@id='frames']"))
    titles = [g.find(SVG + "title").text for g in frames]
    assert titles[0].startswith("all (") and any(t.startswith("mmap_ops (") for t in titles)
    assert all(" s)" in t for t in titles)  # every frame says when, in seconds
    chart = lines("flame", str(mmap_ops), "--flamechart", "--folded")
    stack = next(s for s, count in chart if count == 16 * P).split(";")
    leaves = sorted((int(g.get("data-x")), int(g.get("data-w"))) for g in frames
                    if g.get("data-d") == str(len(stack))
                    and g.find(SVG + "title").text.startswith(stack[-1] + " ("))
    assert [w for _, w in leaves] == [16 * P, 8 * P]  # two frames, not one of 24 pages
    assert leaves[1][0] - leaves[0][0] == 16 * P + 26 * P  # the mremap between them
