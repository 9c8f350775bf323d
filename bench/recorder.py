"""Benchmark: `heaptrace run`'s memory as the events grow (issue 12, item 3: a bounded recorder).

    .venv/bin/python bench/recorder.py [--events 100k,1m] [--buffer-mib 64] [--json]
    .venv/bin/python bench/recorder.py --forks 2000,8000 [--no-exec] [--compare CHECKOUT]

For each size, bench/heavy.c makes PAIRS mmap/munmap pairs through 512 call paths (about
2 x PAIRS events; the same work as bench/scale.py) under `heaptrace run`, while this script
samples the recorder's VmRSS (/proc/PID/status) every SAMPLE_S: printed are its peak RSS
(GNU time's maxrss, the whole run), the RSS once the probe is loaded (the baseline: Python,
bcc, the ring buffer), the highest RSS while events were recorded, and the RSS at a quarter, half
and three quarters of the events and at the last progress line (those lines count them), then
the ring buffer's share of RSS (its data pages are mapped twice: 2 x --buffer-mib) and what
a larger recording adds per million events. The target (issue 12): under 300 MB at 1M events
and not growing with the event count. Timings and sizes live here, never in tests.

With --forks, the target is fork-heavy instead (a build, a shell loop): tests/programs/fork_many
forks N short-lived children one after another, each making a few brk/mmap/munmap calls and
(unless --no-exec) executing exec_target. Printed per N: the length of the recording (from
the probe loaded to the start of finishing), the peak RSS, the RSS once loaded, the highest
RSS while recording and while finishing, and the RSS at 10%, 25%, 50%, 75% and 95% of the
recording (the recorder handles the processes at about an even pace), then what a thousand
processes added from a quarter of them to 95%. --compare CHECKOUT runs another tree's
heaptrace (a `git worktree` of main, say) on the same targets at the same time: the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))  # tests.helpers.programs builds fork_many
from run import build_heavy  # noqa: E402

SIZES = {"100k": 50_000, "1m": 500_000, "3m": 1_500_000, "10m": 5_000_000}  # pairs
PATHS = 512
SAMPLE_S = 0.2
PROGRESS = re.compile(r"heaptrace: ([\d,]+) events")
TOTAL = re.compile(r" in ([\d,]+) events")  # the summary's line of the committed growth


def vm_rss_mb(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/status") as f:
            kb = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return kb / 1024


def _heaptrace_pid(time_pid: int) -> Optional[int]:
    """The heaptrace process under GNU time (its only child)."""
    try:
        with open(f"/proc/{time_pid}/task/{time_pid}/children") as f:
            kids = f.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def record(heaptrace: Sequence[str], target: Sequence[str], buffer_mib: int, tmp: str,
           env: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    """One run of `heaptrace run -- target`: GNU time's peak and the samples (seconds, RSS
    MB, events so far)."""
    db = os.path.join(tmp, "r.db")
    argv = ["/usr/bin/time", "-f", "%e %M", *heaptrace, "run", "--buffer-mib", str(buffer_mib),
            "-o", db, "--", *target]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, cwd=tmp, env=env)
    events = [0]
    err: List[str] = []
    start = time.monotonic()
    phases: Dict[str, float] = {}  # when tracing began (probe loaded) and finishing began

    def read_progress() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            found = PROGRESS.search(line)
            if found:
                events[0] = int(found.group(1).replace(",", ""))
            for phase, said in (("tracing", "heaptrace: tracing "),
                                ("target", "fork_many: "),  # it runs: the probe is loaded
                                ("finishing", "heaptrace: finishing the recording")):
                if line.startswith(said):
                    phases.setdefault(phase, round(time.monotonic() - start, 2))

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    samples: List[Tuple[float, float, int]] = []
    pid = None
    while proc.poll() is None:
        pid = pid or _heaptrace_pid(proc.pid)
        mb = vm_rss_mb(pid) if pid else None
        if mb is not None:
            samples.append((round(time.monotonic() - start, 2), round(mb, 1), events[0]))
        time.sleep(SAMPLE_S)
    reader.join()
    if proc.returncode != 0:
        raise RuntimeError(f"heaptrace run failed: {''.join(err)[-500:]}")
    wall, kib = err[-1].split()
    total = next((int(m.group(1).replace(",", "")) for m in map(TOTAL.search, err) if m), 0)
    return {"wall_s": float(wall), "peak_mb": round(int(kib) / 1024, 1), "samples": samples,
            "events": total, "phases": phases}


# The probe is detached and the ring buffer unmapped (2 x --buffer-mib of RSS) just before
# finishing begins: the last share is a little before it.
FORK_SHARES = (0.1, 0.25, 0.5, 0.75, 0.95)


def fork_summary(run: Dict[str, object], processes: int) -> Dict[str, object]:
    """RSS along the recording (from the target's first line to the start of finishing): the
    recorder handles the processes at about an even pace, well behind the target (it ends
    in seconds; the first stack copies of each exec'd child are unwound from cold caches),
    so a share of that time is about that share of the processes handled."""
    samples = run["samples"]
    phases = run["phases"]
    assert isinstance(samples, list) and isinstance(phases, dict)
    begin = phases.get("target", phases.get("tracing", 0.0))
    end = phases.get("finishing", float("inf"))
    recording = [s for s in samples if begin <= s[0] <= end]
    at: Dict[str, Optional[float]] = {}
    for share in FORK_SHARES:
        when = begin + share * (end - begin)
        reached = [s for s in recording if s[0] >= when - SAMPLE_S]
        at[f"{share:.0%}"] = reached[0][1] if reached else None
    return {"processes": processes, "events": run["events"], "wall_s": run["wall_s"],
            "recording_s": round(end - begin, 1), "peak_mb": run["peak_mb"],
            "loaded_mb": recording[0][1] if recording else None,
            "recording_max_mb": max((s[1] for s in recording), default=None),
            "finishing_max_mb": max((s[1] for s in samples if s[0] > end), default=None),
            "at": at}


def fork_lines(results: Dict[str, Dict[str, object]]) -> List[str]:
    shares = [f"{share:.0%}" for share in FORK_SHARES]
    out = [f"{'heaptrace':<9} {'children':>8} {'rec. s':>7} {'peak':>5} {'loaded':>6} "
           f"{'rec. max':>8} {'fin. max':>8}   RSS MB at " + " / ".join(shares)
           + " of the recording (~ of the processes handled)"]
    for name, r in results.items():
        at = r["at"]
        assert isinstance(at, dict)
        cells = " / ".join("-" if at.get(m) is None else f"{at[m]:.0f}" for m in shares)
        out.append(f"{name.split(':')[0]:<9} {r['processes']:>8,} {r['recording_s']:>7} "
                   f"{r['peak_mb']:>5.0f} {r['loaded_mb'] or 0:>6.0f} "
                   f"{r['recording_max_mb'] or 0:>8.0f} {r['finishing_max_mb'] or 0:>8.0f}   "
                   f"{cells}")
        quarter, whole = at.get("25%"), at.get("95%")
        if quarter is not None and whole is not None:
            grown = (whole - quarter) * 1000 / (0.7 * int(r["processes"]))  # type: ignore
            out.append(f"{'':<9} from a quarter of the processes to 95%: {grown:+.1f} MB per "
                       "thousand processes")
    out.append("target (issue 12): flat (within a few MB) after the first few hundred processes;"
               " finishing (naming stacks, lifetimes) comes after the recording")
    return out


def fork_main(args: argparse.Namespace) -> int:
    from tests.helpers.programs import build

    fork_many, _target = build("fork_many"), build("exec_target")
    counts = [int(c.replace("k", "000")) for c in args.forks.split(",") if c.strip()]
    trees: Dict[str, Tuple[List[str], Optional[Dict[str, str]]]] = {
        "this": ([args.heaptrace], None)}
    if args.compare:
        base = os.path.abspath(args.compare)
        base_env = {**os.environ, "PYTHONPATH": base}  # ahead of this venv's editable install
        trees = {"base": ([sys.executable, "-m", "heaptrace"], base_env), **trees}
    results: Dict[str, Dict[str, object]] = {}

    def one(n: int, name: str, heaptrace: List[str], env: Optional[Dict[str, str]]) -> None:
        tmp = tempfile.mkdtemp(prefix=f"heaptrace-forks-{n}-")
        try:
            print(f"[{name}] {n:,} children...", file=sys.stderr)
            target = [str(fork_many), str(n)] + ([] if args.no_exec else ["exec"])
            run = record(heaptrace, target, args.buffer_mib, tmp, env)
            results[f"{name}:{n}"] = fork_summary(run, n)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    for n in counts:  # the trees compared at the same time: the same load
        runs = [threading.Thread(target=one, args=(n, name, *tree))
                for name, tree in trees.items()]
        for thread in runs:
            thread.start()
        for thread in runs:
            thread.join()
    results = {key: results[key] for key in sorted(results, key=lambda k: (
        int(k.split(":")[1]), k.split(":")[0] != "base"))}
    print(json.dumps(results, indent=2) if args.json else "\n".join(fork_lines(results)))
    return 0


def summary(run: Dict[str, object], buffer_mib: int) -> Dict[str, object]:
    samples = run["samples"]
    assert isinstance(samples, list)
    recording = [s for s in samples if s[2] > 0]  # progress says events arrived
    total = int(run["events"])  # type: ignore[call-overload]
    at: Dict[str, Optional[float]] = {}
    for share in (0.25, 0.5, 0.75):
        reached = [s for s in recording if s[2] >= share * total]
        at[f"{int(share * 100)}%"] = reached[0][1] if reached else None
    last = max((s[2] for s in recording), default=0)  # the last progress line's count
    at["last"] = next((s[1] for s in recording if s[2] == last), None)
    first = recording[0] if recording else None
    loaded = max((s[1] for s in samples if first and s[0] < first[0]), default=None)
    return {"events": total, "wall_s": run["wall_s"], "peak_mb": run["peak_mb"],
            "loaded_mb": loaded, "recording_max_mb": max((s[1] for s in recording),
                                                          default=None),
            "at": at, "ring_buffer_mb": 2 * buffer_mib}


def lines(results: Dict[str, Dict[str, object]]) -> List[str]:
    out = [f"{'size':<6} {'events':>10} {'wall s':>7} {'peak MB':>8} {'loaded':>7} "
           f"{'recording max':>14}   RSS MB at 25/50/75% of the events and at the last count"]
    for size, r in results.items():
        at = r["at"]
        assert isinstance(at, dict)
        quarters = " / ".join("-" if v is None else f"{v:.0f}" for v in at.values())
        out.append(f"{size:<6} {r['events']:>10,} {r['wall_s']:>7.1f} {r['peak_mb']:>8.0f} "
                   f"{r['loaded_mb'] or 0:>7.0f} {r['recording_max_mb'] or 0:>14.0f}   "
                   f"{quarters}")
    first = next(iter(results.values()))
    out.append(f"the ring buffer's pages count {first['ring_buffer_mb']} MB of each RSS "
               f"(--buffer-mib, mapped twice)")
    sized = [(size, r) for size, r in results.items() if r["events"]]
    for (small, lo), (big, hi) in zip(sized, sized[1:]):
        grown = float(hi["peak_mb"]) - float(lo["peak_mb"])  # type: ignore[arg-type]
        millions = (int(hi["events"]) - int(lo["events"])) / 1e6  # type: ignore[call-overload]
        out.append(f"peak RSS {small} -> {big}: {lo['peak_mb']:.0f} -> {hi['peak_mb']:.0f} MB, "
                   f"{grown / millions:+.1f} MB per million events more")
    out.append("target (issue 12): under 300 MB at 1M events, not growing with the events")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", default="100k,1m",
                        help=f"comma-separated sizes, from {', '.join(SIZES)} (100k,1m)")
    parser.add_argument("--buffer-mib", type=int, default=64)
    parser.add_argument("--heaptrace", default=str(ROOT / ".venv" / "bin" / "heaptrace"))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--forks", help="fork-heavy runs instead: comma-separated numbers of "
                        "children (2000,8000)")
    parser.add_argument("--no-exec", action="store_true",
                        help="with --forks: the children exit without executing a program")
    parser.add_argument("--compare", metavar="CHECKOUT",
                        help="with --forks: also run the heaptrace of this checkout, alternating")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("recorder.py: heaptrace run needs root (eBPF)", file=sys.stderr)
        return 2
    if args.forks:
        return fork_main(args)
    sizes = [s.strip() for s in args.events.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        print(f"recorder.py: unknown size {unknown[0]!r} (choose from {', '.join(SIZES)})",
              file=sys.stderr)
        return 2
    heavy = build_heavy()
    results = {}
    for size in sizes:
        tmp = tempfile.mkdtemp(prefix=f"heaptrace-recorder-{size}-")
        try:
            print(f"[{size}] recording {2 * SIZES[size]:,} events...", file=sys.stderr)
            target = [str(heavy), str(SIZES[size]), "0", str(PATHS)]
            run = record([args.heaptrace], target, args.buffer_mib, tmp)
            results[size] = summary(run, args.buffer_mib)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2) if args.json else "\n".join(lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
