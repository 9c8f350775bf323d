"""A small but complete recording, as a run writes one: every table filled (meta of an eBPF
run, totals with buckets and memory classes, events of every kind with stacks and classes,
processes with an exec, mappings, the kernel's RSS counters, a Python code object and the
Python frames of a stack, and the lifetimes a run stores), for tests that take recordings
apart."""

from __future__ import annotations

from heaptrace.analysis.lifetimes import store as store_lifetimes
from heaptrace.events import KINDS, Event, Frame, KindTotals, MemClass, Rss
from heaptrace.recording import RecordedRss, RecordingWriter
from heaptrace.stacks.python.layouts import LNOTAB

START = 1_000_000_000
C = MemClass.COMMITTED.code
MS = 1_000_000


def write_full_recording(path: str, pid: int = 42) -> None:
    with RecordingWriter(path) as w:
        w.set_meta(source="ebpf", command=["prog", "--big"], command_line="prog --big",
                   start_ns=START, end_ns=START + 900 * MS, duration_s=0.9, exit_code=0,
                   kernel="6.18", kinds=list(KINDS),
                   unwind="dwarf", complete=True, lost_events=0, events_recorded=10,
                   probe_counters={"lost": 0}, peak_rss=5 << 20, page_size=4096)
        w.add_process(pid, 1, "sh", START)
        w.end_process(pid, START + 100 * MS)
        w.add_process(pid, 1, "prog", START + 100 * MS)  # the exec
        w.end_process(pid, START + 900 * MS, 0)
        w.add_process(pid + 1, pid, "prog", START + 200 * MS)
        w.end_process(pid + 1, START + 800 * MS, 0)
        w.add_mapping(pid, 0x400000, 0x401000, 0, "/usr/bin/prog", "ab" * 20, START + 100 * MS)
        w.add_mapping(pid, 0x7F0000000000, 0x7F0000100000, 0, "/lib/libc.so.6", None,
                      START + 100 * MS, START + 850 * MS)
        code, scope = 0x7E0000001000, 0x7E0000002000
        w.add_py_code(pid, code, scope, START, "grow", "Buffer.grow", "/srv/app.py", 10, 0,
                      LNOTAB, b"\x02\x01\x04\x01")
        raw = w.add_stack(ips=[0x400100, 0x400200, 0x7F0000000100], pid=pid, ts_ns=START,
                          py=[(code, 4, True, scope)])
        named = w.add_stack(frames=[Frame("malloc", "/lib/libc.so.6", 0x7F0000000100),
                                    Frame("grow", "/usr/bin/prog", 0x400200),
                                    Frame("main", "/usr/bin/prog", 0x400100),
                                    Frame("_start", "/usr/bin/prog", 0x400010)])
        child = w.add_stack(ips=[0x400300], pid=pid + 1, ts_ns=START + 300 * MS)
        w.set_stack_frames(child, [Frame("child_main", "/usr/bin/prog", 0x400300)])
        at = lambda ms: START + ms * MS  # noqa: E731
        w.add_events([
            Event("brk", 135168, at(110), pid, pid, addr=0x600000, ret=0x621000, stack_id=raw),
            Event("mmap", 1 << 20, at(120), pid, pid, length=1 << 20, prot=3, flags=0x22,
                  ret=0x7F1000000000, new_addr=0x7F1000000000, stack_id=named, mem_class=C),
            Event("mmap", 8192, at(130), pid, pid, length=8192, prot=5, flags=2, fd=3,
                  ret=0x7F2000000000, new_addr=0x7F2000000000, stack_id=named,
                  mem_class=MemClass.FILE.code),
            Event("mremap", 1 << 20, at(300), pid, pid, addr=0x7F1000000000, length=1 << 20,
                  new_length=2 << 20, flags=1, ret=0x7F3000000000, new_addr=0x7F3000000000,
                  stack_id=raw, mem_class=C),
            Event("mprotect", 4096, at(305), pid, pid, addr=0x7F3000001000, length=4096, prot=3,
                  stack_id=raw, mem_class=C),
            Event("madvise", 4096, at(400), pid, pid, addr=0x7F3000000000, length=4096,
                  flags=4, stack_id=named),
            Event("munmap", 1 << 20, at(500), pid, pid, addr=0x7F3000000000, length=1 << 20,
                  stack_id=named),
            Event("brk", -4096, at(600), pid, pid, addr=0x620000, ret=0x620000, stack_id=None),
            Event("mmap", 65536, at(310), pid + 1, pid + 1, length=65536, prot=3, flags=0x22,
                  ret=0x7F4000000000, new_addr=0x7F4000000000, stack_id=child, mem_class=C),
            Event("mmap", 0, at(320), pid + 1, pid + 1, length=1 << 40, prot=3, flags=0x22,
                  ret=-12, stack_id=child),
        ])
        why = ("start", "change", "peak", "end")
        w.add_rss([RecordedRss(at(100 + 200 * i), pid, 7, why[i], Rss(anon, 1 << 20, 0, 0))
                   for i, anon in enumerate((1 << 20, 3 << 20, 5 << 20, 2 << 20))])
        w.add_rss([RecordedRss(at(350), pid + 1, 8, "start", Rss(1 << 20, 0, 4096, 0))])
        w.set_totals({
            "brk": KindTotals(2, 0, 135168, 4096, {131072: 1}),
            "mmap": KindTotals(4, 1, (1 << 20) + 8192 + 65536, 0,
                               {8192: 1, 65536: 1, 1 << 20: 1},
                               {"committed": (1 << 20) + 65536, "file": 8192}),
            "munmap": KindTotals(1, 0, 1 << 20, 0, {1 << 20: 1}),
            "mremap": KindTotals(1, 0, 1 << 20, 0, {1 << 20: 1}, {"committed": 1 << 20}),
            "mprotect": KindTotals(1, 0, 4096, 0, {4096: 1}),
            "madvise": KindTotals(1, 0, 4096, 0, {4096: 1}),
        })
        w.store_derived(store_lifetimes)  # as run and import store them
