"""`heaptrace run` end to end: backend + session + recorder, and the recording's metadata."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Deque, Dict, List, Optional, Sequence, TextIO, Tuple

import psutil

from heaptrace import __version__
from heaptrace.backends.dtrace import SYSTEMS as DTRACE_SYSTEMS
from heaptrace.backends.dtrace import record_with_dtrace
from heaptrace.backends.ebpf import (
    EbpfTracer,
    build_cflags,
    kernel_release,
    preflight,
    probe_source,
)
from heaptrace.capture.finish import FinishingStopped, drain_cut_reason, finish
from heaptrace.capture.mapped import read_mapped
from heaptrace.capture.procinfo import AttachTarget
from heaptrace.capture.rows import Recorder
from heaptrace.capture.rss import process_rss
from heaptrace.capture.signals import FinishWatch, TracingStopped, signal_name
from heaptrace.capture.target import Progress, attach_traced, run_traced
from heaptrace.errors import BackendUnavailable, HeaptraceError, UsageError
from heaptrace.events import KINDS, KindTotals, Rss
from heaptrace.recording import Recording, RecordingWriteError, RecordingWriter, RunMeta
from heaptrace.recording.files import ANY_FILE, RECORDING
from heaptrace.render.terminal import printable
from heaptrace.stacks.procmaps import ProcMaps
from heaptrace.stacks.python.tracker import warm_up
from heaptrace.stacks.unwind.live import LiveUnwinder

if TYPE_CHECKING:
    from heaptrace.analysis.coverage import StackCoverage

CHECKPOINT_S = 0.5  # how often a run commits its exact totals and mappings so far


@dataclass
class RunOptions:
    output: str = "heaptrace.db"
    force: bool = False  # replace OUTPUT even when it is not a heaptrace recording
    kinds: Sequence[str] = KINDS
    unwind: str = "dwarf"
    stack_bytes: int = 16384
    ringbuf_mib: int = 64

    @property
    def fp(self) -> bool:
        return self.unwind == "fp"

    @property
    def overwrite(self) -> str:
        """What the output may replace: a previous recording, or with --force any file."""
        return ANY_FILE if self.force else RECORDING

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
    code = record_with_dtrace(argv, options.output, overwrite=options.overwrite,
                              kinds=options.kinds)
    with Recording(options.output) as rec:
        totals, meta, events = rec.totals(), rec.meta(), rec.event_count()
    return RunResult(code, totals, {"lost": meta.lost_events}, events)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HeaptraceError):
        return str(exc)
    return f"internal error while recording: {type(exc).__name__}: {exc}"


class EbpfCapture:
    """One eBPF recording: the probe, the recorder and the recording file, from set-up to the
    finished, symbolized recording.

    The recording is written to a private file beside the output until the traced command
    has started (its first records arrived): a failed start, a bad option or Ctrl-C before
    that leaves the previous output as it was. From then on it is the output, committed in
    batches, so a run cut short (heaptrace killed) leaves a readable recording that says it
    is incomplete. A write error or an exception while handling the probe's records stops
    the recording: the file then says why, what was written and what was not."""

    def __init__(self, options: RunOptions, command: Sequence[str], attached: bool = False,
                 stderr: Optional[TextIO] = None) -> None:
        preflight()
        self.options = options
        self.command = list(command)
        self.attached = attached
        self.stderr = stderr or sys.stderr
        self.failure: Optional[BaseException] = None
        self._finishing = False
        self._cut: Optional[str] = None  # a stop signal cut the handling of a batch of records
        self._last_checkpoint = 0.0
        self._final: Optional[Tuple[Dict[str, KindTotals], Dict[str, int]]] = None
        self._rss_end: Dict[str, object] = {}  # the exact peak RSS and resident classes
        self._peak: Tuple[Optional[int], Optional[Rss]] = (None, None)
        self._python_notes: List[str] = []
        self._watch: Optional[FinishWatch] = None  # while finish() runs
        self._late_signal: Optional[int] = None  # a stop signal after the one that stopped
        self._drain_cut: Optional[Tuple[int, int]] = None  # (signal, events not written)
        self._drain_said = False
        # (records taken into the backlog at a tick, a time before which the probe held back
        # nothing then): once those are handed on, processes exited before it are forgotten
        self._forget_at: Deque[Tuple[int, int]] = deque()
        meta = RunMeta(
            source="ebpf", command=self.command, command_line=shlex.join(self.command),
            kernel=kernel_release(), heaptrace_version=__version__, unwind=options.unwind,
            kinds=list(options.kinds), cwd=_cwd(), page_size=os.sysconf("SC_PAGE_SIZE"),
            attached=attached, complete=False)
        self.writer = RecordingWriter(options.output, options.overwrite, meta)
        try:
            self.maps = ProcMaps()
            self.live = LiveUnwinder(self.maps, lambda *rules: self.tracer.teach(*rules))
            self.recorder = Recorder(self.writer, self.live, maps=self.maps,
                                     teach_python=lambda *py: self.tracer.teach_python(*py))
            self.recorder.after_flush = self._after_flush
            self.recorder.forget_process = self.live.forget
            warming = threading.Thread(target=warm_up, args=(self.command,), daemon=True)
            warming.start()  # while the probe compiles
            self.tracer = EbpfTracer(self.recorder, options.cflags(), fp_stacks=options.fp,
                                     look_ahead=self.recorder.prepare,
                                     spill_dir=os.path.dirname(os.path.abspath(options.output)))
            warming.join()
            if options.fp:
                self.recorder.fp_stack = self.tracer.stack_ips
            self.progress = Progress()
            self.started = time.time()
            self.writer.set_meta(start_ns=time.monotonic_ns(), started_at=self.started)
            self.writer.commit()
        except BaseException:
            if hasattr(self, "tracer"):
                self.tracer.close()
            self.writer.discard()
            raise

    # --- while tracing -------------------------------------------------------------------

    def poll(self, timeout_ms: int) -> None:
        """Deliver the probe's records; after a failure, only wait (the target goes on
        untraced), or with --pid end the run at once."""
        if self.failure is not None:
            time.sleep(timeout_ms / 1000)
            return
        self.tracer.poll(timeout_ms)
        stop = self.tracer.failure
        if isinstance(stop, TracingStopped):  # the signal watcher interrupted a record's
            self.tracer.failure = None  # handling: a stop, not a failure (finish() drains)
            # the record in hand was handed on in part at most; the rest are kept and drained
            self._cut = (f"stopped by {signal_name(stop.signum)} while a record was "
                         "handed on: that call may be missing from the events (the totals are "
                         "exact)")
            raise stop
        if stop is not None:
            self._fail(stop)
            if self.attached:
                raise stop

    def tick(self) -> None:
        if self.failure is not None:
            return
        try:
            if not self.writer.published and self.recorder.started:
                self.writer.publish()  # the command runs: from now on this is the output
            if self.recorder.due():
                held_since = self.tracer.batches_since()  # before the ring buffer is emptied
                # the ring buffer, then the sums of the finished slots, into the backlog
                held_since = min(held_since, self.tracer.drain_resident())
                self._forget_at.append((self.tracer.backlog.appended, held_since))
                self._rss_now()
                self.recorder.flush()  # then _after_flush: the checkpoint
            self._forget_exited()
        except TracingStopped:
            raise
        except Exception as exc:
            self._fail(exc)
            if self.attached:
                raise

    def _forget_exited(self) -> None:
        """Once every record taken before a tick has been handed on, nothing the probe held
        back then is still to come: what the recorder keeps for the processes that exited
        before it can go."""
        handed_on = self.tracer.records_handed_on()
        while self._forget_at and handed_on >= self._forget_at[0][0]:
            self.recorder.forget_exited(self._forget_at.popleft()[1])

    def _after_flush(self) -> None:
        """After each committed batch, from the poll loop or from inside the probe's
        callback (a flood of records can keep poll() from returning for long): publish the
        file once the command runs, and checkpoint every CHECKPOINT_S."""
        if self.failure is not None or self._finishing:
            return
        if not self.writer.published and self.recorder.started:
            self.writer.publish()
        now = time.monotonic()
        if now - self._last_checkpoint >= CHECKPOINT_S:
            self._last_checkpoint = now
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
        self.writer.set_meta(lost_events=lost, events_recorded=self.recorder.events)
        self.maps.save(self.writer, changed_only=True)
        self.writer.commit()
        return lost

    def _fail(self, exc: BaseException) -> None:
        """Stop recording: keep the probe's exact totals, detach it, and say so at once."""
        self.failure = exc
        self._final = (self.tracer.totals(), self.tracer.counters())
        self.tracer.close()
        self.progress.done()
        if not self.attached:
            print(printable(f"heaptrace: recording failed: {_reason(exc)}; "
                            f"{os.path.basename(self.command[0])} goes on untraced"),
                  file=self.stderr, flush=True)

    def arm(self, pid: int) -> None:
        """The target, stopped before its exec: traced from the exec on."""
        self.tracer.arm(pid)
        self.recorder.tracker.start_dirs[pid] = os.getcwd()  # its exec's relative path
        self._add_root(pid, os.getpid(), os.path.basename(self.command[0])[:15])
        self.writer.set_meta(root_pid=pid)

    def attach(self, target: AttachTarget) -> None:
        """A running process and every descendant it has now (later ones follow by fork);
        never heaptrace itself, which is a descendant when the root is init."""
        if not target.still_the_same():
            raise _reused(target)
        try:
            root = psutil.Process(target.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            raise _reused(target) from None
        attached = sum(self._attach_one(p) for p in procs if p.pid != os.getpid())
        if not target.still_the_same():  # the pid was reused while it was being armed
            self.tracer.detach(target.pid)
            raise _reused(target)
        more = f" and {attached - 1} descendants" if attached > 1 else ""
        print(f"heaptrace: attached to PID {target.pid}{more}", file=sys.stderr, flush=True)
        if target.pid == 1:
            print(f"heaptrace: warning: PID 1 is the root of every process: this traces the "
                  f"whole system ({attached} processes now, and all they start)",
                  file=sys.stderr, flush=True)
        self.writer.set_meta(root_pid=target.pid)
        self.writer.publish()

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
        if not proc.is_running():  # psutil compares the start time: gone, or pid reused
            self.tracer.detach(proc.pid)
            return False
        self.maps.snapshot(proc.pid, time.monotonic_ns())
        self.recorder.look_for_python(proc.pid)
        self._add_root(proc.pid, ppid, name)
        return True

    def _add_root(self, pid: int, ppid: int, comm: str) -> None:
        self.recorder.note_parent(pid, ppid)
        self.writer.add_process(pid, ppid, comm, time.monotonic_ns())

    def late_stop(self, signum: int) -> None:
        """A SIGINT or SIGTERM after the one that ended tracing (from the signal watcher's
        thread): finishing the file is cut short as it begins."""
        if self._late_signal is None:
            self._late_signal = signum

    # --- the end -------------------------------------------------------------------------

    def finish(self, exit_code: Optional[int], attach_end: Optional[str] = None) -> RunResult:
        """Drain the probe, write totals and metadata, symbolize and close: the recording is
        complete. If nothing was traced (the command never started), the private file is
        removed and the previous output left alone. After a failure, the file is marked
        incomplete with what was and was not written, and the failure is raised."""
        self._finishing = True
        with FinishWatch(self._late_signal) as self._watch:
            return self._finish(exit_code, attach_end)

    def _finish(self, exit_code: Optional[int], attach_end: Optional[str]) -> RunResult:
        if self.failure is None:
            try:
                self.tracer.stop()
                whole = self.tracer.drain(between=self._draining, cut=self._cutting)
                if self.tracer.failure is not None:
                    raise self.tracer.failure
                if not whole:  # a stop signal: what was not handed on is counted, not waited for
                    assert self._watch is not None and self._watch.signum is not None
                    self._drain_cut = (self._watch.signum, self.tracer.left_behind())
                self._rss_now()
                self.recorder.finish_rss()
                # the probe detached and the drain over: nothing more of an exited process
                # will be handled
                self.recorder.forget_exited(time.monotonic_ns())
            except Exception as exc:
                self._fail(exc)
        if self.failure is None:
            totals, counters = self.tracer.totals(), self.tracer.counters()
            peak, peak_ns, peak_rss = self.tracer.rss_peak()
            self._peak = (peak, peak_rss)
            self._rss_end = dict(
                peak_rss=peak, peak_rss_ns=peak_ns, peak_rss_classes=_classes(peak_rss),
                resident_classes={name: [t.calls, t.bytes, t.released]
                                  for name, t in self.tracer.rss_classes().items()})
            self.tracer.close()
            self.progress.done()
        else:
            assert self._final is not None
            totals, counters = self._final
        if not self.writer.published and not self.recorder.started:
            self.writer.discard()  # nothing ran: the previous output stays
            if self.failure is not None:
                raise self.failure
            return RunResult(exit_code or 0, totals, counters)
        if self.failure is None:
            try:
                return self._complete(exit_code, attach_end, totals, counters)
            except FinishingStopped:
                raise  # the events are all written: not a failure of the recording
            except Exception as exc:
                self.failure = exc
        self._store_failure(exit_code, attach_end, totals, counters)
        raise AssertionError("not reached")

    def _draining(self) -> None:
        """Called while the records buffered when tracing ended are handed on, if that takes
        a while (a flood's backlog): say so once, with how to cut it short."""
        if not self._drain_said:
            self._drain_said = True
            self.progress.done()
            print(f"heaptrace: writing the {self.tracer.events_waiting():,} events buffered when "
                  "tracing ended (Ctrl-C leaves them out)", file=self.stderr, flush=True)
        self._forget_exited()

    def _cutting(self) -> bool:
        """A SIGINT or SIGTERM came after the one that ended tracing (FinishWatch)."""
        return self._watch is not None and self._watch.signum is not None

    def _end_meta(self, exit_code: Optional[int], attach_end: Optional[str],
                  counters: Dict[str, int]) -> Dict[str, object]:
        return dict(
            end_ns=time.monotonic_ns(), duration_s=time.time() - self.started,
            lost_events=counters["lost"], events_recorded=self.recorder.events,
            events_with_stack=self.recorder.with_stack, probe_counters=counters,
            stack_copies_unwound=self.live.copies, stack_copies_whole=self.live.complete,
            resident_sums=self.recorder.resident_sums, recorder_kept=self.recorder.kept(),
            exit_code=exit_code,
            attach_end=attach_end, **self._rss_end)

    def _complete(self, exit_code: Optional[int], attach_end: Optional[str],
                  totals: Dict[str, KindTotals], counters: Dict[str, int]) -> RunResult:
        self.recorder.flush()
        self.writer.publish()
        self.writer.set_totals(totals)
        # Every event is in the file now (or counted unwritten when a stop signal cut the
        # drain): complete, whatever finishing it does not get to.
        reason, unwritten = self._cut, 0
        if self._drain_cut is not None:
            signum, unwritten = self._drain_cut
            reason = drain_cut_reason(signum, unwritten)
        self.writer.set_meta(**self._end_meta(exit_code, attach_end, counters),
                             complete=reason is None, incomplete_reason=reason,
                             events_unwritten=unwritten)
        self.maps.save(self.writer)
        self.writer.commit()
        print("heaptrace: finishing the recording: naming stacks, then lifetimes (Ctrl-C "
              "leaves that to heaptrace symbolize)", file=self.stderr, flush=True)
        try:
            # the mappings are complete now; the lifetimes are for the held views
            _counts, stacks = finish(self.writer, self._watch, named=self._python_summary)
        except FinishingStopped as stopped:
            self.writer.close()  # as far as it got (finish() said so in the file)
            if self._drain_cut is not None:
                raise FinishingStopped(stopped.signum, self.writer.path,
                                       unwritten=unwritten) from None
            raise
        self.writer.close()
        return RunResult(exit_code or 0, totals, counters, self.recorder.events, stacks,
                         *self._peak, self._python_notes)

    def _python_summary(self) -> None:
        interpreters, self._python_notes = self.recorder.python.summary()
        if interpreters or self._python_notes:
            self.writer.set_meta(python_interpreters=interpreters,
                                 python_notes=self._python_notes)

    def _store_failure(self, exit_code: Optional[int], attach_end: Optional[str],
                       totals: Dict[str, KindTotals], counters: Dict[str, int]) -> None:
        """Mark the recording incomplete with the reason and the counts, and raise."""
        failure = self.failure
        assert failure is not None
        reason = _reason(failure)
        received, written = self.recorder.events, self.writer.events_written
        self.writer.rollback()
        if not self.writer.published and self.recorder.started:
            with contextlib.suppress(Exception):
                self.writer.publish()  # the command ran: its file says what happened
        if not self.writer.published:
            self.writer.discard()
            if not isinstance(failure, Exception):
                raise failure
            raise RecordingWriteError(f"{reason}; nothing was written to "
                                      f"{self.options.output}") from None
        stored = self.writer.mark_failed(
            reason, totals=totals, events_unwritten=received - written,
            **{k: v for k, v in self._end_meta(exit_code, attach_end, counters).items()
               if k in ("end_ns", "duration_s", "lost_events", "events_recorded",
                        "probe_counters", "exit_code", "attach_end")})
        with contextlib.suppress(Exception):
            self.writer.close()
        if not isinstance(failure, Exception):
            raise failure
        said = "it says it is incomplete" if stored else "it holds the last checkpoint"
        raise RecordingWriteError(
            f"{reason}; {written:,} of {received:,} events received were written to "
            f"{self.options.output} ({said})") from None


def _classes(rss: Rss) -> Dict[str, int]:
    return {"anon": rss.anon, "file": rss.file, "shmem": rss.shmem, "swap": rss.swap}


def _cwd() -> Optional[str]:
    try:
        return os.getcwd()
    except OSError:
        return None


def record_command(argv: Sequence[str], options: RunOptions) -> RunResult:
    """Trace argv and everything it starts into options.output; returns what happened."""
    capture = EbpfCapture(options, argv)
    target = None
    try:
        target = run_traced(argv, capture.arm, capture.poll, capture.tick,
                            capture.tracer.request_return, capture.late_stop)
    except TracingStopped as stop:  # a second SIGINT/SIGTERM: the target runs on, untraced
        capture.writer.set_meta(stopped_by=signal_name(stop.signum))
        raise
    finally:
        result = capture.finish(target.exit_code if target else None)
    return result


def _reused(target: AttachTarget) -> UsageError:
    return UsageError(f"process {target.pid} ({target.comm}) ended while tracing was being "
                      "set up (its pid may name another process now): nothing was traced")


def attach_process(target: AttachTarget, options: RunOptions,
                   duration: Optional[float]) -> RunResult:
    """Trace a running process (and its descendants) until it exits, heaptrace is
    interrupted, or `duration` seconds have passed."""
    if platform.system() in DTRACE_SYSTEMS:
        raise BackendUnavailable("--pid is implemented for the eBPF backend (Linux) only",
                                 f"on {platform.system()}, use dtrace -p {target.pid} "
                                 "with probes/*.d")
    capture = EbpfCapture(options, target.command, attached=True)
    end = None
    try:
        end = attach_traced(target.pid, lambda _pid: capture.attach(target), capture.poll,
                            capture.tick, duration, capture.tracer.request_return,
                            capture.late_stop)
    finally:
        result = capture.finish(None, end)
    return result
