"""The one way tests run heaptrace: its real entry point in a child process (this
interpreter, this checkout), as a user runs it, so exit codes, stdout, stderr and
tracebacks are what a user sees.

    heaptrace("histogram", db, "--json", check=True).stdout
    subprocess.Popen(argv("run", "-o", db, "--", *cmd))       # running in the background
    tracer = attached(db, pid)                                 # -p PID, returns once attached
    subprocess.run(["setarch", "-R", *argv("run", ...)])       # under another command

For tests that run a command thousands of times (the recording fuzzer), `in_process` calls
the same entry point in this process.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, List, Tuple

HEAPTRACE = (sys.executable, "-m", "heaptrace")


def argv(*args: str) -> List[str]:
    """The command line of `heaptrace ARGS...`."""
    return [*HEAPTRACE, *args]


def heaptrace(*args: str, check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run `heaptrace ARGS...`, stdout and stderr captured as text (`text=False` for
    bytes); `check`: fail the test unless it exits 0."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    proc = subprocess.run(argv(*args), **kwargs)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def attached(db: str, pid: int, *args: str) -> subprocess.Popen:
    """`heaptrace run -o DB -p PID ARGS...` in the background, returned once it says it has
    attached (its stderr a text pipe, read up to that line)."""
    tracer = subprocess.Popen(argv("run", "-o", db, "-p", str(pid), *args),
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = tracer.stderr.readline()
        if line.startswith(f"heaptrace: attached to PID {pid}"):
            return tracer
        assert line, f"heaptrace ended before attaching to {pid}"
    raise AssertionError(f"heaptrace did not attach to {pid} in time")


def in_process(*args: str) -> Tuple[int, str, str]:
    """`heaptrace ARGS...` through heaptrace.cli.main in this process: (exit code, stdout,
    stderr). Any exception but SystemExit escapes (a traceback a user would see)."""
    from heaptrace.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            return (exc.code if isinstance(exc.code, int) else 1), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def histogram_json(path: object) -> dict:
    """`heaptrace histogram PATH --json`, parsed."""
    return json.loads(heaptrace("histogram", str(path), "--json", check=True).stdout)
