"""`heaptrace report` on synthetic recordings: rankings, shares, processes, the compact stack
rule, imported (totals only) and empty recordings, and the text and JSON output."""

from __future__ import annotations

import io
import json

import pytest

from heaptrace.analysis.report import build_report, compact_stack
from heaptrace.analysis.retained import retained
from heaptrace.analysis.stacks import Selection, fold
from heaptrace.errors import UsageError
from heaptrace.events import Event, Frame, KindTotals, Rss
from heaptrace.recording import Recording, RecordingWriter
from heaptrace.render.report import WIDTH, render_json, render_text
from tests.helpers.cli import heaptrace

KIB = 1024
MIB = 1024 * KIB
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
PROG = "/usr/bin/fetch"


def frames(*spec: str) -> tuple:
    """Leaf-first frames from "name@lib" (libc) or "name" (the program)."""
    return tuple(Frame(n.split("@")[0], LIBC if n.endswith("@lib") else PROG, 0x1000 + i)
                 for i, n in enumerate(spec))


DOWNLOAD = frames("mremap@lib", "realloc@lib", "buffer_append.constprop.0",
                  "download_package.isra.0", "main", "__libc_start_main@lib", "_start")


# --- the compact stack rule --------------------------------------------------------------

def test_compact_stack_names_own_frames_the_allocator_and_the_syscall():
    assert compact_stack(DOWNLOAD) == "main > download_package > buffer_append > realloc > mremap"


def test_compact_stack_skips_allocator_internals_and_keeps_three_own_frames():
    stack = frames("brk@lib", "sbrk@lib", "sysmalloc@lib", "malloc@lib", "leaf", "mid",
                   "upper", "main", "_start")
    assert compact_stack(stack) == "upper > mid > leaf > malloc > brk"


def test_compact_stack_when_the_program_makes_the_call_itself():
    assert compact_stack(frames("grow_heap", "main", "_start")) == "main > grow_heap"
    assert compact_stack(frames("mmap@lib", "main", "_start")) == "main > mmap"


def test_compact_stack_of_library_only_and_empty_stacks():
    stack = frames("mmap@lib", "_dl_map_object_from_fd@lib", "_dl_map_object@lib",
                   "openaux@lib", "_start@lib")
    assert compact_stack(stack) == "_dl_map_object > _dl_map_object_from_fd > mmap"
    assert compact_stack(()) == "[no stack]"


def test_compact_stack_drops_dtrace_module_prefixes():
    stack = (Frame("libc.so.1`_brk_unlocked", "libc.so.1"), Frame("libc.so.1`malloc", "libc.so.1"),
             Frame("pkgin`download_pkg", "pkgin"), Frame("pkgin`main", "pkgin"))
    assert compact_stack(stack) == "main > download_pkg > malloc > _brk_unlocked"


# --- synthetic recordings ----------------------------------------------------------------

def stack(synth, pid: int, *spec: str) -> int:
    return synth.writer.add_stack((), frames(*spec), pid)


def mmap(synth, ms, pid, addr, length, sid):
    synth.writer.add_events([Event("mmap", length, synth.ts(ms), pid, pid, ret=addr,
                                   length=length, stack_id=sid)])


def munmap(synth, ms, pid, addr, length):
    synth.writer.add_events([Event("munmap", length, synth.ts(ms), pid, pid, addr=addr,
                                   length=length)])


@pytest.fixture
def ranked(synth):
    """Seven stacks in one process, stack i mapping (i + 1) * 64 KiB, one call each but
    the biggest, which maps twice."""
    synth.process(10, "fetch")
    for i in range(7):
        sid = stack(synth, 10, "mmap@lib", "malloc@lib", f"step{i}", "main", "_start")
        mmap(synth, i, 10, 0x10000000 * (i + 1), (i + 1) * 64 * KIB, sid)
    mmap(synth, 8, 10, 0x90000000, 64 * KIB, sid)
    return synth.open()


def test_growth_is_ranked_by_bytes_and_the_shares_add_up(ranked):
    report = build_report(ranked, top=3)
    g = report.growth
    assert [r.bytes for r in g.rows] == sorted((r.bytes for r in g.rows), reverse=True)
    assert g.rows[0].compact == "main > step6 > malloc > mmap" and g.rows[0].calls == 2
    assert sum(r.bytes for r in g.rows) + g.other_bytes == g.total
    assert sum(r.share for r in g.rows) + g.other_share == pytest.approx(1.0)
    assert g.other_stacks == 4
    folded = fold(ranked, Selection(process_names=False))
    assert g.total == sum(folded.values())
    assert {tuple(r.stack): r.bytes for r in g.rows}.items() <= folded.items()


