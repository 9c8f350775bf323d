"""`perf record` on a compiled program, `perf script`, then `heaptrace import perf`: the import
holds every sample perf counted, with the tracepoints' byte arguments."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from heaptrace.importers import import_file
from heaptrace.recording import Recording
from tests.helpers import strace_oracle

HERE = os.path.dirname(__file__)
EVENTS = ["syscalls:sys_enter_mmap", "syscalls:sys_enter_munmap", "syscalls:sys_enter_brk",
          "syscalls:sys_exit_brk"]


def _tracefs() -> None:
    if not os.path.isdir("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=True)


@pytest.fixture(scope="module")
def perf_run(tmp_path_factory):
    """(perf script text with call chains, perf's own sample count per event)."""
    _tracefs()
    work = tmp_path_factory.mktemp("perf")
    program = str(work / "mapgrow")
    subprocess.run(["gcc", "-O0", "-fno-omit-frame-pointer", "-o", program,
                    os.path.join(HERE, "programs", "mapgrow.c")], check=True)
    data = str(work / "perf.data")
    argv = ["perf", "record", "-q", "-g", "-o", data]
    for event in EVENTS:
        argv += ["-e", event]
    subprocess.run(argv + [program], check=True, capture_output=True)
    script = subprocess.run(["perf", "script", "-i", data], check=True, capture_output=True,
                            text=True).stdout
    stats = subprocess.run(["perf", "report", "-i", data, "--stats"], check=True,
                           capture_output=True, text=True).stdout
    return script, _sample_counts(stats), program


def _sample_counts(stats: str) -> dict:
    """perf report --stats: 'syscalls:sys_enter_mmap stats:' then 'SAMPLE events: N'."""
    counts = {}
    for event, n in re.findall(r"syscalls:sys_enter_(\w+) stats:\s*\n\s*SAMPLE events:\s*(\d+)",
                               stats):
        counts[event] = int(n)
    return counts


def test_import_holds_every_sample_perf_counted(perf_run, tmp_path):
    script, counts, _ = perf_run
    source = tmp_path / "out.perf"
    source.write_text(script)
    out = str(tmp_path / "run.db")
    import_file("perf", str(source), out)
    with Recording(out) as rec:
        totals = rec.totals()
        events = list(rec.events())
        stacks = rec.stacks()
    assert set(counts) == {"mmap", "munmap", "brk"}  # sys_exit_brk: answers, not calls
    for kind, n in counts.items():
        assert totals[kind].calls == n
        assert sum(1 for e in events if e.kind == kind) == n
    ours = [e for e in events if any(f.name == "grow_maps" for f in stacks[e.stack_id])]
    maps = [e.size for e in ours if e.kind == "mmap"]
    assert sorted(maps) == [8192 * (i + 1) for i in range(5)]
    root = {stacks[e.stack_id][-1].name for e in events}
    assert root == {"mapgrow"}  # stackcollapse-perf.pl's root frame: the command


def test_brk_bytes_from_the_breaks_equal_straces(perf_run, tmp_path):
    """With sys_exit_brk recorded, the import knows every call's new break: brk growth,
    calls and failures are what strace counts on the same program."""
    script, _, program = perf_run
    source = tmp_path / "out.perf"
    source.write_text(script)
    out = str(tmp_path / "run.db")
    assert import_file("perf", str(source), out) == []
    with Recording(out) as rec:
        brk = rec.totals()["brk"]
    oracle = strace_oracle.trace([program]).totals["brk"]
    assert (brk.calls, brk.failed, brk.bytes, brk.released) == (
        oracle["calls"], oracle["failed"], oracle["bytes"], oracle["released"])
    assert brk.bytes >= 65536 + 131072  # the program's two sbrk()s
