"""Benchmark: the cost of watching an event-heavy program, and the events each tracer loses.

    .venv/bin/python bench/run.py [--reps 5] [--pairs 50000] [--growths 20000]
                                  [--modes untraced,heaptrace,perf,strace] [--json]

bench/heavy.c (compiled into build/bench/) makes PAIRS mmap/munmap pairs and GROWTHS brk
growths, times that work itself and prints its counts. Each repetition runs it once in every
mode, side by side (the order rotates from one repetition to the next):

    untraced    the program alone
    heaptrace   heaptrace run -o F -- heavy, then heaptrace histogram F --json
    perf        perf record --call-graph dwarf -e syscalls:sys_enter_{brk,mmap,munmap,mremap}
    strace      strace -f -o LOG (every syscall, as one usually runs it)

All under `setarch -R`, so every run lays memory out the same way. Reported per mode: the
median of the program's self-timed work and its ratio to the untraced median (start-up, BPF
compilation and post-processing are not in it; the median wall time is shown apart, and the
time from launching the command to the program's main, i.e. the tracer's set-up), and
per kind the calls each tracer saw against the calls the program made. "Made" is exact:
the program's own counts of that run plus the start-up calls (loader, libc) that strace's
log shows on top of the program's counts in its own run. heaptrace also reports the events
its per-event stream lost (recording meta `lost_events`; its totals must stay exact anyway).
Reference figures (docs/run.md, two runs on the shared 2-core VM): heaptrace 1.3-2.4x with
nothing lost, perf about 2x with 5% of the events lost, strace 7-8x. Timings live here, never
in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a script run from anywhere: the checkout's tests/ package
from tests.helpers.strace_oracle import parse as parse_strace  # noqa: E402

KINDS = ("brk", "mmap", "munmap", "mremap")
MODES = ("untraced", "heaptrace", "perf", "strace")
PERF_EVENTS = ",".join(f"syscalls:sys_enter_{k}" for k in KINDS)
NO_ASLR = ["setarch", "-R"]


class Unavailable(Exception):
    """A mode cannot run here (tool missing, not implemented yet, failed): why, in a line."""


@dataclass
class Run:
    """One run of heavy in one mode."""

    mode: str
    work_s: float
    wall_s: float
    start_s: float  # from launching the command to heavy's main (tracer set-up included)
    own: Dict[str, int]  # the program's own counts (its loops)
    seen: Optional[Dict[str, int]] = None  # calls per kind the tracer reported
    lost_meta: Optional[int] = None  # heaptrace: events its per-event stream lost
    stack_share: float = 0.0  # heaptrace: share of recorded events that have a user stack
    totals: Optional[Dict[str, Dict[str, int]]] = None  # strace: the oracle's exact totals
    bytes_seen: Optional[Dict[str, int]] = None
    notes: List[str] = field(default_factory=list)
    extra: Dict[str, int] = field(default_factory=dict)  # what another benchmark measures


# ---------------------------------------------------------------- running


def build_program(name: str, *flags: str) -> Path:
    """Compile bench/NAME.c into build/bench/NAME when the source is newer."""
    source, binary = ROOT / "bench" / f"{name}.c", ROOT / "build" / "bench" / name
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-O2", "-g", "-Wall", *flags, "-o", str(binary), str(source)],
                   check=True)
    return binary


def build_heavy() -> Path:
    return build_program("heavy")


def execute(argv: Sequence[str]) -> tuple:
    """Run argv with the output captured: (completed process, wall seconds, launch time)."""
    try:
        launched, start = time.time(), time.monotonic()
        proc = subprocess.run(list(argv), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise Unavailable(f"{e.filename} not found") from e
    return proc, time.monotonic() - start, launched


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def own_report(proc: subprocess.CompletedProcess, mode: str) -> Dict[str, float]:
    """heavy's JSON line from stdout, or Unavailable when the run failed."""
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{") and "elapsed_s" in line:
            return json.loads(line)
    raise Unavailable(f"{mode} run failed ({proc.returncode}): {first_line(proc.stderr)}")


def run_mode(mode: str, heavy: Sequence[str], tmp: str, tools: Dict[str, str]) -> Run:
    argv, after = _RUNNERS[mode](heavy, tmp, tools)
    proc, wall, launched = execute(argv)
    report = own_report(proc, mode)
    run = Run(mode, report["elapsed_s"], wall, report["main_started"] - launched,
              {k: int(report[k]) for k in KINDS})
    after(run, proc)
    return run


def _untraced(heavy: Sequence[str], tmp: str, tools: Dict[str, str]) -> tuple:
    return [*NO_ASLR, *heavy], lambda run, proc: None


def fresh(tmp: str, name: str) -> str:
    """A path in tmp with nothing there yet."""
    path = os.path.join(tmp, name)
    if os.path.exists(path):
        os.unlink(path)
    return path


def histogram_of(tools: Dict[str, str], recording: str) -> dict:
    """`heaptrace histogram --json` of a recording: totals per kind and the run's meta."""
    hist, _, _ = execute([tools["heaptrace"], "histogram", recording, "--json"])
    if hist.returncode != 0:
        raise Unavailable(f"heaptrace histogram failed: {first_line(hist.stderr)}")
    return json.loads(hist.stdout)


def _heaptrace(heavy: Sequence[str], tmp: str, tools: Dict[str, str]) -> tuple:
    recording = fresh(tmp, "heavy.db")

    def after(run: Run, proc: subprocess.CompletedProcess) -> None:
        doc = histogram_of(tools, recording)
        events = doc.get("events", {})
        run.seen = {k: events.get(k, {}).get("calls", 0) for k in KINDS}
        run.bytes_seen = {k: events.get(k, {}).get("bytes", 0) for k in KINDS}
        meta = doc.get("recording", {})
        run.lost_meta = int(meta.get("lost_events", 0) or 0)
        recorded = int(meta.get("events_recorded", 0) or 0)
        run.stack_share = int(meta.get("events_with_stack", 0) or 0) / recorded if recorded else 0

    return [*NO_ASLR, tools["heaptrace"], "run", "-o", recording, "--", *heavy], after


def perf_record(target: Sequence[str], tmp: str, tools: Dict[str, str], events: str,
                read: Callable[[Run, str], None]) -> tuple:
    """perf record --call-graph dwarf of EVENTS around target; `read` takes what
    `perf script -F event` printed (one line per sample) into the run."""
    data = os.path.join(tmp, "perf.data")

    def after(run: Run, proc: subprocess.CompletedProcess) -> None:
        script, _, _ = execute([tools["perf"], "script", "-i", data, "-F", "event"])
        if script.returncode != 0:
            raise Unavailable(f"perf script failed: {first_line(script.stderr)}")
        read(run, script.stdout)
        run.notes += [line.strip() for line in proc.stderr.splitlines() if "lost" in line.lower()]
        os.unlink(data)  # hundreds of MB of copied stacks

    argv = [*NO_ASLR, tools["perf"], "record", "-q", "--call-graph", "dwarf", "-e", events,
            "-o", data, "--", *target]
    return argv, after


def _perf(heavy: Sequence[str], tmp: str, tools: Dict[str, str]) -> tuple:
    def read(run: Run, script: str) -> None:
        run.seen = perf_counts(script)

    return perf_record(heavy, tmp, tools, PERF_EVENTS, read)


def perf_counts(script_output: str) -> Dict[str, int]:
    """Samples per kind in `perf script -F event` output (one 'syscalls:sys_enter_X:' each)."""
    counts = dict.fromkeys(KINDS, 0)
    for line in script_output.splitlines():
        name = line.strip().rstrip(":").rsplit("sys_enter_", 1)[-1]
        if name in counts:
            counts[name] += 1
    return counts


def _strace(heavy: Sequence[str], tmp: str, tools: Dict[str, str]) -> tuple:
    log = os.path.join(tmp, "strace.log")

    def after(run: Run, proc: subprocess.CompletedProcess) -> None:
        result = parse_strace(Path(log).read_text(errors="replace"))
        run.totals = result.totals
        run.seen = {k: result.totals[k]["calls"] for k in KINDS}
        run.bytes_seen = {k: result.totals[k]["bytes"] for k in KINDS}
        os.unlink(log)

    return [*NO_ASLR, tools["strace"], "-f", "-o", log, "--", *heavy], after


_RUNNERS: Dict[str, Callable] = {
    "untraced": _untraced, "heaptrace": _heaptrace, "perf": _perf, "strace": _strace,
}


def find_tools(heaptrace: Optional[str]) -> Dict[str, str]:
    """Paths of the tracers (the venv's heaptrace first); missing ones stay as bare names."""
    venv = ROOT / ".venv" / "bin" / "heaptrace"
    found = {name: shutil.which(name) or name for name in ("perf", "strace")}
    found["heaptrace"] = heaptrace or (str(venv) if venv.exists() else "heaptrace")
    return found


def repetitions(modes: Sequence[str], reps: int, heavy: Sequence[str],
                tools: Dict[str, str], run_one: Optional[Callable] = None) -> tuple:
    """Every mode once per repetition, rotating the order: (runs, {mode: why unavailable}).
    `run_one(mode, argv, tmp, tools)` runs one (default: run_mode) and returns a Run."""
    run_one = run_one or run_mode
    runs: Dict[str, List[Run]] = {m: [] for m in modes}
    unavailable: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="heaptrace-bench-") as tmp:
        for rep in range(reps):
            order = list(modes[rep % len(modes):]) + list(modes[:rep % len(modes)])
            for mode in (m for m in order if m not in unavailable):
                try:
                    runs[mode].append(run_one(mode, heavy, tmp, tools))
                    done = f"{runs[mode][-1].work_s:.3f} s"
                except Unavailable as e:
                    unavailable[mode], done = str(e), "unavailable"
                print(f"  rep {rep + 1}/{reps} {mode:<14} {done}", file=sys.stderr)
    return runs, unavailable


