"""`heaptrace run` end to end: backend + session + recorder, and the recording's metadata."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import psutil

from heaptrace import __version__
from heaptrace.analysis.coverage import StackCoverage, coverage
from heaptrace.analysis.lifetimes import store_in as store_lifetimes
from heaptrace.backends.dtrace import SYSTEMS as DTRACE_SYSTEMS
from heaptrace.backends.dtrace import record_with_dtrace
from heaptrace.backends.ebpf import (
    EbpfTracer,
    build_cflags,
    kernel_release,
    preflight,
    probe_source,
)
from heaptrace.capture.mapped import read_mapped
from heaptrace.capture.rows import Recorder
from heaptrace.capture.rss import process_rss
from heaptrace.capture.target import Progress, attach_traced, process_command, run_traced
from heaptrace.errors import BackendUnavailable, CommandNotFound, UsageError
from heaptrace.events import KINDS, KindTotals, Rss
from heaptrace.recording import Recording, RecordingWriter
from heaptrace.stacks.procmaps import ProcMaps
from heaptrace.stacks.python.tracker import warm_up
from heaptrace.stacks.symbols import symbolize_recording
from heaptrace.stacks.unwind.live import LiveUnwinder


@dataclass
class RunOptions:
    output: str = "heaptrace.db"
    force: bool = True
    kinds: Sequence[str] = KINDS
    unwind: str = "dwarf"
    stack_bytes: int = 16384
    ringbuf_mib: int = 64

    @property
    def fp(self) -> bool:
        return self.unwind == "fp"

    def cflags(self) -> List[str]:
        """The probe's compile-time settings for these options."""
        return build_cflags(self.kinds, 0 if self.fp else self.stack_bytes, self.fp,
                            self.ringbuf_mib)

    def probe_text(self) -> str:
        """The BPF program as it is compiled with these settings (`run --ebpf`)."""
        return probe_source(self.cflags())


@dataclass
class RunResult:
    exit_code: int
    totals: Dict[str, KindTotals]
    counters: Dict[str, int] = field(default_factory=dict)
    events: int = 0
    stacks: Optional[StackCoverage] = None
    peak_rss: Optional[int] = None  # exact: the summed RSS of the traced processes
    peak_rss_classes: Optional[Rss] = None  # its split (within the pages of that instant)
    notes: List[str] = field(default_factory=list)  # what the summary must add (Python)


def record(argv: Sequence[str], options: RunOptions) -> RunResult:
    """Trace argv with the backend this system has: eBPF on Linux, DTrace on illumos/macOS."""
    if platform.system() in DTRACE_SYSTEMS:
        return _record_with_dtrace(argv, options)
    return record_command(argv, options)


def _record_with_dtrace(argv: Sequence[str], options: RunOptions) -> RunResult:
    code = record_with_dtrace(argv, options.output, force=options.force, kinds=options.kinds)
    with Recording(options.output) as rec:
        totals, meta, events = rec.totals(), rec.meta(), rec.event_count()
    return RunResult(code, totals, {"lost": int(meta.get("lost_events", 0) or 0)}, events)


