"""The DTrace backend (illumos, macOS): runs probes/heaptrace-events.d against a command.

    dtrace -x evaltime=exec -q -o EVENTS -s heaptrace-events.d -s heaptrace-signals.d -c 'CMD ARGS'

dtrace is run from an argument list (no shell), and `-c` itself runs no shell either: dtrace
splits its string on blanks, so an argument containing a blank cannot be passed and is refused.
`-o` keeps DTrace's output apart from the command's own stdout; dtrace's stderr (which the
command shares) is copied through to ours line by line, and its drop reports are counted.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, TextIO

from heaptrace.backends.probefiles import probe_path
from heaptrace.errors import BackendUnavailable, PrivilegeError, UsageError
from heaptrace.events import KINDS
from heaptrace.formats.textinput import input_lines
from heaptrace.recording.files import RECORDING

SCRIPT = "heaptrace-events.d"
SIGNALS = "heaptrace-signals.d"  # proc:::signal-send: on illumos and macOS, where it exists
SYSTEMS = ("SunOS", "Darwin")
# dtrace's drop reports (libdtrace dt_handle.c), e.g. "dtrace: 12 drops on CPU 0".
DROPS = [
    (re.compile(r"^dtrace: (?:\[\w+\] )?(\d+) drops? on CPU \d+"), "lost_events"),
    (re.compile(r"^dtrace: (?:\[\w+\] )?(\d+) aggregation drops? on CPU \d+"),
     "aggregation_drops"),
    (re.compile(r"^dtrace: (?:\[\w+\] )?(\d+) dynamic variable drops?"), "dynvar_drops"),
]
PRIVILEGE = re.compile(r"requires additional privileges|Permission denied|not permitted")


def dtrace_argv(dtrace: str, cmd: Sequence[str], events_path: str) -> List[str]:
    """The dtrace command line; refuses what `-c` cannot carry."""
    if not cmd:
        raise UsageError("no command to trace")
    for arg in cmd:
        if not arg or any(c.isspace() for c in arg):
            raise UsageError(
                f"dtrace -c cannot pass an argument with blanks: {arg!r}",
                "put the command in a small shell script and trace that",
            )
    return [dtrace, "-x", "evaltime=exec", "-x", "bufsize=16m", "-q", "-o", events_path,
            "-s", str(probe_path(SCRIPT)), "-s", str(probe_path(SIGNALS)), "-c", " ".join(cmd)]


def find_dtrace() -> str:
    if platform.system() not in SYSTEMS:
        raise BackendUnavailable(f"the DTrace backend runs on illumos and macOS, not on "
                                 f"{platform.system()}")
    found = shutil.which("dtrace") or next(
        (p for p in ("/usr/sbin/dtrace", "/usr/bin/dtrace") if os.access(p, os.X_OK)), None)
    if found is None:
        raise BackendUnavailable("dtrace not found", "install DTrace or add it to PATH")
    return found


def record_with_dtrace(
    cmd: Sequence[str],
    output: str,
    overwrite: str = RECORDING,
    kinds: Sequence[str] = KINDS,
    dtrace: Optional[str] = None,
    stderr: TextIO = sys.stderr,
) -> int:
    """Trace `cmd` with DTrace into the recording `output`; returns the command's exit status
    (128 + N when a signal N killed it)."""
    # Here, not at the top: `heaptrace run` on Linux imports this module and needs neither
    from heaptrace.formats import dtrace_events
    from heaptrace.formats.imported import write_recording

    binary = dtrace or find_dtrace()
    fd, events_path = tempfile.mkstemp(prefix="heaptrace-dtrace-", suffix=".out")
    os.close(fd)
    try:
        rc, drops, messages = _run(dtrace_argv(binary, cmd, events_path), stderr)
        # heaptrace's own file: only its lines are bounded, not its size
        lines = input_lines(events_path, max_total=1 << 62)
        out = dtrace_events.parse_lines(events_path, lines)
        if out.target is None:
            _failed_to_start(rc, messages)
        imported = dtrace_events.to_imported(out, tuple(k for k in KINDS if k in kinds))
    finally:
        os.unlink(events_path)
    meta = imported.meta
    meta.command, meta.command_line = list(cmd), " ".join(cmd)
    meta.page_size = os.sysconf("SC_PAGE_SIZE")
    meta.lost_events = drops.get("lost_events", 0)
    meta.aggregation_drops = drops.get("aggregation_drops", 0)
    meta.dynvar_drops = drops.get("dynvar_drops", 0)
    meta.complete = True
    write_recording(imported, output, overwrite)
    status = out.exit_status()
    return rc if status is None else status


def _run(argv: List[str], stderr: TextIO) -> tuple:
    """Run dtrace, copying its stderr through and counting drops. Ctrl-C reaches dtrace too
    (same process group); it then stops and prints its aggregations, so we keep reading."""
    drops: Dict[str, int] = {}
    messages: List[str] = []
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, errors="replace")
    pipe = proc.stderr
    assert pipe is not None  # stderr=PIPE
    while True:
        try:
            line = pipe.readline()
        except KeyboardInterrupt:
            continue
        if not line:
            break
        stderr.write(line)
        _count_drops(line, drops, messages)
    return _wait(proc), drops, messages


def _wait(proc: subprocess.Popen) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def _count_drops(line: str, drops: Dict[str, int], messages: List[str]) -> None:
    for pattern, key in DROPS:
        m = pattern.match(line)
        if m:
            drops[key] = drops.get(key, 0) + int(m.group(1))
            return
    if line.startswith("dtrace: "):
        messages.append(line.strip())


def _failed_to_start(rc: int, messages: List[str]) -> None:
    last = messages[-1] if messages else f"dtrace exited with status {rc}"
    if any(PRIVILEGE.search(m) for m in messages):
        raise PrivilegeError(last, "run as root: sudo heaptrace run -- CMD")
    raise BackendUnavailable(last)
