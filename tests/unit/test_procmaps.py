"""Executable mappings over time: snapshots, fork, exec, munmap, and the recording."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.recording import Recording, RecordingWriter
from heaptrace.stacks.procmaps import ANON, PROT_EXEC, Mapping, ProcMaps, parse_maps

MAPS = """\
555555554000-555555555000 r--p 00000000 fe:00 11 /usr/bin/prog
555555555000-555555556000 r-xp 00001000 fe:00 11 /usr/bin/prog
7ffff7dfa000-7ffff7f50000 r-xp 00026000 fe:00 22 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffff7fc8000-7ffff7fca000 r-xp 00000000 00:00 0 [vdso]
7ffff0000000-7ffff0001000 rwxp 00000000 00:00 0
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]
"""


def test_parse_keeps_executable_mappings_only():
    parsed = parse_maps(MAPS)
    assert [m.path for m, _ in parsed] == [
        "/usr/bin/prog", "/usr/lib/x86_64-linux-gnu/libc.so.6", "[vdso]", ANON]
    prog, key = parsed[0]
    assert (prog.start, prog.end, prog.offset, key) == (0x555555555000, 0x555555556000,
                                                          0x1000, "fe:00:11")


def test_snapshot_of_a_gone_process_is_refused():
    assert not ProcMaps().snapshot(2**22 + 7, 1)


def test_fork_copies_exec_replaces_and_history_stays():
    maps = ProcMaps()
    maps.add(1, Mapping(0x1000, 0x2000, 0, "/bin/a", "aa", first_ns=10))
    maps.on_fork(1, 2, 20)
    assert maps.find(2, 0x1800).path == "/bin/a"
    maps.on_munmap(1, 30, 0x1000, 0x1000)
    assert maps.find(1, 0x1800, ts_ns=15).path == "/bin/a"
    assert maps.find(1, 0x1800, ts_ns=35) is None
    assert maps.find(2, 0x1800).path == "/bin/a"  # the child's copy is its own


def test_new_mapping_over_an_old_one_ends_it_and_bumps_generation():
    maps = ProcMaps()
    maps.add(1, Mapping(0x1000, 0x2000, 0, "/lib/old.so", None, first_ns=1))
    gen = maps.generation(1)
    maps.add(1, Mapping(0x1000, 0x3000, 0, "/lib/new.so", None, first_ns=5))
    assert maps.generation(1) > gen
    assert maps.find(1, 0x1800).path == "/lib/new.so"
    assert maps.find(1, 0x1800, ts_ns=3).path == "/lib/old.so"


def test_anonymous_exec_mmap_is_jit_code():
    maps = ProcMaps()
    maps.on_mmap(5, 1, 0x7000, 0x1000, PROT_EXEC | 0x3, -1)
    maps.on_mmap(5, 1, 0x9000, 0x1000, 0x3, -1)  # not executable: ignored
    assert maps.find(5, 0x7008).path == ANON
    assert maps.find(5, 0x9008) is None


def test_round_trip_through_a_recording(tmp_path):
    maps = ProcMaps.from_maps_text(7, MAPS, ts_ns=3)
    maps.on_munmap(7, 9, 0x7FFFF0000000, 0x1000)
    path = str(tmp_path / "r.db")
    with RecordingWriter(path) as writer:
        maps.save(writer)
    with Recording(path) as rec:
        again = ProcMaps.from_rows(rec.mappings())
    assert [(m.start, m.path, m.first_ns, m.last_ns) for m in again.mappings(7)] == [
        (m.start, m.path, m.first_ns, m.last_ns) for m in maps.mappings(7)]
    assert again.find(7, 0x7FFFF7DFA010).path.endswith("libc.so.6")


def test_lookup_in_time_keeps_images_before_and_after_an_exec_apart(tmp_path):
    maps = ProcMaps(proc_root=str(tmp_path))  # no /proc here: only what the events say
    old = Mapping(0x1000, 0x2000, 0, "/bin/old", None, 10)
    maps.add(7, old)
    maps.on_exec(7, 100)
    # The new image's mapping is only learnt at 150 (say from a late snapshot): a stack seen
    # at 120 still belongs to it, not to the image that ended at the exec.
    maps.add(7, Mapping(0x1000, 0x2000, 0, "/bin/new", None, 150))
    assert maps.find(7, 0x1800, 50).path == "/bin/old"
    assert maps.find(7, 0x1800, 120).path == "/bin/new"
    assert maps.find(7, 0x1800, 200).path == "/bin/new"
    assert maps.find(7, 0x1800).path == "/bin/new"  # live now


def test_save_writes_only_what_changed_and_stays_idempotent(tmp_path):
    path = str(tmp_path / "r.db")
    maps = ProcMaps(proc_root=str(tmp_path))
    maps.add(7, Mapping(0x1000, 0x2000, 0, "/bin/a", None, 10))
    with RecordingWriter(path) as w:
        maps.save(w, changed_only=True)
        maps.add(8, Mapping(0x3000, 0x4000, 0, "/bin/b", None, 20))
        maps.save(w, changed_only=True)
        maps.save(w)  # the final full save replaces, never duplicates
    with Recording(path) as rec:
        assert sorted((m.pid, m.path) for m in rec.mappings()) == [(7, "/bin/a"), (8, "/bin/b")]


def test_records_out_of_time_order_never_end_a_later_mapping():
    # dlclose of A (an munmap, batched) reaches heaptrace after dlopen of B at the same place
    # (a file-mapping record, sent at once): the munmap cannot end B, which came after it.
    maps = ProcMaps()
    maps.add(1, Mapping(0x1000, 0x2000, 0, "/lib/a.so", None, first_ns=10))
    maps.add(1, Mapping(0x1000, 0x2000, 0, "/lib/b.so", None, first_ns=30))
    maps.on_munmap(1, 20, 0x0, 0x4000)
    assert maps.find(1, 0x1800).path == "/lib/b.so"
    assert maps.find(1, 0x1800, 15).path == "/lib/a.so"
    assert maps.find(1, 0x1800, 35).path == "/lib/b.so"
    # An older mapping learnt late does not replace a newer one: it is history.
    maps.add(1, Mapping(0x1000, 0x2000, 0, "/lib/old.so", None, first_ns=5))
    assert maps.find(1, 0x1800).path == "/lib/b.so"
    assert maps.find(1, 0x1800, 7).path == "/lib/old.so"


def test_epochs_count_the_file_mappings_ended_before_a_time():
    maps = ProcMaps()
    maps.add(1, Mapping(0x1000, 0x2000, 0, "/lib/a.so", None, first_ns=10))
    maps.add(1, Mapping(0x9000, 0xA000, 0, ANON, None, first_ns=10))
    assert maps.epoch(1, 15) == 0
    maps.add(1, Mapping(0x1000, 0x2000, 0, "/lib/b.so", None, first_ns=30))
    maps.on_munmap(1, 40, 0x9000, 0x1000)  # JIT code going away is no new epoch
    assert [maps.epoch(1, t) for t in (15, 29, 30, 50)] == [0, 0, 1, 1]
    assert maps.epoch(2, 50) == 0


def test_a_snapshot_of_an_exited_process_ends_nothing(tmp_path):
    # A zombie's /proc/PID/maps is empty: that is not "everything was unmapped".
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "maps").write_text("")
    maps = ProcMaps(proc_root=str(tmp_path))
    maps.add(7, Mapping(0x1000, 0x2000, 0, "/lib/a.so", None, first_ns=10))
    assert not maps.snapshot(7, 50)
    assert maps.find(7, 0x1800, 60).path == "/lib/a.so"


def test_a_late_snapshot_ends_what_is_missing_only_by_the_time_it_was_read(tmp_path):
    # The exec mmap of a.so (at 11) is read after a.so was unmapped again: the snapshot it
    # asks for does not show a.so, yet a.so's calls at 20 are a.so's.
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "maps").write_text(
        "7ffff7fc8000-7ffff7fca000 r-xp 00000000 00:00 0 [vdso]\n")
    maps = ProcMaps(proc_root=str(tmp_path))
    maps.add(7, Mapping(0x1000, 0x2000, 0, "/lib/a.so", None, first_ns=10))
    assert maps.snapshot(7, 11)
    assert maps.find(7, 0x1800, 20).path == "/lib/a.so"
    assert maps.find_live(7, 0x1800) is None  # gone now


def test_a_library_a_late_snapshot_found_is_mapped_when_the_probe_says(tmp_path):
    # The exec's snapshot is read after the program already dlopened liba.so where ld.so's
    # cache file was mapped before; the probe's record of liba's mmap (sent at once) then
    # says when it was mapped, and the cache's munmap (batched, before it) cannot end it.
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "maps").write_text(
        "7f0000004000-7f0000005000 r-xp 00001000 fe:00 99 /tmp/liba.so\n")
    maps = ProcMaps(proc_root=str(tmp_path))
    assert maps.snapshot(7, 10)  # the exec's time
    maps.add(7, Mapping(0x7F0000004000, 0x7F0000005000, 0x1000, "/tmp/liba.so", None,
                        first_ns=90))
    maps.on_munmap(7, 50, 0x7F0000000000, 0x9000)  # the cache file, unmapped before liba
    assert maps.find(7, 0x7F0000004100, 95).path == "/tmp/liba.so"
    assert maps.mappings(7)[0].first_ns == 90 and maps.mappings(7)[0].last_ns is None


def _find_plainly(maps, pid, addr, ts):  # noqa: ANN001, ANN202 - the rule, one mapping at a time
    covering = [m for m in maps.mappings(pid) if m.start <= addr < m.end]
    if ts is None:
        return max(covering, key=lambda m: m.first_ns, default=None)
    alive = [m for m in covering if m.first_ns <= ts and (m.last_ns is None or ts < m.last_ns)]
    if alive:
        return max(alive, key=lambda m: m.first_ns)
    later = [m for m in covering if m.last_ns is None or m.last_ns > ts]
    return min(later, key=lambda m: m.first_ns, default=None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(1, 6), st.integers(0, 50),
                          st.one_of(st.none(), st.integers(1, 40))), max_size=12),
       st.lists(st.tuples(st.integers(0, 20), st.one_of(st.none(), st.integers(0, 100))),
                min_size=1, max_size=20))
def test_lookups_at_a_time_through_the_index_follow_the_plain_rule(rows, queries):
    # Mappings stored with a history, as symbolizing reads them: the index over addresses
    # (built as they are added, rebuilt when one is added) finds what the plain scan does.
    maps = ProcMaps()
    for start, length, first, span in rows:
        mapping = Mapping(start, start + length, 0, f"/lib/{start}", None, first)
        mapping.last_ns = None if span is None else first + span
        maps._space(1).add(mapping)
        for addr, ts in queries[:3]:  # looked up while mappings are still added, too
            if ts is not None:
                assert maps.find(1, addr, ts) is _find_plainly(maps, 1, addr, ts)
    for addr, ts in queries:
        if ts is not None or maps.find_live(1, addr) is None:
            assert maps.find(1, addr, ts) is _find_plainly(maps, 1, addr, ts)
