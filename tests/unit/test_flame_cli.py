"""`heaptrace flame` and `heaptrace diff` through the real command line."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from heaptrace.analysis.replay import DEFAULT_PAGE_SIZE as PAGE
from heaptrace.formats.folded import parse_folded
from tests.helpers.cli import heaptrace

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def recording(synth):
    synth.process(1, "pkgin")
    synth.mmap(1, 0x10000, 8 * PAGE, stack=["main", "pkg_install", "xmalloc"])
    synth.mmap(2, 0x90000, 2 * PAGE, stack=["main", "parse", "xmalloc"])
    synth.munmap(3, 0x90000, 2 * PAGE)
    synth.brk(4, 0x601000, PAGE, stack=["main", "Foo<int>::grow&"])
    synth.open().close()
    return synth.writer.path


def test_flame_writes_an_svg_to_stdout(recording):
    out = heaptrace("flame", recording, "--title", "T <1>", "--colors", "hot", check=True).stdout
    doc = ET.fromstring(out)
    assert doc.find(f"{SVG}text[@id='title']").text == "T <1>"
    titles = [t.text for t in doc.iter(f"{SVG}title")]
    assert any(t.startswith("Foo<int>::grow& (4,096 bytes, 4.0 KiB, ") for t in titles)
    subtitle = doc.find(f"{SVG}text[@id='subtitle']").text
    assert "committed growth (brk+mmap+mremap+mprotect)" in subtitle


def test_folded_retained_and_peak(recording):
    growth = parse_folded(heaptrace("flame", recording, "--folded", check=True).stdout.splitlines())
    held = parse_folded(heaptrace("flame", recording, "--retained", "--folded", check=True).stdout
                        .splitlines())
    peak = parse_folded(heaptrace("flame", recording, "--at", "peak", "--folded",
                                  "--no-process-names", check=True).stdout.splitlines())
    assert growth[("pkgin", "main", "parse", "xmalloc")] == 2 * PAGE
    assert ("pkgin", "main", "parse", "xmalloc") not in held
    assert sum(held.values()) == 9 * PAGE
    assert peak == {("main", "pkg_install", "xmalloc"): 8 * PAGE,
                    ("main", "parse", "xmalloc"): 2 * PAGE}


def test_flame_reads_folded_files_too(tmp_path):
    folded = tmp_path / "in.folded"
    folded.write_text("a;b 10\na;c 30\n")
    doc = ET.fromstring(heaptrace("flame", str(folded), check=True).stdout)
    assert len(list(doc.find(f"{SVG}g[@id='frames']"))) == 4


def test_diff_of_recordings_and_folded_files(recording, tmp_path):
    before = tmp_path / "before.folded"
    before.write_text("pkgin;main;pkg_install;xmalloc 65536\npkgin;main;gone 100\n")
    lines = heaptrace("diff", "--folded", str(before), recording, check=True).stdout.splitlines()
    assert "pkgin;main;pkg_install;xmalloc 65536 32768" in lines
    assert "pkgin;main;gone 100 0" in lines
    doc = ET.fromstring(heaptrace("diff", str(before), recording, check=True).stdout)
    fills = {g.find(f"{SVG}title").text.split(" (")[0]: g.find(f"{SVG}rect").get("fill")
             for g in doc.find(f"{SVG}g[@id='frames']")}
    assert fills["pkg_install"].startswith("rgb(") and fills["pkg_install"].endswith(",255)")
    assert fills["parse"].startswith("rgb(255,")
    assert fills["gone"].endswith(",255)")  # went away: drawn in blue, at its before width
    assert "gone (100 bytes" in heaptrace("diff", str(before), recording, check=True).stdout
    negated = heaptrace("diff", "--negate", str(before), recording, check=True).stdout
    assert "gone (100 bytes" in negated


def test_errors_are_one_line(tmp_path, recording):
    missing = heaptrace("flame", str(tmp_path / "nope.db"), check=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "no recording at" in missing.stderr
    bad = tmp_path / "bad.folded"
    bad.write_text("not a folded line\n")
    wrong = heaptrace("diff", str(bad), recording, check=False)
    assert wrong.returncode == 1 and f"{bad}:1:" in wrong.stderr
    usage = heaptrace("flame", recording, "--retained", "--event", "munmap", check=False)
    assert usage.returncode == 2 and "--retained shows allocations" in usage.stderr
    good = tmp_path / "good.folded"
    good.write_text("a;b 1\n")
    folded_usage = heaptrace("flame", str(good), "--retained", check=False)
    assert folded_usage.returncode == 2 and "is a folded file" in folded_usage.stderr
    minwidth = heaptrace("flame", recording, "--minwidth", "wide", check=False)
    assert minwidth.returncode == 2 and "--minwidth" in minwidth.stderr
