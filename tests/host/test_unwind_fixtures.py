"""The DWARF unwinder on stacks captured by gdb at brk/mmap syscalls (tests/data/stacks):
the same frames as gdb's own backtrace, whole down to the entry point. The captured maps
name the host's libc and loader by path: a host-tier test."""

from __future__ import annotations

import pytest

from heaptrace.stacks.symbols import Symbolizer
from heaptrace.stacks.unwind.dwarf import BAD_FRAME, ENTRY, TRUNCATED, Unwinder
from tests.helpers.stackfixtures import Stop, all_stops, load

STOPS = all_stops()


def gdb_reference(stop: Stop):
    """gdb's frames up to its last named one: past the loader's _start (which has no CFI)
    gdb goes on guessing frames it cannot name."""
    last = max(i for i, name in enumerate(stop.gdb_names) if name)
    return stop.gdb_pcs[: last + 1]


def names(stop: Stop):
    maps = stop.procmaps()
    ips = Unwinder(maps).unwind(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack)
    return [f.name for f in Symbolizer(maps).stack(stop.pid, ips)]


def own_chain(frames, own):
    return [f for f in frames if f in own]


@pytest.mark.parametrize("stop", STOPS, ids=lambda s: f"{s.program}-{s.follow}-{s.sp:x}")
def test_same_frames_as_gdb_and_whole(stop):
    walk = Unwinder(stop.procmaps()).walk(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack)
    assert walk.ips == gdb_reference(stop)
    assert walk.stop == ENTRY


def test_fixtures_cover_every_kind_of_stack():
    programs = {(s.program, s.follow) for s in STOPS}
    assert {("chain", "parent"), ("chain", "child"), ("templates", "parent")} <= programs
    assert any(s.tid != s.pid for s in STOPS)  # a second thread
    assert any(len(s.stack) < 16384 for s in STOPS)  # a copy cut short by the stack's top


def test_main_thread_brk_chain_down_to_start():
    stop = next(s for s in load("chain") if s.syscall == "brk" and "main" in s.gdb_names)
    frames = names(stop)
    assert frames[0] in ("brk", "__brk")
    assert frames[1:5] == ["sbrk", "__glibc_morecore", "sysmalloc", "_int_malloc"]
    assert own_chain(frames, {"grow_heap", "level3", "level2", "level1", "main"}) == [
        "grow_heap", "level3", "level2", "level1", "main"]
    assert frames[-3:] == ["__libc_start_call_main", "__libc_start_main", "_start"]


def test_second_thread_ends_at_its_start_routine_and_clone3():
    stop = next(s for s in load("chain") if s.tid != s.pid and s.syscall == "mmap")
    frames = names(stop)
    assert frames[-4:] == ["thread_work", "thread_main", "start_thread", "clone3"]
    assert "malloc" in frames


def test_forked_child_reaches_main_through_its_own_functions():
    for program in ("chain", "chain-debugframe"):
        stops = load(program, "child")
        assert stops and all(s.pid != load(program)[0].pid for s in stops)
        frames = names(stops[0])
        assert own_chain(frames, {"level1", "child_work", "main"}) == [
            "level1", "child_work", "main"]
        assert frames[-1] == "_start"


def test_signal_frame_is_crossed():
    stop = next(s for s in load("chain") if "__restore_rt" in s.gdb_names)
    frames = names(stop)
    i = frames.index("__restore_rt")
    assert frames[:i] == ["mmap", "map_chain"]
    assert "raise_it" in frames[i:] and frames[-1] == "_start"


def test_program_cfi_only_in_debug_frame():
    stop = next(s for s in load("chain-debugframe") if "level1" in s.gdb_names)
    assert "level3" in names(stop)


def test_cpp_names_are_demangled():
    frames = [f for s in load("templates") if "main" in s.gdb_names for f in names(s)]
    assert "operator new(unsigned long)" in frames
    assert any(f.startswith("heap::detail::Pool<double, 4ul>::grow(unsigned long)")
               for f in frames)
    assert any(f.startswith("long* heap::allocate<long>(heap::detail::Pool<long, 4ul>&")
               for f in frames)


def test_copy_shorter_than_the_frames_stops_as_truncated():
    stop = next(s for s in load("chain") if "main" in s.gdb_names)
    full = Unwinder(stop.procmaps()).walk(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack)
    short = Unwinder(stop.procmaps()).walk(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack[:256])
    assert short.stop == TRUNCATED
    assert 1 < len(short.ips) < len(full.ips)
    assert short.ips == full.ips[: len(short.ips)]


def test_unknown_address_space_stops_at_the_leaf():
    stop = STOPS[0]
    walk = Unwinder(stop.procmaps()).walk(stop.pid + 1, stop.ip, stop.sp, stop.bp, stop.stack)
    assert walk.ips == [stop.ip] and walk.stop == BAD_FRAME


def test_rules_are_cached_per_pc():
    stop = next(s for s in load("chain") if "main" in s.gdb_names)
    unwinder = Unwinder(stop.procmaps())
    first = unwinder.unwind(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack)
    cached = dict(unwinder._rules_of(stop.pid))
    assert len(cached) == len(first)  # one rule per frame, the outermost's included
    assert unwinder.unwind(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack) == first
    assert unwinder._rules_of(stop.pid) == cached
