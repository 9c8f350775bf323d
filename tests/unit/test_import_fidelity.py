"""What an import says is what its data says (issue 13, item 5): perf's brk bytes from the
break addresses, the program's own frames behind perf's "(inlined)" marks, whole stacks,
held bytes only where addresses exist, no invented process frames, heaptrace-events.d
output read as a full recording, empty aggregations, appended runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from heaptrace.analysis.report import build_report
from heaptrace.formats import dtrace_events
from heaptrace.formats.textinput import input_lines
from heaptrace.importers import import_file
from heaptrace.recording import Recording
from tests.helpers.cli import heaptrace
from tests.helpers.importing import data, read

# Real `perf record --call-graph dwarf` of examples/grow with sys_enter_brk and sys_exit_brk
# (tests/data/README.md); strace counts 52 brk calls growing the heap by 6,758,400 bytes.
GROW = data("perf", "grow-dwarf-exitbrk.perf")
STRACE_BRK_BYTES = 6_758_400


def perf_brk(*calls: tuple) -> str:
    """perf script text of brk calls: (tid, request, answer or None, leaf function)."""
    text = ""
    for i, (tid, request, answer) in enumerate(calls):
        text += (f"app 100/{tid} [000] 1.{i:06d}00: syscalls:sys_enter_brk: brk: "
                 f"0x{request:08x}\n\t  fdc47 __brk+0x7 (/usr/lib/libc.so.6)\n\n")
        if answer is not None:
            text += (f"app 100/{tid} [000] 1.{i:06d}50: syscalls:sys_exit_brk: 0x{answer:x}\n"
                     "\t  fdc47 __brk+0x7 (/usr/lib/libc.so.6)\n\n")
    return text


def test_perf_brk_bytes_come_from_the_breaks_and_equal_strace(tmp_path):
    out = str(tmp_path / "grow.db")
    assert import_file("perf", GROW, out) == []
    with Recording(out) as rec:
        brk = rec.totals()["brk"]
        meta = rec.meta()
    assert (brk.calls, brk.bytes, brk.failed) == (52, STRACE_BRK_BYTES, 0)
    assert "brk" not in meta.unknown_totals and meta.counts["brk"] == "bytes"
    doc = json.loads(heaptrace("histogram", out, "--json", check=True).stdout)
    assert doc["events"]["brk"]["bytes"] == STRACE_BRK_BYTES


def test_perf_brk_growth_query_answer_failure_and_exec(tmp_path):
    source = tmp_path / "brk.perf"
    base = 0x55_0000_0000
    source.write_text(perf_brk((100, 0, base), (100, base + 0x21000, base + 0x21000),
                               (101, base + 0x31000, base + 0x31000),  # a thread: same break
                               (100, base + 0x99000000, base + 0x31000),  # refused: ENOMEM
                               (100, base + 0x11000, base + 0x11000)))  # shrink
    out = str(tmp_path / "brk.db")
    import_file("perf", str(source), out)
    with Recording(out) as rec:
        brk = rec.totals()["brk"]
        sizes = [e.size for e in rec.events()]
    assert sizes == [0, 0x21000, 0x10000, 0, -0x20000]
    assert (brk.calls, brk.bytes, brk.released, brk.failed) == (5, 0x31000, 0x20000, 1)


def test_perf_brk_without_exits_knows_all_but_the_first_growth(tmp_path):
    source = tmp_path / "enter.perf"
    base = 0x55_0000_0000
    source.write_text(perf_brk((100, 0, None), (100, base + 0x21000, None),
                               (100, base + 0x41000, None)))
    out = str(tmp_path / "enter.db")
    result = heaptrace("import", "perf", str(source), "-o", out)
    assert result.returncode == 0
    assert "sys_exit_brk" in result.stderr and "1 process" in result.stderr
    with Recording(out) as rec:
        sizes = [e.size for e in rec.events()]
        meta = rec.meta()
    assert sizes == [0, 0, 0x20000]  # the first growth's break before it is not in the data
    assert meta.unknown_totals == {"brk": ["bytes"]}
    report = heaptrace("report", out, check=True).stdout
    assert "taken at least" in report and "brk bytes unknown" in report


def test_perf_import_report_names_own_frames_whole_stacks_and_no_held(tmp_path):
    out = str(tmp_path / "grow.db")
    import_file("perf", GROW, out)
    with Recording(out) as rec:
        report = build_report(rec)
    top = report.growth.rows[0]
    # perf marks the frames it expanded from inline info "(inlined)": buffer_append and
    # download_package are the program's, realloc's inlined helpers libc's.
    assert top.compact == ("main > download_package > buffer_append > __GI___libc_realloc > "
                           "__GI___mremap")
    assert report.quality is not None and report.quality.whole_share == 1.0
    assert not report.held.known and all(p.held is None for p in report.processes)
    text = heaptrace("report", out, check=True).stdout
    rows = [line for line in text.splitlines() if "[pid " in line]
    # held is the column after given back: "?" (reserved and file/shared follow)
    assert len(rows) == 1 and re.search(r"B\s+\?\s+\d", rows[0]) and "not known" in text


def test_flame_folded_of_a_dtrace_import_is_stackcollapse_pl(tmp_path):
    """No `[pid 0]` root: a recording without processes folds as FlameGraph does."""
    out = str(tmp_path / "run.db")
    import_file("dtrace", data("dtrace", "pkgin-brkbytes.txt"), out)
    golden = [line for line in read(data("dtrace", "pkgin-brkbytes.stackcollapse.folded"))
              if line]
    assert heaptrace("flame", out, "--folded", check=True).stdout.splitlines() == golden
    with Recording(out) as rec:
        assert build_report(rec).quality.whole_share == 1.0  # pkgin`_start


def test_import_dtrace_reads_heaptrace_events_output_as_the_backend_does(tmp_path):
    source = data("dtrace", "events-illumos.txt")
    out = str(tmp_path / "events.db")
    import_file("dtrace", source, out)
    backend = dtrace_events.to_imported(dtrace_events.parse_lines(source, input_lines(source)))
    with Recording(out) as rec:
        assert [(p.pid, p.ppid, p.comm) for p in rec.processes()] == [
            (p.pid, p.ppid, p.comm) for p in backend.processes]
        assert rec.event_count() == len(backend.samples)
        assert {k: (t.calls, t.bytes) for k, t in rec.totals().items()} == {
            k: (t.calls, t.bytes) for k, t in backend.totals.items()}
        report = build_report(rec)
    assert report.held.known and report.held.total > 0  # its calls carry addresses
    assert {p.pid for p in report.processes} == {4242, 4243}


def test_two_appended_runs_are_refused(tmp_path):
    text = Path(data("dtrace", "events-illumos.txt")).read_text()
    source = tmp_path / "twice.events"
    source.write_text(text + text)
    result = heaptrace("import", "dtrace", str(source), "-o", str(tmp_path / "t.db"))
    second = text.count("\n") + 1
    assert result.returncode == 1 and f"twice.events:{second}:" in result.stderr
    assert "-o appends" in result.stderr


def test_an_empty_aggregation_is_zero_calls_and_bytes(tmp_path):
    source = tmp_path / "mremap.stacks"
    source.write_text("\n\n")  # mremapbytes.d on a program that never calls mremap
    out = str(tmp_path / "empty.db")
    result = heaptrace("import", "dtrace", str(source), "-o", out)
    assert result.returncode == 1 and "--event" in result.stderr
    import_file("dtrace", str(source), out, kind="mremap")
    doc = json.loads(heaptrace("histogram", out, "--json", check=True).stdout)
    assert doc["events"]["mremap"]["calls"] == 0 and doc["events"]["mremap"]["bytes"] == 0
