"""The recorder: raw records from a backend become events, processes and stacks."""

from __future__ import annotations

from heaptrace.backends.records import (
    PY_STACK,
    STACK_COPIED,
    STACK_WALKED,
    Call,
    MappedFile,
    ProcessChange,
    PyStack,
    RssSample,
    StackCopy,
    WalkedStack,
)
from heaptrace.capture.rows import Recorder, call_to_event
from heaptrace.events import Rss
from heaptrace.recording import Recording, RecordingWriter
from heaptrace.stacks.procmaps import ProcMaps

MMAP_ARGS = (0, 8192, 3, 0x22, 0xFFFFFFFF, 0)  # fd -1 as the probe sends it: unsigned 32 bits


def test_call_fields_per_kind():
    mmap = call_to_event(Call("mmap", 5, 7, 8, MMAP_ARGS, 0x7F0000, 8192, 0x401000), 3)
    assert (mmap.length, mmap.prot, mmap.fd, mmap.new_addr, mmap.stack_id) == (
        8192, 3, -1, 0x7F0000, 3)
    failed = call_to_event(Call("mmap", 5, 7, 8, MMAP_ARGS, -12, 0, 0x401000), None)
    assert failed.new_addr == 0 and failed.ret == -12
    mremap = call_to_event(Call("mremap", 5, 7, 7, (0x1000, 4096, 12288, 1, 0, 0), 0x9000,
                                8192, 0), None)
    assert (mremap.addr, mremap.length, mremap.new_length, mremap.new_addr) == (
        0x1000, 4096, 12288, 0x9000)


def test_stack_is_walked_part_then_unwound_rest(tmp_path):
    path = str(tmp_path / "r.db")
    unwound = []
    writer = RecordingWriter(path)
    rec = Recorder(writer, lambda copy: unwound.append(copy) or [0x30, 0x40],
                   maps=ProcMaps(proc_root=str(tmp_path)))  # pid 7 is not this host's
    walked, copied = STACK_WALKED | 1, STACK_COPIED | 2
    rec(WalkedStack(walked, 7, (0x10, 0x20)))
    rec(StackCopy(copied, 7, 7, 0x30, 0x7FF0, 0, 0, b"", gen=1, depth=2))
    for ts in (1, 2):  # two calls on the same path: one stack
        rec(Call("brk", ts, 7, 7, (0, 0, 0, 0, 0, 0), 0x5000, 4096, 0x10, walked, copied))
    rec(Call("brk", 3, 7, 7, (0, 0, 0, 0, 0, 0), 0x6000, 4096, 0x10, walked, 0))
    rec(Call("brk", 4, 7, 7, (0, 0, 0, 0, 0, 0), 0x7000, 4096, 0x10, 0, 0))
    rec.flush()
    writer.close()
    assert len(unwound) == 1 and rec.with_stack == 3 and rec.events == 4
    with Recording(path) as r:
        stacks = {sid: [f.addr for f in frames] for sid, frames in r.stacks().items()}
        ids = [e.stack_id for e in r.events()]
    assert [stacks[i] for i in ids[:3]] == [[0x10, 0x20, 0x30, 0x40]] * 2 + [[0x10, 0x20]]
    assert ids[0] == ids[1] and ids[3] is None


def test_exec_starts_a_new_process_row_and_a_new_stack_image(tmp_path):
    path = str(tmp_path / "r.db")
    writer = RecordingWriter(path)
    rec = Recorder(writer, lambda copy: [copy.ip], maps=ProcMaps(proc_root=str(tmp_path)))
    rec.note_parent(7, 1)
    writer.add_process(7, 1, "sh", 0)
    walked = STACK_WALKED | 5
    rec(WalkedStack(walked, 7, (0x10,)))
    rec(Call("brk", 1, 7, 7, (0,) * 6, 0x5000, 0, 0x10, walked))
    rec(ProcessChange("exec", 2, 7, 0, "prog", "/bin/prog"))
    rec(Call("brk", 3, 7, 7, (0,) * 6, 0x5000, 0, 0x10, walked))
    rec(ProcessChange("exit", 4, 7, 0, "prog", ""))
    rec.flush()
    writer.close()
    with Recording(path) as r:
        assert [(p.pid, p.comm, p.start_ns, p.end_ns) for p in r.processes()] == [
            (7, "sh", 0, 2), (7, "prog", 2, 4)]
        before, after = (e.stack_id for e in r.events())
    assert before != after  # same addresses, different program
    assert 7 not in rec.live_pids