# ---------------------------------------------------------------- reporting


def startup_calls(runs: Dict[str, List[Run]]) -> Optional[Dict[str, int]]:
    """Calls outside heavy's loops (loader, libc start-up), from strace's exact count."""
    exact = runs.get("strace") or []
    if not exact:
        return None
    r = exact[0]
    return {k: r.seen[k] - r.own[k] for k in KINDS}


def made(run: Run, startup: Optional[Dict[str, int]]) -> Dict[str, int]:
    """The calls this run made: its own counts plus the start-up ones (0 if unknown)."""
    return {k: run.own[k] + (startup or {}).get(k, 0) for k in KINDS}


def mode_summary(mode: str, runs: List[Run], base: float, startup: Optional[dict]) -> dict:
    work = statistics.median(r.work_s for r in runs)
    summary = {
        "mode": mode, "reps": len(runs), "work_s": work,
        "wall_s": statistics.median(r.wall_s for r in runs),
        "start_s": statistics.median(r.start_s for r in runs),
        "slowdown": work / base if base else None,
    }
    if runs[0].seen is not None:
        summary["lost"] = lost_summary(runs, startup)
    if runs[0].lost_meta is not None:
        summary["lost_events_meta"] = max(r.lost_meta for r in runs)
        summary["stack_share_min"] = min(r.stack_share for r in runs)
    summary["notes"] = sorted({n for r in runs for n in r.notes})
    return summary


