"""heaptrace timeline: buckets of taken / given back / held / RSS on synthetic recordings."""

from __future__ import annotations

import io
import json
import os
import tempfile
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.analysis.replay import DEFAULT_PAGE_SIZE as PAGE
from heaptrace.analysis.retained import retained
from heaptrace.analysis.stacks import Selection
from heaptrace.analysis.timeline import nice_interval, own_frames, timeline
from heaptrace.errors import UsageError
from heaptrace.events import Frame, Rss
from heaptrace.recording import Recording
from heaptrace.render.timeline import EMPTY, render_json, render_svg, render_text
from tests.helpers.cli import heaptrace
from tests.helpers.synth import Synth

SVG = "{http://www.w3.org/2000/svg}"
A, B, C = ["main", "load_index"], ["main", "download_package", "xmalloc"], ["main", "trim"]
SEL = Selection(process_names=False)


def phases(s: Synth) -> None:
    """Grows in the first second, frees in the second, grows again in the third; every
    kind of call, partial unmaps, a moving mremap and a brk shrink; nothing on a bucket
    boundary (0.25 s buckets)."""
    s.process(1, "pkgin")
    s.mmap(100, 0x10000, 16 * PAGE, stack=A)
    s.brk(120, 0x610000, 4 * PAGE, stack=B)
    s.mmap(300, 0x100000, 64 * PAGE, stack=B)
    s.mremap(600, 0x100000, 64 * PAGE, 0x900000, 96 * PAGE, stack=B)
    s.munmap(1100, 0x900000, 32 * PAGE)  # a partial unmap: the front of the moved range
    s.munmap(1300, 0x900000 + 32 * PAGE, 64 * PAGE)
    s.brk(1400, 0x60e000, -2 * PAGE, stack=C)
    s.mremap(1600, 0x10000, 16 * PAGE, 0x10000, 8 * PAGE, stack=C)
    s.munmap(1700, 0x500000, 4 * PAGE)  # never mapped by a traced call: given, not held
    s.mmap(2100, 0x200000, 128 * PAGE, stack=B)
    s.mmap(2700, 0x400000, 3 * PAGE, stack=A)
    s.writer.set_meta(end_ns=s.ts(3000), command_line="pkgin install <x>")


MIB = 1 << 20


def rss_rows(s: Synth, rows) -> None:
    """(ms, pid, anon MiB) rows: each pid's RSS at that moment."""
    for ms, pid, anon in rows:
        s.rss(ms, pid, anon * MIB)


@pytest.fixture
def rec(synth):
    phases(synth)
    return synth.open()


def test_buckets_add_up_to_the_calls(rec):
    tl = timeline(rec, 0.25)
    events = list(rec.events())
    grown = sum(e.size for e in events if e.kind != "munmap" and e.size > 0)
    shrunk = sum(-e.size for e in events if e.kind != "munmap" and e.size < 0)
    unmapped = sum(e.size for e in events if e.kind == "munmap")
    assert sum(b.taken for b in tl.buckets) == tl.taken == grown
    assert sum(b.given for b in tl.buckets) == tl.given == shrunk + unmapped
    assert sum(b.calls for b in tl.buckets) == tl.calls == len(events)
    assert len(tl.buckets) == 12 and tl.buckets[-1].end_s == 3.0


def test_held_rises_falls_and_rises(rec):
    held = [b.held for b in timeline(rec, 1.0).buckets]
    assert held[0] > held[1] < held[2]


def test_held_in_each_bucket_is_what_the_retained_replay_holds_then(rec):
    for b in timeline(rec, 0.25).buckets:
        sel = Selection(process_names=False, end_s=b.end_s - 1e-6)
        assert b.held == retained(rec, sel).held


def test_held_at_the_end_is_the_flame_retained_total(rec):
    tl = timeline(rec)
    assert tl.buckets[-1].held == tl.held_at_exit == retained(rec, SEL).held > 0


def test_an_exec_gives_the_image_back_but_not_at_exit(synth):
    synth.process(7, "sh")
    synth.mmap(100, 0x10000, 8 * PAGE, pid=7, stack=A)
    synth.process(7, "pkgin", at_ms=500)  # exec: the old image is gone
    synth.mmap(700, 0x20000, 2 * PAGE, pid=7, stack=B)
    synth.writer.end_process(7, synth.ts(900))
    synth.writer.set_meta(end_ns=synth.ts(1000))
    rec = synth.open()
    tl = timeline(rec, 0.25)
    assert [b.held for b in tl.buckets] == [8 * PAGE, 8 * PAGE, 2 * PAGE, 0]
    assert tl.held_at_exit == retained(rec, SEL).held == 10 * PAGE


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["mmap", "munmap", "brk"]),
                          st.integers(0, 15), st.integers(1, 6)), max_size=25))