def test_a_library_replaced_at_the_same_place_starts_new_stacks(tmp_path):
    # dlclose(A), dlopen(B) at A's address: the same return addresses mean B's code now, so
    # calls after the swap get their own stack row, first seen (and symbolized) in B's time.
    path = str(tmp_path / "r.db")
    writer = RecordingWriter(path)
    rec = Recorder(writer, lambda copy: [copy.ip], maps=ProcMaps(proc_root=str(tmp_path)))
    walked = STACK_WALKED | 5
    rec(WalkedStack(walked, 7, (0x1010,)))
    rec(MappedFile(7, 10, 0x1000, 0x1000, 0, "/lib/a.so"))
    rec(MappedFile(7, 30, 0x1000, 0x1000, 0, "/lib/b.so"))  # sent before the batch below
    for ts in (20, 25, 40):  # A's two calls, B's one: batched, so they come after B's mapping
        rec(Call("mmap", ts, 7, 7, MMAP_ARGS, 0x7F0000, 8192, 0x1010, walked))
    rec.flush()
    writer.close()
    with Recording(path) as r:
        ids = [e.stack_id for e in r.events()]
        first_seen = {s.id: s.ts_ns for s in r.stack_rows()}
    assert ids[0] == ids[1] != ids[2]
    assert (first_seen[ids[0]], first_seen[ids[2]]) == (20, 40)


def test_what_is_kept_for_an_exited_process_goes_once_the_probe_holds_nothing_older(tmp_path):
    writer = RecordingWriter(str(tmp_path / "r.db"))
    rec = Recorder(writer, lambda copy: [copy.ip], maps=ProcMaps(proc_root=str(tmp_path)))
    forgotten = []
    rec.forget_process = forgotten.append
    for pid in (7, 8):
        rec.note_parent(pid, 1)
        writer.add_process(pid, 1, "sh", 0)
        rec(StackCopy(STACK_COPIED | pid, pid, pid, 0x30 + pid, 0x7FF0, 0, 0, b"", gen=1, depth=0))
    rec(ProcessChange("exit", 100, 7, 1, "sh", ""))
    rec.forget_exited(100)  # a call of 7 may still wait in a CPU's partial batch
    assert STACK_COPIED | 7 in rec._parts and forgotten == []
    rec(ProcessChange("fork", 110, 7, 1, "sh", ""))  # the pid comes back: a new process
    rec.note_parent(7, 1)
    rec(StackCopy(STACK_COPIED | 17, 7, 7, 0x50, 0x7FF0, 0, 0, b"", gen=1, depth=0))
    rec.forget_exited(101)
    assert STACK_COPIED | 7 not in rec._parts  # the first 7's copy: gone
    assert STACK_COPIED | 17 in rec._parts and STACK_COPIED | 8 in rec._parts
    assert forgotten == []  # the new 7 runs: its caches stay
    rec(ProcessChange("exit", 120, 8, 1, "sh", ""))
    rec.forget_exited(10**12)
    assert STACK_COPIED | 8 not in rec._parts and forgotten == [8]
    writer.close()


def _short_child(rec: Recorder, pid: int, born: int) -> None:
    """A forked child that maps a library, walks, copies and reads Python stacks, makes two
    calls on them, has its RSS read, and exits. The probe seeds each reference with the
    child's birth: no two children share one, even with one pid."""
    walked, copied, py = (STACK_WALKED | born << 20 | pid, STACK_COPIED | born << 20 | pid,
                          PY_STACK | born << 20 | pid)
    rec(ProcessChange("fork", born, pid, 1, "sh", ""))
    rec(MappedFile(pid, born + 1, 0x7F00_0000_0000, 0x2000, 0, f"/lib/child-{pid}.so"))
    rec(WalkedStack(walked, pid, (0x10, pid)))
    rec(StackCopy(copied, pid, pid, 0x30, 0x7FF0, 0, 0, b"", gen=0, depth=2))
    rec(PyStack(py, pid, ((0x1000, 4, True, 0x2000),)))
    for ts in (born + 2, born + 3):
        rec(Call("mmap", ts, pid, pid, MMAP_ARGS, 0x7F0000, 8192, 0x10, walked, copied,
                 py_ref=py))
    rec(Call("brk", born + 4, pid, pid, (0,) * 6, 0x5000, 4096, 0x10, walked, 0))
    rss = Rss(anon=4096 * pid)
    rec(RssSample(pid, 5000 + pid, "now", born + 5, rss, 0, 0, rss))
    rec(ProcessChange("exit", born + 6, pid, 1, "sh", ""))


