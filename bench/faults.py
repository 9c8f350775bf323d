"""Benchmark: the cost of following page faults (resident growth by stack), side by side.

    .venv/bin/python bench/faults.py [--reps 5] [--threads 4] [--blocks 100000]
                                     [--modes untraced,heaptrace,heaptrace-rss,perf] [--json]

bench/faults.c (compiled into build/bench/) has THREADS threads malloc and fill BLOCKS blocks
of 500 bytes each: glibc commits its arenas a page at a time (an mprotect each) and every page
becomes resident on first touch, one page fault each. The program times that work itself.
Each repetition runs it once in every mode, the order rotating:

    untraced       the program alone
    heaptrace      heaptrace run (every kind: resident growth summed per user stack in BPF)
    heaptrace-rss  heaptrace run --events brk,mmap,munmap,mremap,madvise,mprotect: RSS still
                   followed exactly, no stack per page
    perf           perf record -e exceptions:page_fault_user --call-graph dwarf (a sample and
                   a copy of the stack per fault, unwound afterwards)

Reported per mode: the median of the program's self-timed work and its ratio to the untraced
median; for heaptrace the bytes it saw become resident against the bytes the program filled,
and the resident increments summed without a stack (none unless its per-stack map overflows);
for perf the faults it recorded and the events it lost. Timings live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    NO_ASLR,
    Run,
    Unavailable,
    _untraced,
    build_program,
    chosen_modes,
    common_args,
    execute,
    find_tools,
    first_line,
    fresh,
    histogram_of,
    perf_record,
    repetitions,
    show,
)

MODES = ("untraced", "heaptrace", "heaptrace-rss", "perf")
SYSCALLS_ONLY = "brk,mmap,munmap,mremap,madvise,mprotect"
MIB = 1 << 20


def own_report(proc: subprocess.CompletedProcess, mode: str) -> dict:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{") and "elapsed_s" in line:
            return json.loads(line)
    raise Unavailable(f"{mode} run failed ({proc.returncode}): {first_line(proc.stderr)}")


def _heaptrace(events: Optional[str]) -> Callable:
    def runner(target: Sequence[str], tmp: str, tools: Dict[str, str]) -> tuple:
        recording = fresh(tmp, "faults.db")

        def after(run: Run, proc: subprocess.CompletedProcess) -> None:
            doc = histogram_of(tools, recording)
            meta = doc.get("recording", {})
            run.extra.update(
                resident_bytes=doc["events"].get("resident", {}).get("bytes", 0),
                peak_rss=int(meta.get("peak_rss") or 0),
                unstacked=(meta.get("probe_counters") or {}).get("resident_lost", 0),
                lost=int(meta.get("lost_events") or 0))

        kinds = ["--events", events] if events else []
        return [*NO_ASLR, tools["heaptrace"], "run", "-o", recording, *kinds, "--",
                *target], after
    return runner


def _perf(target: Sequence[str], tmp: str, tools: Dict[str, str]) -> tuple:
    def read(run: Run, script: str) -> None:
        run.extra["faults_seen"] = sum("page_fault_user" in x for x in script.splitlines())

    return perf_record(target, tmp, tools, "exceptions:page_fault_user", read)


RUNNERS: Dict[str, Callable] = {
    "untraced": _untraced, "heaptrace": _heaptrace(None),
    "heaptrace-rss": _heaptrace(SYSCALLS_ONLY), "perf": _perf,
}


def run_mode(mode: str, target: Sequence[str], tmp: str, tools: Dict[str, str]) -> Run:
    argv, after = RUNNERS[mode](target, tmp, tools)
    proc, wall, launched = execute(argv)
    own = own_report(proc, mode)
    filled = own["threads"] * own["blocks"] * own["block_bytes"]
    run = Run(mode, own["elapsed_s"], wall, own["main_started"] - launched, {"filled": filled})
    after(run, proc)
    return run


def summarize(runs: Dict[str, List[Run]], unavailable: Dict[str, str]) -> dict:
    base_runs = runs.get("untraced") or []
    base = statistics.median(r.work_s for r in base_runs) if base_runs else 0.0
    modes = []
    for mode, rs in runs.items():
        if not rs:
            continue
        work = statistics.median(r.work_s for r in rs)
        m = {"mode": mode, "reps": len(rs), "work_s": work,
             "slowdown": work / base if base else None,
             "wall_s": statistics.median(r.wall_s for r in rs), "filled_bytes": rs[0].own["filled"],
             "notes": sorted({n for r in rs for n in r.notes})}
        m.update({key: [r.extra[key] for r in rs] for key in rs[0].extra})
        modes.append(m)
    return {"modes": modes, "unavailable": unavailable}


def report_lines(summary: dict, args: argparse.Namespace) -> List[str]:
    lines = [f"faults: {args.threads} threads x {args.blocks} blocks of 500 bytes, "
             f"{args.reps} repetitions; medians of the program's self-timed work", "",
             f"{'mode':<14} {'work s':>8} {'slowdown':>9} {'wall s':>8}  seen"]
    for m in summary["modes"]:
        slow = f"{m['slowdown']:.2f}x" if m["slowdown"] else "-"
        lines.append(f"{m['mode']:<14} {m['work_s']:>8.3f} {slow:>9} {m['wall_s']:>8.3f}  "
                     f"{seen(m)}")
        lines += [f"{'':<14} {note}" for note in m["notes"]]
    lines += [f"{mode:<14} unavailable: {why}" for mode, why in summary["unavailable"].items()]
    return lines


def seen(m: dict) -> str:
    """What the tracer saw, against what the program did."""
    if max(m.get("resident_bytes", [0])):
        low, high = min(m["resident_bytes"]), max(m["resident_bytes"])
        return (f"made resident {low / MIB:.1f}-{high / MIB:.1f} MiB for "
                f"{m['filled_bytes'] / MIB:.1f} MiB filled; without a stack: "
                f"{max(m['unstacked'])}; events lost: {max(m['lost'])}")
    if "peak_rss" in m:
        return f"peak RSS {max(m['peak_rss']) / MIB:.1f} MiB (no stacks)"
    if "faults_seen" in m:
        return (f"page faults recorded {min(m['faults_seen'])}-{max(m['faults_seen'])} "
                f"for {m['filled_bytes'] // 4096} pages filled")
    return "-"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common_args(parser, MODES)
    parser.add_argument("--threads", type=int, default=4, help="threads (4)")
    parser.add_argument("--blocks", type=int, default=100000, help="blocks per thread (100000)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    modes = chosen_modes(args.modes, MODES)
    if modes is None:
        return 2
    target = [str(build_program("faults", "-pthread")), str(args.threads), str(args.blocks)]
    runs, unavailable = repetitions(modes, args.reps, target, find_tools(args.heaptrace),
                                    run_mode)
    summary = summarize(runs, unavailable)
    show(summary, args.json, lambda: report_lines(summary, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
