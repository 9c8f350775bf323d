"""`heaptrace symbolize` on a recording of a captured stack that runs through the host's
libc (the fixture's maps name it by path)."""

from __future__ import annotations

from heaptrace.recording import Recording, RecordingWriter
from heaptrace.stacks.unwind.dwarf import Unwinder
from tests.helpers.cli import heaptrace
from tests.helpers.stackfixtures import load


def test_symbolize_names_recorded_stacks(tmp_path):
    stop = next(s for s in load("chain") if "main" in s.gdb_names and s.syscall == "brk")
    maps = stop.procmaps()
    ips = Unwinder(maps).unwind(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack)
    path = str(tmp_path / "r.db")
    with RecordingWriter(path) as writer:
        stack_id = writer.add_stack(ips=ips, pid=stop.pid)
        maps.save(writer)
    with Recording(path) as rec:
        assert rec.stacks()[stack_id][0].name.startswith("0x")  # not symbolized yet
    out = heaptrace("symbolize", path, check=True).stdout
    assert f"Symbolized 1 stacks in {path}: {len(ips)} frames, 0 without a symbol" in out
    with Recording(path) as rec:
        names = [f.name for f in rec.stacks()[stack_id]]
    assert names[-1] == "_start" and "level1" in names and "malloc" in names
