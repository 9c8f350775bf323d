"""The recorder's bounded caches: an LRU with counts, and stacks that stay one row per stack
whatever the caches in front of the recording evicted."""

from __future__ import annotations

import pytest

from heaptrace.backends.records import STACK_WALKED, Call, WalkedStack
from heaptrace.capture import rows
from heaptrace.capture.rows import Recorder
from heaptrace.recording import Recording, RecordingWriter, writer
from heaptrace.recording.lru import Lru
from heaptrace.stacks.procmaps import ProcMaps


def test_the_least_recently_used_entry_goes_first_and_everything_is_counted():
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)  # b goes
    assert "b" not in cache and cache.get("b") is None
    assert cache.get("a") == 1 and cache.get("c") == 3
    assert cache.counts() == {"entries": 2, "size": 2, "hits": 3, "misses": 1, "evictions": 1}
    with pytest.raises(ValueError):
        Lru(0)


def test_stacks_stay_one_row_each_when_the_caches_hold_only_a_few(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "STACK_CACHE", 3)
    monkeypatch.setattr(rows, "STACK_CACHE", 2)
    path = str(tmp_path / "r.db")
    w = RecordingWriter(path)
    rec = Recorder(w, lambda copy: [], maps=ProcMaps(proc_root=str(tmp_path)))
    refs = [STACK_WALKED | n for n in range(1, 11)]
    for n, ref in enumerate(refs):
        rec(WalkedStack(ref, 7, (0x1000 + n, 0x2000)))
    ts = 0
    for _ in range(3):  # each stack used again after the caches evicted it
        for ref in refs:
            ts += 1
            rec(Call("brk", ts, 7, 7, (0,) * 6, 0x5000, 4096, 0x10, ref))
    rec.flush()
    assert len(rec._stack_ids) == 2 and rec._stack_ids.evictions > 0
    assert len(w._stack_ids) == 3 and w._stack_ids.evictions > 0
    w.close()
    with Recording(path) as r:
        stacks = {sid: tuple(f.addr for f in frames) for sid, frames in r.stacks().items()}
        used = [stacks[e.stack_id] for e in r.events()]
    assert len(stacks) == 10  # one row per distinct stack, never a second
    assert used == [(0x1000 + n, 0x2000) for n in range(10)] * 3
