"""`heaptrace run`'s recording file, with the probe replaced by a scripted one (no root, no
bcc): records go through the real ring-buffer callback, the real recorder and writer, around a
real traced command. What the file holds after a clean run, a failed start and a failure in
the middle of the run."""

from __future__ import annotations

import ctypes
import os
import sqlite3
import struct
import sys
from collections import deque
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import unquote

import pytest

from heaptrace.backends import ebpf
from heaptrace.backends.backlog import Backlog
from heaptrace.capture import runner
from heaptrace.errors import CommandNotFound, HeaptraceError, RecordingError
from heaptrace.events import KINDS, KindTotals, Rss
from heaptrace.recording import Recording, RecordingWriteError, RecordingWriter

CALLS = 25_000  # more than one batch of the recorder (flushed from inside the callback)
PYTHON = [sys.executable, "-c", "pass"]  # the traced command: Python itself, no tool


def call_batch(pid: int, first_ts: int, count: int) -> bytes:
    """A struct call_batch of `count` brk calls of 4096 bytes, as the probe sends it."""
    body = b"".join(
        ebpf.CALL_REC.pack(KINDS.index("brk"), pid, first_ts + i, pid, -1, 0, 0, 0, 0, 0, 0,
                           0x1000 + 4096 * i, 4096, 0x401000, 0, 0, 0, 0, 0)
        for i in range(count))
    return ebpf.BATCH_HEADER.pack(ebpf.REC_BATCH, count, 0) + body


def exec_record(pid: int, ts: int, comm: bytes = b"true") -> bytes:
    return ebpf.PROC_REC.pack(ebpf.REC_EXEC, pid, ts, 1, 0, comm, b"/usr/bin/true")


class ScriptedTracer(ebpf.EbpfTracer):
    """EbpfTracer without bcc: its first poll after arm() hands over an exec and CALLS brk
    calls through the real _callback (bytes in a ctypes buffer, as libbpf hands them)."""

    calls = CALLS
    on_init: Optional[Callable[[], None]] = None
    deliver = True
    members = dict(ebpf.DEFAULT_MEMBERS)

    def __init__(self, on_record, cflags, fp_stacks=False, look_ahead=None,  # noqa: ANN001
                 spill_dir=None) -> None:  # noqa: ANN001
        if ScriptedTracer.on_init is not None:
            ScriptedTracer.on_init()
        self._on_record = on_record
        self._fp_stacks = fp_stacks
        self.failure = None
        self.callback_errors = 0
        self._closed = False
        self._polled: List[bytes] = []
        self._look_ahead = None
        self.backlog = Backlog(spill_dir)
        self._pending = deque()
        self._events_taken = self._events_decoded = 0
        self._partials_handed = False
        self._bpf = self  # its ring_buffer_consume(): records come through poll() only
        self.queue: List[bytes] = []
        self.delivered = 0

    def arm(self, pid: int) -> None:
        if not self.deliver:
            return
        self.queue.append(exec_record(pid, 1000))
        for start in range(0, self.calls, 1000):
            self.queue.append(call_batch(pid, 2000 + start, min(1000, self.calls - start)))

    def poll(self, timeout_ms: int) -> None:
        while self.queue and self.failure is None:  # each record through the real path
            data = self.queue.pop(0)
            buf = ctypes.create_string_buffer(data, len(data))
            self._callback(None, ctypes.addressof(buf), len(data))
            self._handed_on()
            self.delivered += 1

    def stop(self) -> None:
        pass  # the scripted records end with the queue

    def drain(self, between: Callable[[], None] = lambda: None,
              cut: Callable[[], bool] = lambda: False) -> bool:
        self.poll(0)
        return True

    def ring_buffer_consume(self) -> None:
        pass

    def teach_python(self, pid: int, fields: object) -> None:
        pass  # the scripted probe walks no Python frames

    def drain_resident(self, final: bool = False) -> int:
        return 0  # no RSS records: the scripted target has no pages

    def rss_now(self) -> Iterator[object]:
        return iter(())

    def batches_since(self) -> int:
        return 0  # the scripted probe holds nothing back; its records have no real times

    def rss_peak(self) -> Tuple[int, int, Rss]:
        return 0, 0, Rss()

    def rss_classes(self) -> Dict[str, KindTotals]:
        return {}

    def totals(self) -> Dict[str, KindTotals]:
        return {"brk": KindTotals(self.calls, 0, 4096 * self.calls, 0, {4096: self.calls})}

    def counters(self) -> Dict[str, int]:
        return {name: 0 for name in ebpf.COUNTERS}

    def close(self) -> None:
        self._closed = True


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(runner, "preflight", lambda: None)
    monkeypatch.setattr(runner, "EbpfTracer", ScriptedTracer)
    monkeypatch.setattr(ScriptedTracer, "on_init", None)
    monkeypatch.setattr(ScriptedTracer, "deliver", True)
    return ScriptedTracer