class EbpfCapture:
    """One eBPF recording: the probe, the recorder and the recording file, from set-up to the
    finished, symbolized recording."""

    def __init__(self, options: RunOptions, command: Sequence[str]) -> None:
        preflight()
        self.options = options
        self.command = list(command)
        self.writer = RecordingWriter(options.output, force=options.force)
        self.maps = ProcMaps()
        self.live = LiveUnwinder(self.maps, lambda *rules: self.tracer.teach(*rules))
        self.recorder = Recorder(self.writer, self.live, maps=self.maps,
                                 teach_python=lambda *py: self.tracer.teach_python(*py))
        warming = threading.Thread(target=warm_up, args=(self.command,), daemon=True)
        warming.start()  # while the probe compiles
        self.tracer = EbpfTracer(self.recorder, options.cflags(), fp_stacks=options.fp,
                                 look_ahead=self.recorder.prepare)
        warming.join()
        if options.fp:
            self.recorder.fp_stack = self.tracer.stack_ips
        self.progress = Progress()
        self.started = time.time()
        self.writer.set_meta(
            command=self.command, command_line=shlex.join(self.command),
            start_ns=time.monotonic_ns(), started_at=self.started, kernel=kernel_release(),
            heaptrace_version=__version__, source="ebpf", unwind=options.unwind,
            kinds=list(options.kinds), cwd=os.getcwd(), complete=False,
            page_size=os.sysconf("SC_PAGE_SIZE"),
        )
        self.writer.commit()

    def tick(self) -> None:
        if self.recorder.due():
            self.tracer.drain_resident()
            self._rss_now()
            self.recorder.flush()
            lost = self.checkpoint()
            self.progress.update(self.recorder.events, self.recorder.growth, lost)

    def _rss_now(self) -> None:
        """Each followed space's RSS now (written when it changed since its last record)."""
        for sample in self.tracer.rss_now():
            self.recorder(sample)

    def checkpoint(self) -> int:
        """What a reader needs if heaptrace dies now: exact totals so far and the mappings
        to symbolize with (`heaptrace symbolize` then finishes the job). Returns the events
        lost so far."""
        lost = self.tracer.counters()["lost"]
        self.writer.set_totals(self.tracer.totals())
        self.writer.set_meta(lost_events=lost)
        self.maps.save(self.writer, changed_only=True)
        self.writer.commit()
        return lost

    def arm(self, pid: int) -> None:
        """The target, stopped before its exec: traced from the exec on."""
        self.tracer.arm(pid)
        self._add_root(pid, os.getpid(), os.path.basename(self.command[0])[:15])
        self.writer.set_meta(root_pid=pid)

    def attach(self, pid: int) -> None:
        """A running process and every descendant it has now (later ones follow by fork)."""
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            raise UsageError(f"process {pid} ended before it could be traced") from None
        attached = sum(self._attach_one(proc) for proc in procs)
        more = f" and {attached - 1} descendants" if attached > 1 else ""
        print(f"heaptrace: attached to PID {pid}{more}", file=sys.stderr, flush=True)
        self.writer.set_meta(attached=True, root_pid=pid)

    def _attach_one(self, proc: psutil.Process) -> bool:
        try:
            ppid, name = proc.ppid(), proc.name()[:15]
        except psutil.NoSuchProcess:
            return False  # a short-lived descendant already gone
        rss = process_rss(proc.pid)
        if rss is not None:  # where its RSS starts; the probe measures changes from it
            self.tracer.seed_rss(proc.pid, rss)
            self.recorder.add_rss_start(proc.pid, time.monotonic_ns(), rss)
        self.tracer.attach(proc.pid, read_mapped(proc.pid))
        self.maps.snapshot(proc.pid, time.monotonic_ns())
        self.recorder.look_for_python(proc.pid)
        self._add_root(proc.pid, ppid, name)
        return True

    def _add_root(self, pid: int, ppid: int, comm: str) -> None:
        self.recorder.note_parent(pid, ppid)
        self.writer.add_process(pid, ppid, comm, time.monotonic_ns())

    def finish(self, exit_code: Optional[int], discard: bool = False) -> RunResult:
        """Drain the probe, write totals and metadata, close, symbolize."""
        self.tracer.drain()
        self.tracer.drain_resident(final=True)
        self._rss_now()
        self.recorder.finish_rss()
        totals, counters = self.tracer.totals(), self.tracer.counters()
        peak, peak_ns, peak_rss = self.tracer.rss_peak()
        self.recorder.flush()
        self.progress.done()
        self.writer.set_totals(totals)
        self.writer.set_meta(
            end_ns=time.monotonic_ns(), duration_s=time.time() - self.started,
            lost_events=counters["lost"], events_recorded=self.recorder.events,
            events_with_stack=self.recorder.with_stack, probe_counters=counters,
            stack_copies_unwound=self.live.copies, stack_copies_whole=self.live.complete,
            peak_rss=peak, peak_rss_ns=peak_ns, peak_rss_classes=_classes(peak_rss),
            resident_classes={name: [t.calls, t.bytes, t.released]
                              for name, t in self.tracer.rss_classes().items()},
            resident_sums=self.recorder.resident_sums, complete=True,
        )
        if exit_code is not None:
            self.writer.set_meta(exit_code=exit_code)
        self.maps.save(self.writer)
        self.writer.close()
        self.tracer.close()
        if discard:
            os.unlink(self.options.output)  # nothing ran: leave no empty recording behind
            return RunResult(exit_code or 0, totals, counters)
        stacks = _finish_stacks(self.options.output)
        interpreters, notes = self.recorder.python.summary()
        if interpreters or notes:
            with RecordingWriter.open_existing(self.options.output) as writer:
                writer.set_meta(python_interpreters=interpreters, python_notes=notes)
        return RunResult(exit_code or 0, totals, counters, self.recorder.events, stacks,
                         peak, peak_rss, notes)


def _classes(rss: Rss) -> Dict[str, int]:
    return {"anon": rss.anon, "file": rss.file, "shmem": rss.shmem, "swap": rss.swap}


def _finish_stacks(path: str) -> StackCoverage:
    """Symbolize every stack (the mappings are complete now) and note how whole they are;
    store what became of every byte taken (analysis/lifetimes.py), for the held views."""
    symbolize_recording(path)
    store_lifetimes(path)
    with Recording(path) as rec:
        stacks = coverage(rec)
    with RecordingWriter.open_existing(path) as writer:
        writer.set_meta(bytes_with_whole_stack_share=round(stacks.whole_share, 6),
                        frames_unsymbolized_share=round(stacks.unsymbolized_share, 6))
    return stacks


def record_command(argv: Sequence[str], options: RunOptions) -> RunResult:
    """Trace argv and everything it starts into options.output; returns what happened."""
    capture = EbpfCapture(options, argv)
    target, failed_to_start = None, False
    try:
        target = run_traced(argv, capture.arm, capture.tracer.poll, capture.tick)
    except CommandNotFound:
        failed_to_start = True
        raise
    finally:
        result = capture.finish(target.exit_code if target else None, failed_to_start)
    return result


def attach_process(pid: int, options: RunOptions, duration: Optional[float]) -> RunResult:
    """Trace a running process (and its descendants) until it exits, heaptrace is
    interrupted, or `duration` seconds have passed."""
    if platform.system() in DTRACE_SYSTEMS:
        raise BackendUnavailable("--pid is implemented for the eBPF backend (Linux) only",
                                 f"on {platform.system()}, use dtrace -p {pid} with probes/*.d")
    command = process_command(pid)
    capture = EbpfCapture(options, command)
    try:
        capture.writer.set_meta(attach_end=attach_traced(
            pid, capture.attach, capture.tracer.poll, capture.tick, duration))
    finally:
        result = capture.finish(None)
    return result
