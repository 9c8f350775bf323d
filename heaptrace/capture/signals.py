"""Signals sent to heaptrace while it traces. A thread waits for them (so they are received
whatever the main thread is doing); the main loop passes those another process sent on to
the target, and on the Nth SIGINT or SIGTERM (the second while running a command, the first
with -p) stops the tracing and finishes the recording. If the main loop does not get to them
(stuck in a system call), the watcher passes them on itself and interrupts it."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Callable, List, Optional, Tuple, Type

from heaptrace.errors import HeaptraceError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
ENDING = (signal.SIGINT, signal.SIGTERM)
SI_USER, SI_QUEUE, SI_TKILL = 0, -1, -6
NUDGE = signal.SIGUSR1  # sent to the main thread only, to end a blocking system call
GRACE_S = 2.0  # how long the main loop has to notice a stop before it is interrupted


class TracingStopped(HeaptraceError):
    """SIGINT or SIGTERM asked heaptrace to stop tracing: the recording is finished."""

    def __init__(self, signum: int, target: Optional[int]) -> None:
        name = signal.Signals(signum).name
        left = f"; PID {target} was left running" if target is not None else ""
        super().__init__(f"stopped by {name}: the recording is finished{left}")
        self.signum = signum
        self.exit_code = 128 + signum


class SignalWatch:
    """While entered: FORWARDED signals are blocked in every thread and the watcher waits
    for them. `stop_after`: how many SIGINT/SIGTERM end the tracing; `forward`: pass them on
    to `target` (with -p nothing is passed on: the process is not ours)."""

    def __init__(self, stop_after: int, forward: bool = True,
                 interrupt: Callable[[], bool] = lambda: False) -> None:
        self.stop_after = stop_after
        self.forward = forward
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
        while signal.sigtimedwait(FORWARDED, 0) is not None:
            pass  # what came after the end is not for the target
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
            info = signal.sigtimedwait(FORWARDED, 0.1)
            if info is not None:
                self._received(info.si_signo, info.si_code)
                continue
            self._pass_on(GRACE_S)  # what the main loop has not passed on by now: stuck
            if self.stop_signal is not None and not self._seen.wait(GRACE_S):
                self._seen.set()  # once: the main thread is stuck, interrupt it
                if self._main is not None:
                    signal.pthread_kill(self._main, NUDGE)

    def _received(self, signum: int, code: int) -> None:
        if signum in ENDING or not self.forward:  # with -p, any of them ends the tracing
            self._ending += 1
            if self._ending >= self.stop_after and self.stop_signal is None:
                self.stop_signal = signum
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