def test_top_n_limits_each_ranking(ranked):
    report = build_report(ranked, top=1)
    assert len(report.growth.rows) == 1 and report.growth.other_stacks == 6
    assert len(report.held.rows) == 1


@pytest.fixture
def two_processes(synth):
    """pid 10 maps 1 MiB and frees it, then maps 64 KiB it keeps; pid 20 (a child that
    exec'd sh -> worker) grows its heap by 128 KiB and keeps it."""
    synth.process(10, "fetch")
    synth.process(20, "sh", at_ms=1, ppid=10)
    synth.process(20, "worker", at_ms=2, ppid=10, end_ms=50)
    big = stack(synth, 10, "mmap@lib", "realloc@lib", "download", "main", "_start")
    small = stack(synth, 10, "mmap@lib", "malloc@lib", "index", "main", "_start")
    mmap(synth, 1, 10, 0x7000000, 1024 * KIB, big)
    munmap(synth, 5, 10, 0x7000000, 1024 * KIB)
    mmap(synth, 6, 10, 0x8000000, 64 * KIB, small)
    heap = stack(synth, 20, "brk@lib", "sbrk@lib", "malloc@lib", "work", "main", "_start")
    synth.writer.add_events([Event("brk", 128 * KIB, synth.ts(10), 20, 20, ret=0x600000,
                                   stack_id=heap)])
    synth.writer.set_totals({"mmap": KindTotals(2, 0, 1088 * KIB), "munmap": KindTotals(
        1, 0, 1024 * KIB), "brk": KindTotals(1, 0, 128 * KIB)})
    synth.rss(1, 10, 1 * MIB, 2 * MIB)
    synth.rss(3, 20, 1 * MIB, space=21, why="start")
    synth.rss(4, 10, 2 * MIB, 2 * MIB)
    synth.rss(12, 20, 1 * MIB, 512 * KIB, space=21)
    synth.rss(50, 20, 0, space=21, why="end")
    synth.resident(4, 1 * MIB, pid=10, stack=["_start", "main", "download", "touch"])
    synth.resident(12, 512 * KIB, "file", pid=20, stack=["_start", "main", "work"])
    synth.resident(12, 256 * KIB, "anon", pid=20, stack=["_start", "main", "work"])
    synth.writer.set_meta(command_line="fetch pkg", source="ebpf", complete=True,
                          duration_s=0.05, exit_code=0, lost_events=0, peak_rss=4 * MIB,
                          peak_rss_classes={"anon": 3 * MIB, "file": 1 * MIB, "shmem": 0},
                          peak_rss_ns=synth.ts(4))
    return synth.open()


def test_what_is_held_at_exit_is_not_the_freed_buffer(two_processes):
    report = build_report(two_processes)
    held = report.held
    assert [r.compact for r in held.rows] == ["main > work > malloc > brk",
                                              "main > index > malloc > mmap"]
    assert held.total == retained(two_processes, Selection(process_names=False)).held
    assert report.growth.rows[0].compact == "main > download > realloc > mmap"


def test_process_rows_add_up(two_processes):
    rows = {p.pid: p for p in build_report(two_processes).processes}
    assert (rows[10].calls, rows[10].taken, rows[10].given, rows[10].held) == (
        3, 1088 * KIB, 1024 * KIB, 64 * KIB)
    assert rows[20].name == "worker" and rows[20].names == ["sh", "worker"]
    assert rows[20].held == 128 * KIB
    assert sum(p.held for p in rows.values()) == build_report(two_processes).held.total


def test_each_process_has_its_exact_peak_rss_and_what_became_resident(two_processes):
    report = build_report(two_processes)
    rows = {p.pid: p for p in report.processes}
    assert (rows[10].peak_rss, rows[10].peak_rss_split) == (4 * MIB, Rss(2 * MIB, 2 * MIB))
    assert (rows[20].peak_rss, rows[20].peak_rss_split) == (1536 * KIB, Rss(MIB, 512 * KIB))
    assert (rows[10].resident, rows[20].resident) == (MIB, 768 * KIB)
    assert rows[20].resident_split == Rss(256 * KIB, 512 * KIB)
    assert (report.peak_rss, report.peak_rss_split) == (4 * MIB, Rss(3 * MIB, MIB))
    assert [(r.compact, r.bytes) for r in report.resident.rows] == [
        ("main > download > touch", MIB), ("main > work", 768 * KIB)]
    assert report.resident.rows[0].calls == 256  # pages
    assert any("flame --event resident" in h for h in report.next_commands)
    one = build_report(two_processes, pid=20)
    assert one.peak_rss == 1536 * KIB and one.resident.total == 768 * KIB