def previous(path: Path) -> bytes:
    """A finished recording at `path` to be kept or replaced; returns its bytes."""
    with RecordingWriter(str(path)) as w:
        w.set_meta(command_line="the previous run", complete=True)
    return path.read_bytes()


def leftovers(directory: Path, keep: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir() if p != keep)


def test_a_clean_run_is_complete_and_the_file_is_opened_twice_only(scripted, tmp_path,
                                                                   monkeypatch, capfd):
    out = tmp_path / "r.db"
    previous(out)
    connects: List[str] = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect",
                        lambda path, *a, **k: connects.append(str(path)) or real_connect(
                            path, *a, **k))
    result = runner.record_command(PYTHON, runner.RunOptions(output=str(out)))
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    # the private file, then the output once the command ran: no reopening to symbolize,
    # to measure stack coverage or to store it
    assert len(connects) == 2 and unquote(connects[1]) == f"file:{out}?mode=rw"
    assert result.exit_code == 0 and result.events == CALLS
    with Recording(str(out)) as rec:
        meta = rec.meta()
        assert meta.complete is True and meta.incomplete_reason is None
        assert meta.events_recorded == CALLS and meta.events_unwritten == 0
        assert meta.command == PYTHON and meta.page_size == os.sysconf("SC_PAGE_SIZE")
        assert rec.event_count() == CALLS
        assert rec.totals()["brk"].calls == CALLS
    assert leftovers(tmp_path, out) == []
    assert "Exception ignored" not in capfd.readouterr().err


def test_a_probe_that_fails_to_load_keeps_the_previous_recording(scripted, tmp_path):
    out = tmp_path / "r.db"
    before = previous(out)

    def fail() -> None:
        raise HeaptraceError("could not load the eBPF program: invalid argument")

    scripted.on_init = fail
    with pytest.raises(HeaptraceError, match="could not load"):
        runner.record_command(PYTHON, runner.RunOptions(output=str(out)))
    assert out.read_bytes() == before and leftovers(tmp_path, out) == []


def test_ctrl_c_during_start_up_keeps_the_previous_recording(scripted, tmp_path):
    out = tmp_path / "r.db"
    before = previous(out)

    def interrupt() -> None:
        raise KeyboardInterrupt

    scripted.on_init = interrupt
    with pytest.raises(KeyboardInterrupt):
        runner.record_command(PYTHON, runner.RunOptions(output=str(out)))
    assert out.read_bytes() == before and leftovers(tmp_path, out) == []


def test_a_command_that_cannot_start_keeps_the_previous_recording(scripted, tmp_path):
    out = tmp_path / "r.db"
    before = previous(out)
    scripted.deliver = False  # exec fails: the probe never sees the command
    with pytest.raises(CommandNotFound):
        runner.record_command(["no-such-command-heaptrace"],
                              runner.RunOptions(output=str(out)))
    assert out.read_bytes() == before and leftovers(tmp_path, out) == []


def test_a_write_error_in_the_callback_ends_the_run_and_says_what_is_missing(
        scripted, tmp_path, monkeypatch, capfd):
    out = tmp_path / "r.db"
    previous(out)
    real_add = RecordingWriter.add_events
    batches = []

    def add_events(self, events):  # noqa: ANN001
        batches.append(1)
        if len(batches) == 2:  # the second batch meets a full disk
            raise RecordingWriteError(f"writing {self.path} failed: database or disk is full")
        real_add(self, events)

    monkeypatch.setattr(RecordingWriter, "add_events", add_events)
    monkeypatch.setattr(ScriptedTracer, "calls", 45_000)  # the second batch: in the callback
    with pytest.raises(RecordingWriteError) as caught:
        runner.record_command(PYTHON, runner.RunOptions(output=str(out)))
    message = str(caught.value)
    assert "database or disk is full" in message
    assert f"20,000 of 40,000 events received were written to {out}" in message
    err = capfd.readouterr().err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert "heaptrace: recording failed: writing" in err
    assert f"{os.path.basename(sys.executable)} goes on untraced" in err
    with Recording(str(out)) as rec:
        meta = rec.meta()
        assert meta.complete is False
        assert "database or disk is full" in (meta.incomplete_reason or "")
        assert meta.events_recorded == 40_000 and meta.events_unwritten == 20_000
        assert rec.event_count() == 20_000
        assert rec.totals()["brk"].calls == 45_000  # the probe's exact totals are kept