def lost_summary(runs: List[Run], startup: Optional[dict]) -> dict:
    """Per kind: calls made and seen, summed over the repetitions."""
    out = {}
    for k in KINDS:
        made_k = sum(made(r, startup)[k] for r in runs)
        seen_k = sum(r.seen[k] for r in runs)
        out[k] = {"made": made_k, "seen": seen_k, "lost": made_k - seen_k}
    return out


def summarize(runs: Dict[str, List[Run]], unavailable: Dict[str, str]) -> dict:
    startup = startup_calls(runs)
    base_runs = runs.get("untraced") or []
    base = statistics.median(r.work_s for r in base_runs) if base_runs else 0.0
    modes = [mode_summary(m, rs, base, startup) for m, rs in runs.items() if rs]
    return {"startup_calls": startup, "modes": modes, "unavailable": unavailable,
            "exact_reference": startup is not None}


def fmt_lost(lost: dict) -> str:
    made_all = sum(v["made"] for v in lost.values())
    lost_all = sum(v["lost"] for v in lost.values())
    share = 100.0 * lost_all / made_all if made_all else 0.0
    per_kind = " ".join(f"{k} {v['seen']}/{v['made']}" for k, v in lost.items() if v["made"])
    return f"{lost_all} lost ({share:.1f}%): {per_kind}"