def test_held_at_the_end_matches_retained_for_any_calls(calls):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rec.db")
        s, brk = Synth(path), 0x600000
        for i, (kind, slot, pages) in enumerate(calls):
            addr = 0x100000 + slot * PAGE
            if kind == "mmap":
                s.mmap(10 * i + 5, addr, pages * PAGE, stack=A)
            elif kind == "munmap":
                s.munmap(10 * i + 5, addr, pages * PAGE)
            else:
                delta = (pages - 3) * PAGE
                brk += delta
                s.brk(10 * i + 5, brk, delta, stack=B)
        s.close()
        with Recording(path) as rec:
            tl = timeline(rec)
            assert tl.buckets[-1].held == tl.held_at_exit == retained(rec, SEL).held


def test_rss_is_the_largest_sum_in_each_bucket_carried_over_quiet_ones(synth):
    phases(synth)
    rss_rows(synth, [(10, 1, 30), (20, 2, 1), (260, 1, 10), (270, 2, 25), (1010, 1, 6),
                     (1020, 2, 5)])
    tl = timeline(synth.open(), 0.5)
    # 0-0.5 s: 30+1, then 10+1, then 10+25; 0.5-1.0: nothing moved (35 carried);
    # 1.0-1.5: 35 at its start, then 6+25 and 6+5
    assert [b.rss for b in tl.buckets[:4]] == [35 * MIB, 35 * MIB, 35 * MIB, 11 * MIB]
    assert tl.buckets[0].rss_split == Rss(35 * MIB)
    assert tl.peak_rss == 35 * MIB  # no exact peak in meta: the largest point


def test_rss_split_and_the_probes_exact_peak(synth):
    phases(synth)
    synth.rss(10, 1, 10 * MIB, 4 * MIB, 1 * MIB)
    synth.rss(900, 1, 2 * MIB, 4 * MIB, 1 * MIB)
    synth.writer.set_meta(peak_rss=40 * MIB, peak_rss_ns=synth.ts(600),
                          peak_rss_classes={"anon": 35 * MIB, "file": 4 * MIB, "shmem": MIB})
    tl = timeline(synth.open(), 0.25)
    assert tl.buckets[0].rss == 15 * MIB and tl.buckets[0].rss_split == Rss(10 * MIB, 4 * MIB, MIB)
    assert tl.buckets[2].rss == 40 * MIB  # the peak fell between two recorded points
    assert (tl.peak_rss, tl.peak_rss_s) == (40 * MIB, 0.6)
    assert tl.peak_rss_split == Rss(35 * MIB, 4 * MIB, MIB)
    out = io.StringIO()
    render_text(tl, out)
    assert "peak RSS 40.0 MiB at 0.6 s: anon 35.0 MiB, file 4.0 MiB, shmem 1.0 MiB" \
        in out.getvalue()


def test_rss_of_one_pid(synth):
    phases(synth)
    rss_rows(synth, [(10, 1, 30), (20, 2, 1), (260, 1, 10), (270, 2, 25)])
    tl = timeline(synth.open(), 0.5, pid=2)
    assert tl.buckets[0].rss == 25 << 20 == tl.peak_rss
    assert tl.calls == 0  # pid 2 made no calls


def test_an_exec_replaces_the_space_and_an_end_empties_it(synth):
    synth.rss(10, 1, 50 * MIB, space=100)
    synth.rss(300, 1, 0, space=100, why="end")  # the image an exec replaced
    synth.rss(310, 1, 3 * MIB, space=200, why="start")
    synth.writer.set_meta(end_ns=synth.ts(1000))
    tl = timeline(synth.open(), 0.25)
    assert [b.rss for b in tl.buckets] == [50 * MIB, 50 * MIB, 3 * MIB, 3 * MIB]


def test_resident_growth_by_bucket_and_class(synth):
    phases(synth)
    synth.resident(100, 8 * MIB, "anon", stack=A)
    synth.resident(150, 2 * MIB, "file", stack=B)
    synth.resident(2600, MIB, "shmem", stack=A)
    rec = synth.open()
    tl = timeline(rec, 0.25)
    assert tl.buckets[0].resident == 10 * MIB
    assert tl.buckets[0].resident_split == Rss(8 * MIB, 2 * MIB, 0)
    assert tl.buckets[10].resident == MIB
    assert (tl.resident, tl.resident_split) == (11 * MIB, Rss(8 * MIB, 2 * MIB, MIB))
    assert tl.calls == 11  # the calls only: resident sums are not calls
    calls = [e for e in rec.events() if e.kind != "resident"]
    assert tl.taken == sum(e.size for e in calls if e.kind != "munmap" and e.size > 0)