def test_a_bug_in_the_callback_is_caught_counted_and_ends_the_run(scripted, tmp_path,
                                                                  monkeypatch, capfd):
    out = tmp_path / "r.db"

    def broken(self, call):  # noqa: ANN001
        raise IndexError("list index out of range")

    monkeypatch.setattr(runner.Recorder, "_add_call", broken)
    with pytest.raises(RecordingError, match="internal error while recording: IndexError"):
        runner.record_command(PYTHON, runner.RunOptions(output=str(out)))
    assert "Exception ignored" not in capfd.readouterr().err
    with Recording(str(out)) as rec:  # the exec arrived: the command ran, the file is kept
        assert rec.meta().complete is False
        assert "IndexError" in (rec.meta().incomplete_reason or "")


def test_a_stop_signal_while_records_are_handed_on_ends_tracing_and_loses_none_after(
        scripted, tmp_path, monkeypatch):
    # The signal watcher's nudge raises TracingStopped wherever the main thread is: under a
    # flood of records that is while they are handed on, in the middle of a poll's records.
    from heaptrace.capture.signals import TracingStopped

    out = tmp_path / "r.db"
    real_add = runner.Recorder._add_call
    seen = []

    def add_call(self, call):  # noqa: ANN001
        seen.append(1)
        if len(seen) == 1500:
            raise TracingStopped(15, 4242)
        real_add(self, call)

    monkeypatch.setattr(runner.Recorder, "_add_call", add_call)
    with pytest.raises(TracingStopped):
        runner.record_command(PYTHON, runner.RunOptions(output=str(out)))
    with Recording(str(out)) as rec:
        meta = rec.meta()
        assert meta.stopped_by == "SIGTERM" and meta.complete is False
        assert "while a record was handed on" in (meta.incomplete_reason or "")
        # the call in hand is lost; the records after it were kept and drained
        assert rec.event_count() == meta.events_recorded == CALLS - 1
        assert rec.totals()["brk"].calls == CALLS


def test_a_stop_signal_while_finishing_keeps_every_event_and_says_what_is_left(
        scripted, tmp_path, monkeypatch):
    # Naming a whole system's stacks or building its lifetimes takes long: a stop signal
    # then ends heaptrace at once, the file complete (every event is in it) and unfinished.
    import signal
    import time

    from heaptrace.analysis.lifetimes import current
    from heaptrace.capture import finish

    out = tmp_path / "r.db"
    real_symbolize = finish.symbolize_into

    def symbolize_then_signal(writer, debug_root):  # noqa: ANN001
        counts = real_symbolize(writer, debug_root)
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 60  # long work: ends when the signal cuts it
        while time.monotonic() < deadline:
            pass
        return counts

    monkeypatch.setattr(finish, "symbolize_into", symbolize_then_signal)
    with pytest.raises(finish.FinishingStopped) as stopped:
        runner.record_command(PYTHON, runner.RunOptions(output=str(out)))
    assert stopped.value.exit_code == 128 + signal.SIGINT
    assert str(stopped.value).startswith(f"stopped by SIGINT while finishing {out}: every "
                                         "event is in it")
    with Recording(str(out)) as rec:
        meta = rec.meta()
        assert meta.complete is True and meta.unfinished == finish.UNFINISHED
        assert rec.event_count() == CALLS and not current(rec.connection(), rec)
    monkeypatch.setattr(finish, "symbolize_into", real_symbolize)
    finish.symbolize_recording(str(out))  # `heaptrace symbolize` finishes it
    with Recording(str(out)) as rec:
        assert rec.meta().unfinished is None and current(rec.connection(), rec)
        assert rec.meta().bytes_with_whole_stack_share is not None


def test_a_failure_handing_records_on_is_kept_and_ends_the_delivery():
    tracer = ScriptedTracer(lambda record: 1 / 0, [])
    tracer.queue = [exec_record(7, 1), exec_record(8, 2)]
    tracer.poll(0)
    assert isinstance(tracer.failure, ZeroDivisionError) and tracer.callback_errors == 1
    assert tracer.queue == [exec_record(8, 2)]  # nothing more was handed on


def test_records_decode_as_the_probe_sends_them():
    assert struct.unpack_from("<I", call_batch(7, 1, 2))[0] == ebpf.REC_BATCH
    assert len(ebpf.parse_record(call_batch(7, 1, 3))) == 3
