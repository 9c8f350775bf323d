"""The one way tests run heaptrace: its real entry point in a child process (this
interpreter, this checkout), as a user runs it, so exit codes, stdout, stderr and
tracebacks are what a user sees.

    heaptrace("histogram", db, "--json", check=True).stdout
    subprocess.Popen(argv("run", "-o", db, "--", *cmd))       # running in the background
    subprocess.run(["setarch", "-R", *argv("run", ...)])       # under another command

For tests that run a command thousands of times (the recording fuzzer), `in_process` calls
the same entry point in this process.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
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
