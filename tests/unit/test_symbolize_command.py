"""`heaptrace symbolize` rewrites the frames of a recording from its raw addresses."""

from __future__ import annotations

import pytest

from heaptrace.cli import main
from heaptrace.recording import Recording, RecordingWriter
from heaptrace.stacks.unwind.dwarf import Unwinder
from tests.helpers.stackfixtures import load


def test_symbolize_names_recorded_stacks(tmp_path, capsys):
    stop = next(s for s in load("chain") if "main" in s.gdb_names and s.syscall == "brk")
    maps = stop.procmaps()
    ips = Unwinder(maps).unwind(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack)
    path = str(tmp_path / "r.db")
    with RecordingWriter(path) as writer:
        stack_id = writer.add_stack(ips=ips, pid=stop.pid)
        maps.save(writer)
    with Recording(path) as rec:
        assert rec.stacks()[stack_id][0].name.startswith("0x")  # not symbolized yet
    with pytest.raises(SystemExit) as exc:
        main(["symbolize", path])
    assert exc.value.code == 0
    assert f"Symbolized 1 stacks in {path}: {len(ips)} frames, 0 without a symbol" in (
        capsys.readouterr().out)
    with Recording(path) as rec:
        names = [f.name for f in rec.stacks()[stack_id]]
    assert names[-1] == "_start" and "level1" in names and "malloc" in names


def test_symbolize_refuses_what_is_not_a_recording(tmp_path, capsys):
    bogus = tmp_path / "x.db"
    bogus.write_text("hello")
    with pytest.raises(SystemExit) as exc:
        main(["symbolize", str(bogus)])
    assert exc.value.code == 1
    assert "not a heaptrace recording" in capsys.readouterr().err
