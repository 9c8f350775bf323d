"""The stack-quality figures `heaptrace run` reports."""

from __future__ import annotations

from heaptrace.analysis.coverage import coverage, is_whole
from heaptrace.events import Event, Frame
from heaptrace.recording import Recording, RecordingWriter


def test_whole_stacks_end_at_an_entry_point():
    assert is_whole((Frame("malloc"), Frame("main"), Frame("_start")))
    assert is_whole((Frame("mmap"), Frame("start_thread"), Frame("clone3")))
    assert not is_whole((Frame("mmap"), Frame("main")))
    assert not is_whole(())


def test_shares_by_bytes_and_frames(tmp_path):
    path = str(tmp_path / "r.db")
    with RecordingWriter(path) as w:
        whole = w.add_stack(frames=[Frame("brk"), Frame("main"), Frame("_start")])
        cut = w.add_stack(frames=[Frame("mmap"), Frame("libc.so.6+0x1234", "libc.so.6")])
        w.add_events([Event("brk", 3000, stack_id=whole), Event("brk", -1000, stack_id=whole),
                      Event("mmap", 4000, stack_id=cut), Event("munmap", 2000)])
    with Recording(path) as rec:
        cov = coverage(rec)
    assert (cov.bytes_total, cov.bytes_whole) == (10000, 4000)
    assert (cov.events_total, cov.events_with_stack) == (4, 3)
    assert (cov.frames, cov.frames_unsymbolized) == (5, 1)
    assert cov.whole_share == 0.4 and cov.unsymbolized_share == 0.2