def report_lines(summary: dict, args: argparse.Namespace) -> List[str]:
    lines = [f"heavy {args.pairs} mmap/munmap pairs, {args.growths} malloc growths, "
             f"{args.reps} repetitions; medians of the program's self-timed work", "",
             f"{'mode':<10} {'work s':>8} {'slowdown':>9} {'wall s':>8} {'start s':>8}"
             "  events seen/made"]
    for m in summary["modes"]:
        slow = f"{m['slowdown']:.2f}x" if m["slowdown"] else "-"
        lost = fmt_lost(m["lost"]) if "lost" in m else "-"
        lines.append(f"{m['mode']:<10} {m['work_s']:>8.3f} {slow:>9} {m['wall_s']:>8.3f} "
                     f"{m['start_s']:>8.3f}  {lost}")
        if "lost_events_meta" in m:
            lines.append(f"{'':<10} recording lost_events (per-event stream): "
                         f"{m['lost_events_meta']}; events with a user stack: "
                         f"{m['stack_share_min']:.2%} (worst repetition)")
        lines += [f"{'':<10} {note}" for note in m["notes"]]
    lines += [f"{mode:<10} unavailable: {why}" for mode, why in summary["unavailable"].items()]
    if not summary["exact_reference"]:
        lines.append("(no strace run: 'made' counts only the program's loops, not start-up)")
    lines.append("start s: from launching the command to the program's main (tracer set-up)")
    lines.append("reference (docs/run.md): heaptrace 1.3-2.4x, nothing lost; perf ~2x, ~5% lost; "
                 "strace 7-8x")
    return lines


def common_args(parser: argparse.ArgumentParser, modes: Sequence[str]) -> None:
    """The options every benchmark here takes."""
    parser.add_argument("--reps", type=int, default=5, help="repetitions per mode (5)")
    parser.add_argument("--modes", default=",".join(modes), help="comma-separated subset")
    parser.add_argument("--heaptrace", help="heaptrace executable (default: the venv's)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common_args(parser, MODES)
    parser.add_argument("--pairs", type=int, default=50000, help="mmap/munmap pairs (50000)")
    parser.add_argument("--growths", type=int, default=20000, help="malloc growths (20000)")
    return parser.parse_args(argv)


def chosen_modes(text: str, known: Sequence[str]) -> Optional[List[str]]:
    """The --modes list, or None (said on stderr) when it names an unknown mode."""
    modes = [m for m in text.split(",") if m]
    unknown = set(modes) - set(known)
    if unknown:
        print(f"unknown modes: {', '.join(sorted(unknown))} (known: {', '.join(known)})",
              file=sys.stderr)
        return None
    return modes


def show(summary: dict, as_json: bool, lines: Callable[[], List[str]]) -> None:
    if as_json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print("\n".join(lines()))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    modes = chosen_modes(args.modes, MODES)
    if modes is None:
        return 2
    heavy = [str(build_heavy()), str(args.pairs), str(args.growths)]
    runs, unavailable = repetitions(modes, args.reps, heavy, find_tools(args.heaptrace))
    summary = summarize(runs, unavailable)
    show(summary, args.json, lambda: report_lines(summary, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
