"""Signals sent to heaptrace while it traces. A thread waits for them (so they are received
whatever the main thread is doing); the main loop passes those another process sent on to
the target, and on the Nth SIGINT or SIGTERM (the second while running a command, the first
with -p) stops the tracing and finishes the recording. If the main loop does not get to them
(stuck in a system call), the watcher passes them on itself and interrupts it.

After tracing, while the recording is finished (FinishWatch): a SIGINT or SIGTERM cuts short
the work that can be done again later, and a second one ends heaptrace at once."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sqlite3
import threading
import time
from types import FrameType, TracebackType
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type

from heaptrace.errors import HeaptraceError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
ENDING = (signal.SIGINT, signal.SIGTERM)
SI_USER, SI_QUEUE, SI_TKILL = 0, -1, -6
NUDGE = signal.SIGUSR1  # sent to the main thread only, to end a blocking system call
GRACE_S = 2.0  # how long the main loop has to notice a stop before it is interrupted
SIGSET_BYTES = SIGINFO_BYTES = 128  # Linux's sigset_t (glibc's) and siginfo_t
EAGAIN_OR_EINTR = (11, 4)  # errno: none came in time; the wait was interrupted


def signal_name(signum: int) -> str:
    """"SIGTERM", or "signal N" for a number that names no signal (never a ValueError)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def wait_signal(signals: Sequence[int], timeout_s: float) -> Optional[Tuple[int, int]]:
    """The next of `signals` (blocked in this thread) to come within `timeout_s`, taken from
    the pending ones: (its number, its si_code), or None when none came.

    Not signal.sigtimedwait: when its wait is interrupted (EINTR: heaptrace stopped and
    continued by Ctrl-Z and fg, SIGSTOP and SIGCONT, a debugger or py-spy attaching) after
    its timeout has passed, CPython returns a siginfo the kernel never filled in: 0, the
    signal an earlier call received (a second SIGINT nobody sent) or stack garbage. With
    -p any of them ended the tracing as "signal 0" (ValueError: 0 is not a valid Signals,
    an internal error). Here the kernel's return value says whether a signal came."""
    libc = _libc()
    wanted = ctypes.create_string_buffer(SIGSET_BYTES)
    libc.sigemptyset(wanted)
    for signum in signals:
        libc.sigaddset(wanted, signum)
    info = (ctypes.c_int * (SIGINFO_BYTES // 4))()
    ts = _Timespec(int(timeout_s), int(timeout_s % 1 * 1e9))
    got = libc.sigtimedwait(wanted, info, ctypes.byref(ts))
    if got > 0:
        return got, info[2]  # si_signo, si_errno, si_code
    err = ctypes.get_errno()
    if err in EAGAIN_OR_EINTR:
        return None  # the caller waits again: a stop and continue is no signal
    raise OSError(err, os.strerror(err))


class TracingStopped(HeaptraceError):
    """SIGINT or SIGTERM asked heaptrace to stop tracing: the recording is finished."""

    def __init__(self, signum: int, target: Optional[int]) -> None:
        name = signal_name(signum)
        left = f"; PID {target} was left running" if target is not None else ""
        super().__init__(f"stopped by {name}: the recording is finished{left}")
        self.signum = signum
        self.exit_code = 128 + signum


class SignalWatch:
    """While entered: FORWARDED signals are blocked in every thread and the watcher waits
    for them. `stop_after`: how many SIGINT/SIGTERM end the tracing; `forward`: pass them on
    to `target` (with -p nothing is passed on: the process is not ours)."""

    def __init__(self, stop_after: int, forward: bool = True,
                 interrupt: Callable[[], bool] = lambda: False,
                 late: Callable[[int], None] = lambda signum: None) -> None:
        self.stop_after = stop_after
        self.forward = forward
        # Told of a SIGINT or SIGTERM that came after the stop (an impatient second Ctrl-C):
        # the finishing that follows is cut short (FinishWatch).
        self.late = late
        # Asked first by the nudge: True if the main thread is where it can be asked to come
        # back by itself (handing the probe's records on), so no exception is raised there.
        self.interrupt = interrupt
        self.target: Optional[int] = None  # where forwarded signals go
        self.stop_signal: Optional[int] = None
        self._ending = 0
        self._seen = threading.Event()  # the main thread noticed the stop
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._pending: List[Tuple[int, float]] = []  # (signal, when) not passed on yet
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._watch, name="heaptrace-signals",
                                        daemon=True)
        self._old: Tuple[object, object] = (None, None)

    def __enter__(self) -> SignalWatch:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        self._old = (mask, signal.signal(NUDGE, self._nudged))
        self._thread.start()  # inherits the mask: the signals are for sigtimedwait
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], value: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._done.set()
        self._thread.join()
        while (got := wait_signal(FORWARDED, 0)) is not None:
            # what came after the end is not for the target; a stop after the stop is late
            if got[0] in ENDING and self.stop_signal is not None:
                self.late(got[0])
        mask, handler = self._old
        signal.signal(NUDGE, handler)  # type: ignore[arg-type]
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # type: ignore[arg-type]

    def check(self) -> None:
        """Pass on the signals received since the last call, and raise TracingStopped once a
        stop was asked for. The main loop calls this after each poll, so a signal reaches the
        target in the loop's order (after the RSS sample of that round, say)."""
        self._pass_on(0.0)
        if self.stop_signal is not None:
            self._seen.set()
            raise TracingStopped(self.stop_signal, self.target if self.forward else None)

    def _watch(self) -> None:
        while not self._done.is_set():
            got = wait_signal(FORWARDED, 0.1)
            if got is not None:
                self._received(*got)
                continue
            self._pass_on(GRACE_S)  # what the main loop has not passed on by now: stuck
            if self.stop_signal is not None and not self._seen.wait(GRACE_S):
                self._seen.set()  # once: the main thread is stuck, interrupt it
                if self._main is not None:
                    signal.pthread_kill(self._main, NUDGE)

    def _received(self, signum: int, code: int) -> None:
        if signum not in FORWARDED:
            return  # not what was waited for: nothing was sent
        if signum in ENDING or not self.forward:  # with -p, any of them ends the tracing
            self._ending += 1
            if self._ending >= self.stop_after and self.stop_signal is None:
                self.stop_signal = signum
                return
            if self.stop_signal is not None and signum in ENDING:
                self.late(signum)
                return
        # Sent by a process, not the terminal (whose Ctrl-C reaches the target itself).
        if self.forward and code in (SI_USER, SI_QUEUE, SI_TKILL):
            with self._lock:
                self._pending.append((signum, time.monotonic()))

    def _pass_on(self, older_than: float) -> None:
        """Send the target the signals received more than `older_than` seconds ago."""
        with self._lock:
            due = [s for s, at in self._pending if time.monotonic() - at >= older_than]
            self._pending = [(s, at) for s, at in self._pending
                             if time.monotonic() - at < older_than]
        for signum in due:
            if self.target is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.target, signum)

    def _nudged(self, _signum: int, _frame: Optional[FrameType]) -> None:
        if self.stop_signal is not None and self.interrupt():
            self._seen.clear()  # the main loop's check() comes next
            return
        self.check()


