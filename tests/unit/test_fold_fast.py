"""fold() sums per process and stack in SQLite: it must equal folding event by event, across
execs (which rename the root frame), kinds, processes and time windows."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.analysis.stacks import Folder, Selection, counted_bytes, fold, select_events
from heaptrace.recording import Recording
from tests.helpers.synth import Synth

KINDS = ("brk", "mmap", "munmap", "mremap")
STACKS = ((), ("main", "a", "malloc"), ("main", "b", "mmap"), ("main", "a", "mmap"))

events = st.lists(st.tuples(st.integers(0, 100), st.sampled_from((1, 2)),
                            st.sampled_from(KINDS), st.integers(-5000, 50000),
                            st.sampled_from(STACKS)), max_size=40)
selections = st.builds(Selection, kind=st.sampled_from(("growth", "all", "brk", "mmap")),
                       pid=st.sampled_from((None, 1, 2)),
                       start_s=st.sampled_from((None, 0.02)), end_s=st.sampled_from((None, 0.06)),
                       process_names=st.booleans())


def fold_events(rec: Recording, sel: Selection) -> dict:
    folder = Folder(rec, sel.process_names)
    for e in select_events(rec, sel):
        folder.add((e.pid, e.ts_ns, e.stack_id, e.kind), counted_bytes(e))
    return folder.folded


@settings(max_examples=60, deadline=None)
@given(events, st.sampled_from((None, 30, 70)), selections)
def test_fast_fold_equals_event_by_event(evs, exec_ms, sel):
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "r.db")
        synth = Synth(path)
        for pid in (1, 2):
            synth.process(pid, f"sh{pid}", 0)
            if exec_ms is not None:
                synth.process(pid, f"prog{pid}", exec_ms)
        for ms, pid, kind, size, stack in evs:
            synth.event(kind, ms, pid, stack, size=size)
        synth.writer.close()
        with Recording(path) as rec:
            assert fold(rec, sel) == fold_events(rec, sel)
