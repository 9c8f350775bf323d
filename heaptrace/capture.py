"""`heaptrace run` end to end: backend + session + recorder, and the recording's metadata."""

from __future__ import annotations

import os
import platform
import shlex
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

from heaptrace import __version__
from heaptrace.analysis.coverage import StackCoverage, coverage
from heaptrace.backends.dtrace import SYSTEMS as DTRACE_SYSTEMS
from heaptrace.backends.dtrace import record_with_dtrace
from heaptrace.backends.ebpf import EbpfTracer, kernel_release, preflight
from heaptrace.errors import CommandNotFound
from heaptrace.events import KINDS, KindTotals
from heaptrace.procmaps import ProcMaps
from heaptrace.recorder import Recorder
from heaptrace.recording import Recording, RecordingWriter
from heaptrace.session import Progress, run_traced
from heaptrace.symbols import symbolize_recording
from heaptrace.unwind.live import LiveUnwinder


@dataclass
class RunOptions:
    output: str = "heaptrace.db"
    force: bool = True
    kinds: Sequence[str] = KINDS
    unwind: str = "dwarf"
    stack_bytes: int = 16384
    ringbuf_mib: int = 64


@dataclass
class RunResult:
    exit_code: int
    totals: Dict[str, KindTotals]
    counters: Dict[str, int] = field(default_factory=dict)
    events: int = 0
    stacks: Optional[StackCoverage] = None


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


def record_command(argv: Sequence[str], options: RunOptions) -> RunResult:
    """Trace argv and everything it starts into options.output; returns what happened."""
    preflight()
    writer = RecordingWriter(options.output, force=options.force)
    maps = ProcMaps()
    live = LiveUnwinder(maps, lambda *rules: tracer.teach(*rules))
    recorder = Recorder(writer, live, maps=maps)
    fp = options.unwind == "fp"
    tracer = EbpfTracer(
        recorder, options.kinds, 0 if fp else options.stack_bytes, fp_stacks=fp,
        ringbuf_pages=options.ringbuf_mib * 256,
    )
    if fp:
        recorder.fp_stack = tracer.stack_ips
    progress = Progress()
    started_ns, started = time.monotonic_ns(), time.time()
    writer.set_meta(
        command=list(argv), command_line=shlex.join(argv), start_ns=started_ns,
        started_at=started, kernel=kernel_release(), heaptrace_version=__version__,
        source="ebpf", unwind=options.unwind, kinds=list(options.kinds), cwd=os.getcwd(),
    )
    writer.commit()

    def tick() -> None:
        recorder.flush_if_due()
        progress.update(recorder.events, recorder.growth, tracer.counters()["lost"])

    def arm(pid: int) -> None:
        tracer.arm(pid)
        recorder.note_parent(pid, os.getpid())
        writer.add_process(pid, os.getpid(), os.path.basename(argv[0])[:15], time.monotonic_ns())
        writer.set_meta(root_pid=pid)

    target, failed_to_start = None, False
    try:
        target = run_traced(argv, arm, tracer.poll, tick)
    except CommandNotFound:
        failed_to_start = True
        raise
    finally:
        tracer.drain()
        totals, counters = tracer.totals(), tracer.counters()
        recorder.flush()
        progress.done()
        writer.set_totals(totals)
        writer.set_meta(
            end_ns=time.monotonic_ns(), duration_s=time.time() - started,
            lost_events=counters["lost"], events_recorded=recorder.events,
            events_with_stack=recorder.with_stack, probe_counters=counters,
            stack_copies_unwound=live.copies, stack_copies_whole=live.complete,
        )
        if target is not None:
            writer.set_meta(exit_code=target.exit_code)
        maps.save(writer)
        writer.close()
        tracer.close()
        if failed_to_start:
            os.unlink(options.output)  # nothing ran: leave no empty recording behind
    symbolize_recording(options.output)
    with Recording(options.output) as rec:
        stacks = coverage(rec)
    with RecordingWriter.open_existing(options.output) as writer:
        writer.set_meta(bytes_with_whole_stack_share=round(stacks.whole_share, 6),
                        frames_unsymbolized_share=round(stacks.unsymbolized_share, 6))
    return RunResult(target.exit_code, totals, counters, recorder.events, stacks)
