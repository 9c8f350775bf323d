"""RSS and resident growth, the pure parts: /proc/PID/status at attach, the per-process and
summed series from the recorded spaces, peaks, resident bytes by class, and the recorder
turning the probe's RSS records and resident sums into rows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.analysis.rss import process_peaks, resident_by_process, run_peak
from heaptrace.analysis.stacks import run_start_ns
from heaptrace.analysis.timeline import Axis, add_resident, add_rss
from heaptrace.backends.ebpf import DEFAULT_MEMBERS, rss_members
from heaptrace.backends.probe_layout import CAUSE_CONTEXT, CAUSE_FAULT, CAUSE_SYSCALL
from heaptrace.backends.records import STACK_WALKED, ResidentSum, RssSample, WalkedStack
from heaptrace.capture.rows import Recorder
from heaptrace.capture.rss import parse_status
from heaptrace.events import RSS_CLASS, Rss
from heaptrace.recording import RecordedRss, Recording, RecordingWriter
from heaptrace.stacks.procmaps import ProcMaps
from tests.helpers import rss_reference
from tests.helpers.rss_reference import Spaces, summed
from tests.helpers.synth import Synth

MIB = 1 << 20
STATUS = """Name:\tpostgres
VmRSS:\t  120 kB
RssAnon:\t   100 kB
RssFile:\t    16 kB
RssShmem:\t     4 kB
VmSwap:\t     8 kB
"""
# kmem:rss_stat's print format on Linux 6.18 (tracefs), the part rss_members reads
FORMAT = ('print fmt: "mm_id=%u curr=%d type=%s size=%ldB", REC->mm_id, REC->curr, '
          '__print_symbolic(REC->member, { 0, "MM_FILEPAGES" }, { 1, "MM_ANONPAGES" }, '
          '{ 2, "MM_SWAPENTS" }, { 3, "MM_SHMEMPAGES" }), REC->size')


def test_status_gives_the_rss_by_class():
    assert parse_status(STATUS) == Rss(100 << 10, 16 << 10, 4 << 10, 8 << 10)
    assert parse_status("Name:\tkthreadd\nVmSwap:\t0 kB\n") is None  # a kernel thread
    assert parse_status("RssAnon:\tlots kB\n") is None


def test_the_members_come_from_the_tracepoints_format():
    assert rss_members(FORMAT) == DEFAULT_MEMBERS
    swapped = FORMAT.replace('{ 0, "MM_FILEPAGES" }, { 1, "MM_ANONPAGES" }',
                             '{ 1, "MM_FILEPAGES" }, { 0, "MM_ANONPAGES" }')
    assert rss_members(swapped)[0] == "anon" and rss_members(swapped)[1] == "file"
    assert rss_members(None) == rss_members("garbage") == DEFAULT_MEMBERS


def row(ms, pid, anon, space=None, why="change", file=0):
    return RecordedRss(ms * 1_000_000, pid, space if space is not None else pid, why,
                       Rss(anon * MIB, file * MIB))


def test_a_process_is_the_sum_of_its_live_spaces():
    rows = [RecordedRss(0, 7, None, "start", Rss(30 * MIB)),  # read at attach
            row(1, 7, 31, space=70),  # the probe names the space: the attach row is done
            row(2, 8, 5), row(3, 7, 0, space=70, why="end"), row(4, 7, 2, space=71)]
    totals = [rss.total // MIB for _, rss in summed(rows)]
    assert totals == [30, 31, 36, 5, 7]
    spaces = Spaces()
    for r in rows:
        spaces.apply(r)
    assert spaces.of(7) == Rss(2 * MIB) and spaces.total() == Rss(7 * MIB)


def test_each_process_peaks_on_its_own(synth):
    rows = [row(1, 7, 10, file=2), row(2, 8, 40), row(3, 7, 30, file=2), row(4, 8, 1),
            row(5, 7, 5)]
    synth.writer.add_rss(rows)
    peaks = process_peaks(synth.open())
    assert (peaks[7].total, peaks[7].rss, peaks[7].ts_ns) == (32 * MIB, Rss(30 * MIB, 2 * MIB),
                                                              3_000_000)
    assert peaks[8].total == 40 * MIB


def test_the_runs_peak_is_the_probes_exact_one(synth):
    synth.rss(1, 7, 10 * MIB)
    synth.rss(3, 7, 20 * MIB)
    rec = synth.open()
    assert run_peak(rec, None).total == 20 * MIB  # no meta: the largest point
    rec.close()
    synth2_meta = {"peak_rss": 25 * MIB, "peak_rss_ns": synth.ts(2),
                   "peak_rss_classes": {"anon": 24 * MIB, "file": MIB, "shmem": 0, "swap": 0}}
    with RecordingWriter.open_existing(rec.path) as w:
        w.set_meta(**synth2_meta)
    with Recording(rec.path) as again:
        peak = run_peak(again, None)
        assert (peak.total, peak.rss, peak.ts_ns) == (25 * MIB, Rss(24 * MIB, MIB), synth.ts(2))
        assert run_peak(again, 7).total == 20 * MIB  # one pid: its own


def test_resident_bytes_by_process_and_class(synth):
    synth.resident(1, 4 * MIB, "anon", pid=7)
    synth.resident(2, MIB, "file", pid=7)
    synth.resident(3, 2 * MIB, "shmem", pid=8)
    rec = synth.open()
    assert resident_by_process(rec) == {7: Rss(4 * MIB, MIB), 8: Rss(0, 0, 2 * MIB)}
    assert resident_by_process(rec, 8) == {8: Rss(0, 0, 2 * MIB)}


def sample(ts, why, anon, peak=0, space=70):
    return RssSample(7, space, why, ts, Rss(anon), peak or anon, ts, Rss(peak or anon))


def test_the_recorder_writes_changes_and_each_spaces_exact_peak(tmp_path):
    path = str(tmp_path / "r.db")
    writer = RecordingWriter(path)
    rec = Recorder(writer, lambda copy: [], maps=ProcMaps(proc_root=str(tmp_path)))
    rec(sample(10, "start", 4096))
    rec(sample(20, "change", 8 * MIB))
    rec(sample(30, "now", 8 * MIB))  # read at a tick, unchanged: not written again
    rec(RssSample(7, 70, "change", 40, Rss(MIB), 9 * MIB, 35, Rss(9 * MIB)))
    rec(sample(50, "start", MIB, space=71))
    rec(RssSample(7, 70, "end", 60, Rss(0), 9 * MIB, 35, Rss(9 * MIB)))
    rec.finish_rss()
    rec.flush()
    writer.close()
    with Recording(path) as r:
        rows = [(x.ts_ns, x.space, x.why, x.rss.anon) for x in r.rss()]
    assert rows == [(10, 70, "start", 4096), (20, 70, "change", 8 * MIB),
                    (35, 70, "peak", 9 * MIB), (40, 70, "change", MIB),
                    (50, 71, "start", MIB), (50, 71, "peak", MIB), (60, 70, "end", 0)]


def test_the_recorder_turns_resident_sums_into_events_with_stacks(tmp_path):
    path = str(tmp_path / "r.db")
    writer = RecordingWriter(path)
    rec = Recorder(writer, lambda copy: [], maps=ProcMaps(proc_root=str(tmp_path)))
    walked = STACK_WALKED | 9
    rec(WalkedStack(walked, 7, (0x10, 0x20)))
    rec(ResidentSum(7, 0, 100, "anon", CAUSE_FAULT, 0, walked, 0, "", 8192, 2, 0x7F00, 8))
    rec(ResidentSum(7, 0, 200, "file", CAUSE_SYSCALL, 0, walked, 0, "", 4096, 1, 0, 8))
    rec(ResidentSum(7, 0, 300, "anon", CAUSE_CONTEXT, 0, 0, 0, "khugepaged", 2 * MIB, 1, 0, 55))
    rec.flush()
    writer.close()
    assert rec.resident_sums == 3 and rec.events == 0  # sums, not calls
    with Recording(path) as r:
        events = list(r.events())
        stacks = r.stacks()
    fault, syscall, context = events
    assert (fault.kind, fault.size, fault.calls, fault.flags, fault.addr) == (
        "resident", 8192, 2, RSS_CLASS["anon"], 0x7F00)
    assert [f.addr for f in stacks[fault.stack_id]] == [0x10, 0x20]
    assert (syscall.prot, syscall.fd, syscall.stack_id) == (CAUSE_SYSCALL, 0, fault.stack_id)
    assert [f.name for f in stacks[context.stack_id]] == ["[kernel: khugepaged]"]
    assert context.prot == CAUSE_CONTEXT and context.fd == -1


# Random rss rows: a few processes, each with the row read at attach (space NULL) and the
# probe's spaces, every reason (an "end" empties a space), ties in time; and resident events.
rss_rows = st.lists(st.tuples(
    st.integers(0, 40),  # ms
    st.sampled_from([7, 8, 9]),  # pid
    st.sampled_from([None, 70, 71, 80]),  # space
    st.sampled_from(["start", "change", "now", "peak", "end", ""]),
    st.tuples(*[st.integers(0, 64)] * 4)), max_size=40)
resident_events = st.lists(st.tuples(st.integers(0, 40), st.sampled_from([7, 8, 9]),
                                     st.sampled_from([0, 1, 2, 3, 9]),
                                     st.integers(-2, 16)), max_size=20)


def random_recording(path, rows, resident):
    synth = Synth(path)
    synth.process(7, "seven")
    synth.writer.add_rss([RecordedRss(synth.ts(ms), pid, space, why,
                                      Rss(*(n * 4096 for n in sizes)))
                          for ms, pid, space, why, sizes in rows])
    for ms, pid, cls, pages in resident:
        synth.event("resident", ms, pid, size=pages * 4096, flags=cls, calls=1)
    synth.writer.set_meta(end_ns=synth.ts(41))
    synth.close()


@settings(max_examples=150, deadline=None)
@given(rss_rows, resident_events, st.sampled_from([None, 7, 8]), st.integers(1, 12))
def test_the_rss_queries_are_the_row_by_row_replays(tmp_path_factory, rows, resident, pid,
                                                    width_ms):
    path = str(tmp_path_factory.mktemp("rss") / "rec.db")
    random_recording(path, rows, resident)
    with Recording(path) as rec:
        recorded = rec.rss(pid)
        assert process_peaks(rec, pid) == rss_reference.process_peaks(recorded)
        if pid is None:
            assert run_peak(rec, None) == rss_reference.largest(recorded)
        else:
            assert run_peak(rec, pid) == rss_reference.process_peaks(recorded).get(pid)
        assert resident_by_process(rec, pid) == rss_reference.resident_by_process(rec, pid)
        assert rec.last_rss_ns(pid) == (recorded[-1].ts_ns if recorded else None)
        origin = run_start_ns(rec) + 5 * 1_000_000  # rows before the first bucket too
        axis = Axis(origin, width_ms * 1_000_000, max(30 // width_ms, 1))
        buckets = axis.buckets()
        add_rss(rec, buckets, axis, pid, None)
        assert [b.rss_split for b in buckets] == rss_reference.bucket_rss(recorded, axis)
        assert [b.rss for b in buckets] == [None if r is None else r.total
                                            for r in rss_reference.bucket_rss(recorded, axis)]
        add_resident(rec, buckets, axis, pid)
        assert [(b.resident, b.resident_split) for b in buckets] == \
            rss_reference.bucket_resident(rec, axis, pid)
