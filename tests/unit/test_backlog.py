"""The backlog of records waiting to be handled: first in, first out, whatever it holds in
memory and whatever it spilled to its file, with its memory bounded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.backends import backlog as backlog_mod
from heaptrace.backends.backlog import Backlog

# (True, size): a record of that many bytes arrives; (False, n): n records are handed out
STEPS = st.lists(st.one_of(st.tuples(st.just(True), st.integers(0, 700)),
                           st.tuples(st.just(False), st.integers(1, 30))), max_size=200)


@settings(max_examples=150, deadline=None)
@given(STEPS, st.integers(0, 3000))
def test_records_come_out_in_the_order_they_went_in(tmp_path_factory, steps, memory_bytes):
    backlog_mod.CHUNK, chunk = 1000, backlog_mod.CHUNK  # many reads and writes of the file
    try:
        queue = Backlog(str(tmp_path_factory.mktemp("spill")), memory_bytes)
        sent: List[bytes] = []
        got: List[bytes] = []
        for arrives, n in steps:
            if arrives:
                raw = os.urandom(n)
                sent.append(raw)
                queue.append(raw)
                assert queue._in_memory <= memory_bytes
            else:
                for _ in range(n):
                    raw = queue.pop()
                    if raw is None:
                        break
                    got.append(raw)
            assert len(queue) == len(sent) - len(got)
        while (raw := queue.pop()) is not None:
            got.append(raw)
        assert got == sent
        assert len(queue) == 0
        queue.close()
    finally:
        backlog_mod.CHUNK = chunk


def test_past_its_memory_the_backlog_spills_to_an_unnamed_file_and_reads_it_back(
        tmp_path: Path):
    queue = Backlog(str(tmp_path), memory_bytes=10_000)
    records = [bytes([i % 256]) * 4000 for i in range(2000)]  # 8 MB: past the 1 MiB chunk
    for raw in records:
        queue.append(raw)
    assert queue._in_memory <= 10_000 and len(queue._memory) == 2
    assert queue.spilled == 1998 and queue.peak_spill_bytes >= 1 << 20
    assert list(tmp_path.iterdir()) == []  # never visible by name
    assert [queue.pop() for _ in records] == records
    assert queue.pop() is None
    assert os.fstat(queue._fd).st_size == 0  # read empty: the file starts over
    queue.append(b"after")  # memory again
    assert queue.pop() == b"after" and queue.spilled == 1998
    queue.close()


def test_a_spill_that_cannot_be_written_keeps_the_records_in_memory_in_order(tmp_path: Path):
    queue = Backlog(str(tmp_path / "gone"), memory_bytes=0)
    records = [bytes([i]) * 300_000 for i in range(10)]  # past the 1 MiB chunk: a write
    for raw in records:
        queue.append(raw)
    assert queue.spill_error == "No such file or directory"
    assert [queue.pop() for _ in records] == records and queue.pop() is None
