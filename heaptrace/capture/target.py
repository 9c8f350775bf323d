"""Runs a target under tracing: fork it stopped, arm the backend, let it exec, poll until it
exits, forward signals, and finish the recording whatever happens."""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TextIO

from heaptrace.capture.procinfo import process_alive
from heaptrace.capture.signals import FORWARDED, NUDGE, SignalWatch, TracingStopped
from heaptrace.errors import CommandNotFound

POLL_MS = 100


@dataclass
class Target:
    pid: int
    argv: Sequence[str]
    status: Optional[int] = None  # raw wait status once reaped

    @property
    def exit_code(self) -> int:
        """As a shell reports it: the exit code, or 128+N when signal N killed it."""
        assert self.status is not None
        if os.WIFSIGNALED(self.status):
            return 128 + os.WTERMSIG(self.status)
        return os.WEXITSTATUS(self.status)


def _child(argv: Sequence[str], error_fd: int) -> None:
    """In the forked child: stop until the tracer is armed, then exec (never returns)."""
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, NUDGE, *FORWARDED):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSTOP)
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        os.write(error_fd, str(exc.errno).encode())
    except ValueError:  # an argument with a NUL byte: no exec can take it
        os.write(error_fd, str(errno.EINVAL).encode())
    finally:
        os._exit(127)


def spawn_stopped(argv: Sequence[str]) -> tuple:
    """Fork a child that stops itself before exec. Returns (pid, fd to read exec errors from)."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(argv, write_fd)
    os.close(write_fd)
    _, status = os.waitpid(pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        raise CommandNotFound(f"could not start {argv[0]}")
    return pid, read_fd


def _exec_error(read_fd: int, argv: Sequence[str]) -> Optional[CommandNotFound]:
    """Blocks until the child has exec'd (EOF) or reported why it could not."""
    data = os.read(read_fd, 64)
    os.close(read_fd)
    if not data:
        return None
    code = int(data)
    if code == errno.ENOENT:
        return CommandNotFound(f"command not found: {argv[0]}")
    error = CommandNotFound(f"cannot execute {argv[0]}: {os.strerror(code)}")
    error.exit_code = 126
    return error


class Progress:
    """Live counters on stderr for runs longer than a second (a line every few seconds when
    stderr is not a terminal)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.last = self.start
        self.tty = stream.isatty()
        self.interval = 1.0 if self.tty else 5.0
        self.shown = False

    def update(self, events: int, growth: int, lost: int) -> None:
        now = time.monotonic()
        if now - self.start < 1.0 or now - self.last < self.interval:
            return
        self.last = now
        line = (f"heaptrace: {events:,} events, {growth / 1048576:,.1f} MiB growth, "
                f"{lost:,} lost, {now - self.start:.1f}s")
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        """End the live line (once: what follows is printed below it)."""
        if self.shown and self.tty:
            self.stream.write("\n")
        self.shown = False


def run_traced(
    argv: Sequence[str],
    arm: Callable[[int], None],
    poll: Callable[[int], None],
    on_tick: Callable[[], None],
    interrupt: Callable[[], bool] = lambda: False,
    late: Callable[[int], None] = lambda signum: None,
) -> Target:
    """Run argv to completion with `arm(pid)` called while it is stopped before exec and
    `poll(ms)` called until it exits. Signals sent to heaptrace by another process are passed
    on (the terminal's own Ctrl-C already reaches the target, which shares our process group);
    a second SIGINT or SIGTERM stops the tracing (TracingStopped), the target left running."""
    with SignalWatch(stop_after=2, interrupt=interrupt, late=late) as watch:
        pid, error_fd = spawn_stopped(argv)
        target = Target(pid, argv)
        watch.target = pid
        arm(pid)
        os.kill(pid, signal.SIGCONT)
        error = _exec_error(error_fd, argv)
        while target.status is None:
            poll(POLL_MS)
            watch.check()
            on_tick()
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped:
                target.status = status
        if error is not None:
            raise error
        return target


def attach_traced(
    pid: int,
    attach: Callable[[int], None],
    poll: Callable[[int], None],
    on_tick: Callable[[], None],
    duration: Optional[float] = None,
    interrupt: Callable[[], bool] = lambda: False,
    late: Callable[[int], None] = lambda signum: None,
) -> str:
    """Trace a running process until it exits ("exited"), heaptrace gets SIGINT, SIGTERM,
    SIGHUP or SIGQUIT ("interrupted": nothing is forwarded, the process is not ours), or
    `duration` seconds pass ("duration")."""
    with SignalWatch(stop_after=1, forward=False, interrupt=interrupt, late=late) as watch:
        attach(pid)
        deadline = None if duration is None else time.monotonic() + duration
        while True:
            try:
                poll(POLL_MS)  # a stop may interrupt it (the watcher's nudge)
                on_tick()
                watch.check()
            except TracingStopped:
                return "interrupted"
            if not process_alive(pid):
                return "exited"
            if deadline is not None and time.monotonic() >= deadline:
                return "duration"
