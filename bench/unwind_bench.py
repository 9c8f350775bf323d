"""How fast heaptrace turns copied user stacks into symbolized ones, in Python.

    .venv/bin/python bench/unwind_bench.py                   the gdb fixtures of tests/data
    .venv/bin/python bench/unwind_bench.py --capture 'CMD'   capture CMD's brk/mmap stops
                                                             with gdb first (slow), then time

Prints stacks/s cold (CFI and symbols parsed on first use) and warm (the caches a long
recording runs with), the share of stacks unwound to an entry point (_start, clone3) and the
share of frames without a symbol."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from heaptrace.stacks.procmaps import ProcMaps  # noqa: E402
from heaptrace.stacks.symbols import Symbolizer, is_symbolized  # noqa: E402
from heaptrace.stacks.unwind.dwarf import Unwinder  # noqa: E402
from tests.helpers.stackfixtures import STACKS, all_stops, load  # noqa: E402


def capture(command: str, stops: int) -> list:
    """Run gdb_capture.py on COMMAND into a temporary directory and load the stops."""
    out = tempfile.mkdtemp(prefix="unwind-bench-")
    os.makedirs(os.path.join(out, "run"))
    env = dict(os.environ, HT_OUT=os.path.join(out, "run"), HT_MAX=str(stops))
    argv = shlex.split(command)
    argv[0] = shutil.which(argv[0]) or argv[0]  # gdb does not search PATH
    subprocess.run(["gdb", "-batch", "-nx", "-x", os.path.join(STACKS, "gdb_capture.py"),
                    "--args", *argv], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return load("run", "parent", root=out)


def merged_maps(stops: list) -> ProcMaps:
    """One ProcMaps for every stop: a pid's later snapshots extend its earlier ones."""
    maps = ProcMaps()
    for stop in stops:
        one = ProcMaps.from_maps_text(stop.pid, stop.maps_text)
        for mapping in one.mappings(stop.pid):
            maps.add(stop.pid, mapping)
    return maps


def unwind_all(unwinder: Unwinder, stops: list) -> list:
    return [unwinder.walk(s.pid, s.ip, s.sp, s.bp, s.stack) for s in stops]


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def report(stops: list, rounds: int) -> None:
    maps = merged_maps(stops)
    walks, cold = timed(unwind_all, Unwinder(maps), stops)
    warm_unwinder = Unwinder(maps)
    unwind_all(warm_unwinder, stops)
    _, warm = timed(lambda: [unwind_all(warm_unwinder, stops) for _ in range(rounds)])
    symbolizer = Symbolizer(maps)
    pairs = [(s.pid, w.ips) for s, w in zip(stops, walks)]
    frames, sym_cold = timed(symbolizer.stacks, pairs)
    _, sym_warm = timed(lambda: [symbolizer.stacks(pairs) for _ in range(rounds)])
    n, nframes = len(stops), sum(len(w.ips) for w in walks)
    flat = [f for stack in frames for f in stack]
    print(f"stacks: {n}, frames: {nframes} ({nframes / n:.1f} per stack), "
          f"stack bytes: {sum(len(s.stack) for s in stops) / n / 1024:.1f} KiB on average")
    print(f"unwind cold:     {n / cold:10.0f} stacks/s  (CFI parsed on first use)")
    print(f"unwind warm:     {n * rounds / warm:10.0f} stacks/s  "
          f"{nframes * rounds / warm:10.0f} frames/s")
    print(f"symbolize cold:  {n / sym_cold:10.0f} stacks/s  (symbol tables, c++filt)")
    print(f"symbolize warm:  {n * rounds / sym_warm:10.0f} stacks/s")
    print(f"whole stacks (reaching _start or a thread's clone): "
          f"{sum(w.complete for w in walks) / n:.1%}")
    print(f"frames without a symbol: {sum(not is_symbolized(f) for f in flat) / len(flat):.2%}")
    same = sum(w.ips == gdb_reference(s) for s, w in zip(stops, walks))
    print(f"same frames as gdb's backtrace: {same / n:.1%}")


def gdb_reference(stop) -> list:
    """gdb's frames up to its last named one (past the loader's _start it guesses)."""
    last = max((i for i, name in enumerate(stop.gdb_names) if name), default=0)
    return stop.gdb_pcs[: last + 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", metavar="CMD", help="capture CMD with gdb first")
    parser.add_argument("--stops", type=int, default=200, help="most stops to capture")
    parser.add_argument("--rounds", type=int, default=50, help="warm repetitions")
    args = parser.parse_args()
    stops = capture(args.capture, args.stops) if args.capture else all_stops()
    print(f"source: {args.capture or 'tests/data/stacks fixtures'}")
    report(stops, args.rounds)


if __name__ == "__main__":
    main()