def test_a_fork_heavy_run_keeps_nothing_per_exited_process(tmp_path):
    """What the recorder keeps per process and stack (Recorder.kept) after 10 and after 60
    short-lived children is what it keeps for the live ones alone: every exited child's
    stack parts, Python frames, cached stack ids, mappings, generations and RSS go once the
    probe holds nothing older, while the recording keeps all of it (stacks, mappings)."""
    path = str(tmp_path / "r.db")
    writer = RecordingWriter(path)
    rec = Recorder(writer, lambda copy: [copy.ip, 0x40], maps=ProcMaps(proc_root=str(tmp_path)))
    forgotten = []
    rec.forget_process = forgotten.append
    rec.note_parent(1, 0)  # the shell, alive throughout
    writer.add_process(1, 0, "sh", 0)
    baseline = rec.kept()
    kept = []
    for children in (range(100, 110), range(110, 160)):
        for pid in children:
            _short_child(rec, pid, born=1000 * pid)
        rec.forget_exited(1000 * children[-1])  # the last child's exit is after it: held
        assert rec.kept()["processes"] == 2 and children[-1] not in forgotten
        rec.forget_exited(10**12)
        kept.append(rec.kept())
    # the shell's own address space is known from its first fork on
    assert kept[0] == kept[1] == {**baseline, "mapped_pids": 1}, (baseline, kept)
    assert sorted(forgotten) == list(range(100, 160))
    rec.flush()
    writer.close()
    with Recording(path) as r:
        rows = r.stack_rows()
        mapped = {m.pid for m in r.mappings() if m.path.startswith("/lib/child-")}
    assert len({s.pid for s in rows}) == 60 and len(rows) == 2 * 60  # two stacks each
    assert mapped == set(range(100, 160))


def test_a_pid_back_as_a_new_process_keeps_its_own_stacks(tmp_path):
    """A child exits and its pid comes back as a new process before the first is forgotten:
    the first one's stacks go, the new one's stay and still name its frames; each has its
    own stack rows and its own mappings in the recording."""
    path = str(tmp_path / "r.db")
    writer = RecordingWriter(path)
    rec = Recorder(writer, lambda copy: [copy.ip, 0x40], maps=ProcMaps(proc_root=str(tmp_path)))
    rec.note_parent(1, 0)
    _short_child(rec, 100, born=1000)
    rec.note_parent(100, 1)  # the pid again (the fork record below says it too)
    rec(ProcessChange("fork", 3000, 100, 1, "sh", ""))
    rec.forget_exited(2000)  # the first 100 exited at 1006: forgotten, but the pid is live
    walked = STACK_WALKED | 3000 << 20 | 100
    rec(WalkedStack(walked, 100, (0x10, 100)))
    rec.forget_exited(2500)
    assert rec.kept()["stack_parts"] == 1 and rec.kept()["processes"] == 2
    rec(Call("brk", 3001, 100, 100, (0,) * 6, 0x5000, 4096, 0x10, walked, 0))
    rec(MappedFile(100, 3002, 0x7F00_0000_0000, 0x2000, 0, "/lib/again.so"))
    rec(ProcessChange("exit", 3003, 100, 1, "sh", ""))
    rec.forget_exited(10**12)
    rec.flush()
    rec.maps.save(writer)
    writer.close()
    with Recording(path) as r:
        stacks = {sid: [f.addr for f in frames] for sid, frames in r.stacks().items()}
        events = [(e.ts_ns, e.stack_id) for e in r.events()]
        paths = sorted(m.path for m in r.mappings() if m.path.startswith("/lib/"))
    first_brk = next(sid for ts, sid in events if ts == 1004)
    again = next(sid for ts, sid in events if ts == 3001)
    assert first_brk != again and stacks[again] == stacks[first_brk] == [0x10, 100]
    assert paths == ["/lib/again.so", "/lib/child-100.so"]
