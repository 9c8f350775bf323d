"""`perf script` output and folded files -> recording."""

from __future__ import annotations

import os

import pytest

from heaptrace.errors import ImportFormatError
from heaptrace.importers import import_file
from heaptrace.recording import Recording
from tests.helpers.cli import heaptrace
from tests.helpers.importing import data, fold, read


def test_perf_stacks_fold_as_stackcollapse_perf(tmp_path):
    """Weighted by calls, the folding is stackcollapse-perf.pl's own output (golden)."""
    out = str(tmp_path / "run.db")
    import_file("perf", data("perf", "grow-callchain.perf"), out)
    golden = [line for line in read(data("perf", "grow-callchain.stackcollapse-perf.folded"))
              if line]
    assert fold(out, "calls") == golden


def test_perf_bytes_are_the_len_argument(tmp_path):
    out = str(tmp_path / "run.db")
    import_file("perf", data("perf", "grow-callchain.perf"), out)
    lens = {"mmap": [], "munmap": []}
    for line in read(data("perf", "grow-callchain.perf")):
        for kind in lens:
            if f"sys_enter_{kind}:" in line:
                lens[kind].append(int(line.split("len: ")[1].split(",")[0], 16))
    with Recording(out) as rec:
        totals, meta = rec.totals(), rec.meta()
        events = list(rec.events())
    for kind, values in lens.items():
        assert totals[kind].bytes == sum(values)
        assert sorted(e.size for e in events if e.kind == kind) == sorted(values)
        assert sum(totals[kind].buckets.values()) == len(values)
    # brk bytes come from the breaks; this file has no sys_exit_brk, so the break before
    # the first growth (after glibc's unanswered brk(0)) is not in it.
    assert meta.counts == {"brk": "bytes", "mmap": "bytes", "munmap": "bytes"}
    assert meta.unknown_totals == {"brk": ["bytes"]} and meta.brk_growth_unknown == 1
    assert [e.size for e in events if e.kind == "brk"] == [0, 0, 0, 0x20000]
    assert [e.ts_ns for e in events] == sorted(e.ts_ns for e in events)
    assert all(e.fd in (-1, 3) for e in events if e.kind == "mmap")


def test_perf_without_callchains_folds_each_sample_to_its_command(tmp_path):
    out = str(tmp_path / "run.db")
    import_file("perf", data("perf", "grow-nocallchain.perf"), out)
    samples = [line for line in read(data("perf", "grow-nocallchain.perf")) if line.strip()]
    assert fold(out, "calls") == [f"grow {len(samples)}"]


def test_perf_other_events_need_event_option(tmp_path):
    source = tmp_path / "cycles.perf"
    source.write_text("app 12/12 [000] 1.000001:     250000 cycles:u: \n"
                      "\t  401126 main+0x16 (/tmp/app)\n\n")
    with pytest.raises(ImportFormatError, match="--event"):
        import_file("perf", str(source), str(tmp_path / "a.db"))
    import_file("perf", str(source), str(tmp_path / "b.db"), kind="brk")
    assert fold(str(tmp_path / "b.db"), "calls") == ["app;main 250000"]


@pytest.mark.parametrize("text, line", [
    ("grow 1 [000] 1.0: syscalls:sys_enter_brk: brk: 0x0\nthis is not perf\n", 2),
    ("\t  401126 main+0x16 (/tmp/app)\n", 1),
    ("# only comments\n", 1),
])
def test_perf_malformed(tmp_path, text, line):
    source = tmp_path / "in.perf"
    source.write_text(text)
    with pytest.raises(ImportFormatError) as err:
        import_file("perf", str(source), str(tmp_path / "out.db"))
    assert err.value.line == line
    assert not os.path.exists(tmp_path / "out.db")


def test_folded_round_trip(tmp_path):
    source = tmp_path / "in.folded"
    lines = ["a;b;mmap 4096", "a;c;mmap 8192", "a;b;mmap 4096"]
    source.write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "run.db")
    import_file("folded", str(source), out)
    assert fold(out) == ["a;b;mmap 8192", "a;c;mmap 8192"]
    with Recording(out) as rec:
        assert rec.totals()["mmap"].bytes == 16384
        assert rec.meta().unknown_totals == {"mmap": ["calls"]}


def test_folded_two_columns_pick_one(tmp_path):
    source = tmp_path / "diff.folded"
    source.write_text("x;y 10 30\nx;z 5 0\n")
    after, before = str(tmp_path / "after.db"), str(tmp_path / "before.db")
    import_file("folded", str(source), after, kind="brk")
    import_file("folded", str(source), before, kind="brk", column=1)
    assert fold(after) == ["x;y 30", "x;z 0"]
    assert fold(before) == ["x;y 10", "x;z 5"]


@pytest.mark.parametrize("text, line, words", [
    ("a;b;brk 12\na;c;brk\n", 2, "folded stack"),
    ("a;brk 1.5\n", 1, "whole-number"),
    ("a;brk 1 2\na;brk 3\n", 2, "count(s)"),
    ("\n\n", 1, "none"),
    ("a;malloc 3\n", 1, "--event"),
])
def test_folded_malformed(tmp_path, text, line, words):
    source = tmp_path / "in.folded"
    source.write_text(text)
    with pytest.raises(ImportFormatError) as err:
        import_file("folded", str(source), str(tmp_path / "out.db"))
    assert err.value.line == line and words in str(err.value)
    assert os.listdir(tmp_path) == ["in.folded"]


def test_import_command_prints_wrote_and_errors_are_one_line(tmp_path):
    out = str(tmp_path / "run.db")
    done = heaptrace("import", "perf", data("perf", "grow-callchain.perf"), "-o", out)
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "heaptrace: note: brk bytes are not known in full: the break before the first growth "
        "of 1 process(es) is not in the data (record syscalls:sys_exit_brk too: it gives "
        "each call's new break)", f"Wrote {out}"]
    bad = tmp_path / "bad.folded"
    bad.write_text("no count here\n")
    done = heaptrace("import", "folded", str(bad), "-o", str(tmp_path / "x.db"), "--event", "brk")
    assert done.returncode == 1
    assert done.stderr.startswith(f"heaptrace: error: {bad}:1: expected a folded stack")
    assert done.stderr.count("\n") == 1
    assert heaptrace("histogram", out, check=True).stdout.count("Total number of") == 3