def test_most_growth_names_the_stacks_that_grew_the_held_bytes(rec):
    tl = timeline(rec, 0.25)
    bucket = tl.buckets[tl.growth_bucket]
    assert bucket.start_s == 2.0  # 128 pages at 2.1 s
    assert tl.growth == 128 * PAGE
    assert [(g.stack, g.nbytes) for g in tl.growers] == [(";".join(B), 128 * PAGE)]
    out = io.StringIO()
    render_text(tl, out)
    assert f"most growth at 2.00-2.25 s (held +512.0 KiB): 512.0 KiB from {';'.join(B)}" \
        in out.getvalue()


def test_own_frames_are_the_leaf_most_frames_outside_libraries():
    frames = [Frame("mmap", "libc.so.6"), Frame("malloc", "libc.so.6"), Frame("xmalloc", "pkgin"),
              Frame("fetch", "pkgin"), Frame("download", "pkgin"), Frame("main", "pkgin")]
    assert own_frames(frames) == "download;fetch;xmalloc;..."
    assert own_frames(frames[:2]) == "malloc;mmap"
    assert own_frames(()) == "[no stack]"


def test_nice_intervals():
    assert nice_interval(10.0) == 0.25
    assert nice_interval(100.0) == 2.5
    assert nice_interval(3600.0) == 100.0
    assert nice_interval(0.0) == 0.001


def test_interval_must_be_positive_and_not_too_fine(rec):
    with pytest.raises(UsageError, match="more than 0"):
        timeline(rec, 0)
    with pytest.raises(UsageError, match="buckets"):
        timeline(rec, 1e-6)


def svg_of(tl) -> str:
    out = io.StringIO()
    render_svg(tl, out)
    return out.getvalue()


def test_svg_is_well_formed_with_a_hover_title_per_bucket(rec):
    tl = timeline(rec, 0.25)
    doc = ET.fromstring(svg_of(tl))
    titles = [r.find(f"{SVG}title").text for r in doc.iter(f"{SVG}rect")
              if r.get("class") == "hover"]
    assert len(titles) == len(tl.buckets)
    assert titles[4].startswith("1.00-1.25 s: taken 0 B, given back 128.0 KiB")
    lines = {p.get("class"): p for p in doc.iter(f"{SVG}polyline")}
    assert len(lines["held"].get("points").split()) == len(tl.buckets) + 1


def test_hostile_names_are_escaped_in_the_svg(synth):
    evil = ["main", "<script>alert(1)</script>", "a&b \"q\" 'x' \x01"]
    synth.mmap(100, 0x10000, 4 * PAGE, stack=evil)
    synth.writer.set_meta(command_line="</text><script>x</script>")
    out = svg_of(timeline(synth.open()))
    assert "<script>" not in out
    doc = ET.fromstring(out)
    texts = "".join(t.text or "" for t in doc.iter(f"{SVG}text"))
    assert "</text><script>x</script>" in texts
    assert "<script>alert(1)</script>;a&b \"q\" 'x' \ufffd" in doc.find(f"{SVG}desc").text


def test_an_empty_recording_says_so(synth):
    tl = timeline(synth.open())
    assert tl.empty and len(tl.buckets) == 1
    text = io.StringIO()
    render_text(tl, text)
    assert EMPTY in text.getvalue()
    doc = ET.fromstring(svg_of(tl))
    assert EMPTY in [t.text for t in doc.iter(f"{SVG}text")]
    data = io.StringIO()
    render_json(tl, data)
    assert json.loads(data.getvalue())["empty"] is True


def test_json_has_every_bucket(rec):
    out = io.StringIO()
    tl = timeline(rec, 0.5)
    render_json(tl, out)
    data = json.loads(out.getvalue())
    assert [b["held"] for b in data["buckets"]] == [b.held for b in tl.buckets]
    assert data["held_at_exit"] == tl.held_at_exit
    assert data["growers"][0]["stack"] == ";".join(B)


def test_the_command_line(rec):
    path = rec.path
    rec.close()
    table = heaptrace("timeline", path, "--interval", "1")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split() == ["time", "(s)", "taken", "given", "back",
                                                    "held", "RSS", "resident", "calls"]
    assert ET.fromstring(heaptrace("timeline", path, "--svg").stdout).tag == f"{SVG}svg"
    assert json.loads(heaptrace("timeline", path, "--json", "--pid", "1").stdout)["pid"] == 1
    both = heaptrace("timeline", path, "--svg", "--json")
    assert both.returncode != 0 and "Traceback" not in both.stderr