def test_one_pid(two_processes):
    report = build_report(two_processes, pid=20)
    assert [p.pid for p in report.processes] == [20]
    assert [r.compact for r in report.growth.rows] == ["main > work > malloc > brk"]
    with pytest.raises(UsageError, match="no process 99"):
        build_report(two_processes, pid=99)
    with pytest.raises(UsageError, match="--top"):
        build_report(two_processes, top=0)


def test_next_commands_follow_the_data(two_processes):
    hints = build_report(two_processes).next_commands
    assert any("flame --retained" in h for h in hints)
    assert any(h.endswith("--pid 10") for h in hints)  # the process that took the most
    assert not any("symbolize" in h for h in hints)


def text(report) -> str:
    out = io.StringIO()
    render_text(report, out)
    return out.getvalue()


def test_text_fits_the_width_and_has_every_section(two_processes):
    out = text(build_report(two_processes))
    # only the commands under "Next" may be wider: they hold the recording's path whole
    body = out.split("\nNext\n")[0]
    assert max(len(line) for line in body.splitlines()) <= WIDTH, body
    for heading in ("Totals", "Processes", "Top stacks by bytes taken",
                    "still held at exit", "made resident", "Stack quality", "Next"):
        assert heading in out
    assert "fetch pkg" in out and "sh > worker" in out and "64.0 KiB" in out


def test_json_has_full_stacks(two_processes):
    out = io.StringIO()
    render_json(build_report(two_processes), out)
    data = json.loads(out.getvalue())
    assert data["growth"]["rows"][0]["stack"] == ["_start", "main", "download", "realloc", "mmap"]
    assert data["run"]["exit_code"] == 0 and data["peak_rss"] == 4 << 20
    assert data["peak_rss_split"] == {"anon": 3 << 20, "file": 1 << 20, "shmem": 0, "swap": 0}
    worker = [p for p in data["processes"] if p["pid"] == 20][0]
    assert worker["peak_rss"] == 1536 << 10 and worker["resident"] == 768 << 10


# --- imported and empty recordings -------------------------------------------------------

def imported(path: str, with_stacks: bool) -> Recording:
    """What `heaptrace import dtrace` writes: totals, maybe aggregated stacks counting bytes
    (calls unknown), no processes, no times, no addresses."""
    with RecordingWriter(path) as w:
        w.set_meta(source="dtrace", imported_from="brk.txt", unknown_totals=(
            {"brk": ["calls"]} if with_stacks else {}))
        w.set_totals({"brk": KindTotals(0 if with_stacks else 675, 0, 300 * KIB)})
        if with_stacks:
            for name, nbytes in (("download", 200 * KIB), ("index", 100 * KIB)):
                sid = w.add_stack(frames=frames("brk@lib", "malloc@lib", name, "main"))
                w.add_events([Event("brk", nbytes, calls=0, stack_id=sid)])
    return Recording(path)


def test_imported_totals_only(tmp_path):
    report = build_report(imported(str(tmp_path / "q.db"), with_stacks=False))
    assert report.processes == [] and report.growth.rows == [] and report.quality is None
    assert not report.held.known and report.totals[0].calls == 675
    assert report.growth_total == 300 * KIB
    out = text(report)
    assert "no processes" in out and "not known" in out and "no per-call events" in out
    assert "timeline" not in out  # no times to draw


def test_imported_stacks_have_unknown_calls(tmp_path):
    report = build_report(imported(str(tmp_path / "s.db"), with_stacks=True))
    assert [r.compact for r in report.growth.rows] == ["main > download > malloc > brk",
                                                       "main > index > malloc > brk"]
    assert all(r.calls is None for r in report.growth.rows)
    assert report.totals[0].calls is None
    assert sum(r.share for r in report.growth.rows) == pytest.approx(1.0)


def test_an_empty_recording(tmp_path):
    RecordingWriter(str(tmp_path / "empty.db")).close()
    report = build_report(Recording(str(tmp_path / "empty.db")))
    assert report.growth.total == report.held.total == 0 and report.processes == []
    out = text(report)
    assert "no memory calls recorded" in out and "nothing was still held" in out
    json.loads(json.dumps(report.__dict__, default=lambda o: o.__dict__))


def test_the_command_line(two_processes):
    path = two_processes.path
    two_processes.close()
    proc = heaptrace("report", path, "--json", "--top", "1", check=True)
    assert len(json.loads(proc.stdout)["growth"]["rows"]) == 1
    bad = heaptrace("report", path, "--pid", "99")
    assert bad.returncode != 0 and "no process 99" in bad.stderr and "Traceback" not in bad.stderr
