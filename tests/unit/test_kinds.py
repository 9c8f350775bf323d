"""One row per kind (heaptrace/events.py SPECS) and every consumer that derives from it: a new
kind that some consumer does not know fails here, not in a user's recording."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from heaptrace.analysis.replay import HANDLERS
from heaptrace.analysis.stacks import EVENT_CHOICES, kinds_for
from heaptrace.backends.ebpf import build_cflags
from heaptrace.backends.records import Call, ResidentSum
from heaptrace.capture.rows import call_to_event, resident_event
from heaptrace.commands.histogram import histogram
from heaptrace.commands.import_ import import_
from heaptrace.commands.run import _kinds
from heaptrace.events import (
    GROWTH_KINDS,
    KINDS,
    RELEASE_KINDS,
    RSS_CLASS,
    SPECS,
    SYSCALL_KINDS,
    Effect,
    Event,
    Frame,
    KindSpec,
    KindTotals,
    given_back,
    growth,
)
from heaptrace.formats.dtrace_events import _Call, _event
from heaptrace.importers.common import leaf_kind
from heaptrace.importers.perf import SYSCALL
from heaptrace.importers.perf import _event as perf_event
from heaptrace.recording import Recording, RecordingWriter
from heaptrace.render.histogram import kind_lines
from tests.helpers.cli import heaptrace

PROBES = Path(__file__).resolve().parents[2] / "probes"
PROBE_TEXT = "\n".join(p.read_text() for p in sorted(PROBES.glob("*.[ch]")))
# Kinds the retained/held replay deliberately leaves alone (and why), so that a new kind
# without a handler fails below until someone decides.
# kinds the held replay (analysis/retained.py) has no step for, and why
REPLAY_IGNORES = {"resident": "pages, not address space: never replayed (steps() reads the "
                              "syscall kinds only)"}
ARGS = (0x7F0000001000, 0x20000, 0x3, 0x22, 0xFFFFFFFF, 0)
ids = [s.name for s in SPECS]
SYSCALLS = [s for s in SPECS if s.is_syscall]
OTHERS = [s for s in SPECS if not s.is_syscall]


def _define(name: str) -> int:
    m = re.search(rf"^#define {name} (\d+)", PROBE_TEXT, re.M)
    assert m, f"{name} is not defined in probes/"
    return int(m.group(1))


def test_the_table_is_consistent():
    assert [s.index for s in sorted(SPECS, key=lambda s: s.index)] == list(range(len(SPECS)))
    assert len(KINDS) == _define("NKINDS")
    resident = {s.name for s in SPECS if s.effect is Effect.RESIDENT}
    assert set(GROWTH_KINDS) | set(RELEASE_KINDS) | resident == set(KINDS)
    assert not set(GROWTH_KINDS) & set(RELEASE_KINDS)
    assert set(SYSCALL_KINDS) == set(KINDS) - {s.name for s in OTHERS}
    assert kinds_for("all") == SYSCALL_KINDS


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_the_probe_knows_the_kind(spec: KindSpec):
    name = spec.name.upper()
    assert _define(f"KIND_{name}") == spec.index
    if spec.is_syscall:
        assert re.search(rf"nr == NR_{name}\)\s+kind = KIND_{name};", PROBE_TEXT)
    else:  # counted by its own probe, never taken for a syscall
        assert re.search(rf"add_totals\(KIND_{name}, ", PROBE_TEXT)
        assert not re.search(rf"NR_\w+\)\s+kind = KIND_{name};", PROBE_TEXT)
    assert f"-DKIND_MASK={1 << spec.index}" in build_cflags([spec.name], 0, False, 16)


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_growth_and_give_back_follow_the_effect(spec: KindSpec, tmp_path):
    grown, shrunk = Event(spec.name, 4096), Event(spec.name, -4096)
    if spec.effect is Effect.RESIDENT:  # pages, not address space: neither taken nor given
        assert (growth(grown), given_back(grown), growth(shrunk), given_back(shrunk)) == (0,) * 4
        assert spec.name not in kinds_for("growth") + kinds_for("all")
        return
    if spec.effect is Effect.GIVES_BACK:
        assert (growth(grown), given_back(grown)) == (0, 4096)
    else:
        assert (growth(grown), given_back(grown)) == (4096, 0)
        assert (growth(shrunk), given_back(shrunk)) == (0, 4096)
    # the timeline's and the report's sums of calls and taken, in SQLite, count as growth() does
    writer = RecordingWriter(str(tmp_path / "r.db"))
    writer.add_events([grown])
    writer.close()
    with Recording(str(tmp_path / "r.db")) as rec:
        assert rec.sums_by_bucket("0") == [(0, 1, growth(grown))]
    assert (spec.name in kinds_for("growth")) == (spec.effect is not Effect.GIVES_BACK)


@pytest.mark.parametrize("spec", SYSCALLS, ids=[s.name for s in SYSCALLS])
def test_a_probe_call_becomes_the_kinds_event(spec: KindSpec):
    call = Call(spec.name, 5, 10, 11, ARGS, 0x7F0000002000, 4096, 0x401000)
    event = call_to_event(call, 3)
    assert (event.kind, event.size, event.stack_id, event.ret) == (spec.name, 4096, 3,
                                                                  0x7F0000002000)
    for name, value in zip(spec.args, ARGS):
        assert getattr(event, name) == (-1 if name == "fd" else value)
    assert event.new_addr == (0x7F0000002000 if spec.returns_address else 0)


@pytest.mark.parametrize("spec", OTHERS, ids=[s.name for s in OTHERS])
def test_a_probe_sum_becomes_the_kinds_event(spec: KindSpec):
    rs = ResidentSum(10, 1, 500, "file", 2, 0, 0, 0, "", 8192, 2, 0x7F00, 11)
    event = resident_event(rs, 3)
    assert (event.kind, event.size, event.calls, event.stack_id) == (spec.name, 8192, 2, 3)
    assert (event.pid, event.tid, event.flags, event.prot, event.fd) == (10, 11,
                                                                        RSS_CLASS["file"], 2, 0)


@pytest.mark.parametrize("spec", SYSCALLS, ids=[s.name for s in SYSCALLS])
def test_a_dtrace_call_becomes_the_kinds_event(spec: KindSpec):
    call = _Call(spec.name, spec.name, 10, 11, 5, ARGS[:5], 0x7F0000002000, 0)
    event = _event(call, 8192)
    # brk's growth comes from the break before; mprotect's bytes from what the pages were,
    # which a DTrace call line cannot tell (0)
    expected = 8192 if spec.name == "brk" else spec.size_of(spec.fields_from_args(ARGS)) or 0
    assert (event.kind, event.size) == (spec.name, expected)
    failed = _event(_Call(spec.name, spec.name, 10, 11, 5, ARGS[:5], -1, 12), 8192)
    assert (failed.size, failed.ret) == (0, -12)


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_perf_names_the_kind(spec: KindSpec):
    if not spec.is_syscall:  # no syscall tracepoint: perf samples of it import with --event
        assert not spec.perf_tracepoint and not SYSCALL.match(f"sys_enter_{spec.name}")
        return
    assert SYSCALL.match(spec.perf_tracepoint).group(1) == spec.name
    named = dict(zip(spec.perf_args, ARGS))
    event = perf_event(spec.name, named, Event(spec.name, 0))
    expected = spec.size_of(spec.fields_from_args(ARGS))
    assert event.size == (expected or 0)


@pytest.mark.parametrize("spec", SYSCALLS, ids=[s.name for s in SYSCALLS])
def test_a_stack_ending_in_its_wrapper_is_the_kind(spec: KindSpec):
    assert leaf_kind([Frame(spec.name), Frame("main")]) == spec.name
    assert leaf_kind([Frame(f"__{spec.name}"), Frame("main")]) == spec.name


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_views_and_options_offer_the_kind(spec: KindSpec):
    assert spec.name in EVENT_CHOICES and kinds_for(spec.name) == (spec.name,)
    assert _kinds(spec.name) == (spec.name,)
    for command in (import_, histogram):
        (option,) = [p for p in command.params if p.name == "kind"]
        assert spec.name in option.type.choices
    lines = kind_lines(spec.name, KindTotals(calls=2, bytes=8192, buckets={4096: 2}))
    assert lines[0].strip() == spec.title
    assert any(spec.bytes_label in line for line in lines)


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_the_held_replay_handles_the_kind_or_says_why_not(spec: KindSpec):
    assert spec.name in HANDLERS or spec.name in REPLAY_IGNORES


def test_histogram_refuses_an_unknown_kind(tmp_path):
    result = heaptrace("histogram", str(tmp_path / "x.db"), "--event", "brkk")
    assert result.returncode == 2 and "brkk" in result.stderr


def test_the_madvise_advice_values_are_the_probes():
    from heaptrace.events import MADV_DONTNEED, MADV_FREE, MADV_REMOVE
    values = {"MADV_DONTNEED": MADV_DONTNEED, "MADV_FREE": MADV_FREE, "MADV_REMOVE": MADV_REMOVE}
    for name, value in values.items():
        assert _define(name) == value
