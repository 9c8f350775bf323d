"""Benchmark: the cost of watching a Python program, heaptrace beside memray.

    .venv/bin/python bench/python.py --python PY [--memray-python PY] [--reps 3] [--rounds 6]

bench/py_workload.py (nested calls making byte strings, json, zlib) times its own work. Each
repetition runs it once in every mode, side by side (the order rotates):

    untraced    PY bench/py_workload.py
    heaptrace   heaptrace run -o F -- PY bench/py_workload.py (Python frames read by the probe)
    memray      MEMRAY_PY -m memray run -o F bench/py_workload.py (a venv where `pip install
                memray` worked, on the same interpreter version: memray preloads its tracker
                into the program and records every allocation, where heaptrace records the
                calls that take memory from the kernel)

Reported per mode: the median of the work's own time and its ratio to the untraced median,
the median wall time (start-up and post-processing included), and for heaptrace whether the
recording names the allocating Python function (receive_chunk (py_workload.py:N)). Timings
live here, never in tests; nothing gates on them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = ROOT / "bench" / "py_workload.py"
HEAPTRACE = os.environ.get("HEAPTRACE", str(ROOT / ".venv" / "bin" / "heaptrace"))


def run(argv: Sequence[str]) -> tuple:
    """(the workload's own seconds, wall seconds), or an error line."""
    start = time.monotonic()
    proc = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{") and "elapsed_s" in line:
            return json.loads(line)["elapsed_s"], wall
    raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()[:200]}")


def names_the_python_code(recording: str) -> bool:
    """The recording has a stack through receive_chunk, with its file and line."""
    from heaptrace.recording import Recording

    with Recording(recording) as rec:
        return any(f.name.startswith("receive_chunk (py_workload.py:")
                   for stack in rec.stacks().values() for f in stack)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True, help="the interpreter to run the workload")
    parser.add_argument("--memray-python", help="a venv's python where memray is installed")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="ht-pybench-")
    work = [str(WORKLOAD), str(args.rounds)]
    modes: Dict[str, List[str]] = {
        "untraced": [args.python, *work],
        "heaptrace": [HEAPTRACE, "run", "-o", f"{tmp}/h.db", "--", args.python, *work],
    }
    if args.memray_python:
        modes["memray"] = [args.memray_python, "-m", "memray", "run", "-q", "-f", "-o",
                           f"{tmp}/m.bin", *work]
    times: Dict[str, List[tuple]] = {m: [] for m in modes}
    order = list(modes)
    for rep in range(args.reps):
        for mode in order[rep % len(order):] + order[:rep % len(order)]:
            if mode == "heaptrace" and os.path.exists(f"{tmp}/h.db"):
                os.unlink(f"{tmp}/h.db")
            times[mode].append(run(modes[mode]))
            print(f"rep {rep + 1} {mode}: work {times[mode][-1][0]:.2f} s", file=sys.stderr)
    base = statistics.median(t for t, _ in times["untraced"])
    print(f"Python workload, {args.rounds} rounds, {args.reps} repetitions, medians")
    print(f"  {'mode':<10} {'work s':>8} {'ratio':>7} {'wall s':>8}")
    for mode, runs in times.items():
        own = statistics.median(t for t, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"  {mode:<10} {own:8.2f} {own / base:6.2f}x {wall:8.2f}")
    print(f"  heaptrace names receive_chunk with file and line: "
          f"{names_the_python_code(f'{tmp}/h.db')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