class FinishingCut(Exception):
    """Raised in the main thread by FinishWatch: a stop signal came while it may cut."""


class FinishWatch:
    """While a recording is finished (after tracing): the first SIGINT or SIGTERM is noted,
    and cuts short what runs inside cuttable() at once, in Python code or inside a long
    SQLite statement (the connection's progress handler brings the signal in there); one
    that came before cuttable() (or while tracing ended) cuts it as it begins. A second one
    ends heaptrace as the signal does by default: nothing is waited for any more."""

    PROGRESS_STEPS = 100_000  # SQLite instructions between two looks at the signals

    def __init__(self, signum: Optional[int] = None) -> None:
        """`signum`: a stop signal that came already (SignalWatch's `late`)."""
        self.signum: Optional[int] = signum
        self._cuttable = False
        self._old: Dict[int, object] = {}

    def __enter__(self) -> FinishWatch:
        for signum in ENDING:
            self._old[signum] = signal.signal(signum, self._received)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _received(self, signum: int, _frame: Optional[FrameType]) -> None:
        if self.signum is not None:  # the second: end now, as this signal would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        if self._cuttable:
            raise FinishingCut()

    @contextlib.contextmanager
    def cuttable(self, db: sqlite3.Connection) -> Iterator[None]:
        """Run the body where a stop signal may cut it (FinishingCut, or whatever error the
        cut statement gives its caller: see `signum`)."""
        if self.signum is not None:
            raise FinishingCut()
        self._cuttable = True
        # A Python call every so many SQLite steps: the signal's handler runs in it, and the
        # statement is ended as interrupted.
        db.set_progress_handler(lambda: self.signum is not None, self.PROGRESS_STEPS)
        try:
            yield
        finally:
            self._cuttable = False
            db.set_progress_handler(None, 0)
