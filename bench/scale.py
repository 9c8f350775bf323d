"""Benchmark: every view of a large recording, against one full SQLite scan of its events.

    .venv/bin/python bench/scale.py [--events 1m,10m] [--keep DIR] [--json]

For each size, bench/heavy.c makes PAIRS mmap/munmap pairs through 512 call paths (so about
2 x PAIRS events on 512 stacks) under `heaptrace run`; the recorder's wall time and peak RSS
are measured (GNU time), then every view of the recording, one after another, each as its own
process with its wall time and peak RSS:

    histogram --json, flame --folded, flame (SVG), report, timeline, timeline --svg,
    flame --retained --folded, flame --at peak --folded, diff --at exit, export pprof

Each view's time is printed as a ratio to one full scan of the same file's events table
(every column of every row read in SQLite, `SELECT ... FROM events` summed), measured in the
same run. Where perf is installed, `perf record` of the same program on the same tracepoints
and `perf script` (with FlameGraph's stackcollapse-perf.pl | flamegraph.pl when they are on
PATH) are timed beside them. The issue's targets (issue 12): on ~1M events every view within
10x a full scan and under 300 MB; on ~10M events every view under 30 s and 500 MB; the
recorder under 300 MB at 1M events. Timings live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import build_heavy  # noqa: E402

SIZES = {"1m": 500_000, "10m": 5_000_000}  # mmap/munmap pairs: two events each
PATHS = 512
VIEWS = {
    "histogram --json": ["histogram", "{db}", "--json"],
    "flame --folded": ["flame", "{db}", "--folded"],
    "flame (svg)": ["flame", "{db}"],
    "report": ["report", "{db}"],
    "timeline": ["timeline", "{db}"],
    "timeline --svg": ["timeline", "{db}", "--svg"],
    "flame --retained": ["flame", "{db}", "--retained", "--folded"],
    "flame --at peak": ["flame", "{db}", "--at", "peak", "--folded"],
    "diff --at exit": ["diff", "{db}", "{db}", "--at", "exit"],
    "export pprof": ["export", "pprof", "{db}", "-o", "{tmp}/out.pb.gz"],
}
TIME_FORMAT = "%e %M"  # GNU time: wall seconds, peak RSS KiB


def timed(argv: Sequence[str], cwd: Optional[str] = None) -> Dict[str, float]:
    """Wall seconds and peak RSS (MB) of one command, from GNU time."""
    proc = subprocess.run(["/usr/bin/time", "-f", TIME_FORMAT, *argv], capture_output=True,
                          text=True, cwd=cwd, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()[-300:]}")
    wall, kib = proc.stderr.strip().splitlines()[-1].split()
    return {"s": float(wall), "mb": int(kib) / 1024}


def full_scan(db: str) -> float:
    """Seconds to read every column of every event once, in SQLite."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    start = time.monotonic()
    con.execute("SELECT COUNT(*), SUM(size), TOTAL(ts_ns), TOTAL(pid), TOTAL(tid), "
                "TOTAL(addr), TOTAL(length), TOTAL(prot), TOTAL(flags), TOTAL(fd), TOTAL(ret), "
                "TOTAL(stack_id), SUM(calls), TOTAL(new_addr), TOTAL(new_length), "
                "TOTAL(mem_class), COUNT(kind) FROM events").fetchone()
    elapsed = time.monotonic() - start
    con.close()
    return elapsed


def perf_side(heavy: Path, pairs: int, tmp: str) -> Dict[str, object]:
    """perf record of the same work on the syscall tracepoints, and perf script after it."""
    if shutil.which("perf") is None:
        return {"unavailable": "perf not installed"}
    data = os.path.join(tmp, "perf.data")
    events = ",".join(f"syscalls:sys_enter_{k}" for k in ("brk", "mmap", "munmap", "mremap"))
    out: Dict[str, object] = {"record": timed(
        ["perf", "record", "-q", "-o", data, "-g", "-e", events, "--", str(heavy),
         str(pairs), "0", str(PATHS)])}
    script = os.path.join(tmp, "perf.script")
    start = time.monotonic()
    with open(script, "w") as f:
        subprocess.run(["perf", "script", "-i", data], stdout=f, stderr=subprocess.DEVNULL,
                       check=True)
    out["script"] = {"s": round(time.monotonic() - start, 2)}
    collapse, graph = shutil.which("stackcollapse-perf.pl"), shutil.which("flamegraph.pl")
    if collapse and graph:
        start = time.monotonic()
        subprocess.run(f"{collapse} {script} | {graph} > {tmp}/perf.svg", shell=True, check=True)
        out["stackcollapse | flamegraph"] = {"s": round(time.monotonic() - start, 2)}
    else:
        out["flamegraph.pl"] = "not on PATH (FlameGraph's scripts): perf script timed alone"
    return out


def measure(size: str, heaptrace: str, heavy: Path, keep: Optional[str]) -> Dict[str, object]:
    pairs = SIZES[size]
    tmp = keep or tempfile.mkdtemp(prefix=f"heaptrace-scale-{size}-")
    os.makedirs(tmp, exist_ok=True)
    db = os.path.join(tmp, f"{size}.db")
    if os.path.exists(db):
        os.unlink(db)
    print(f"[{size}] recording {2 * pairs:,} events...", file=sys.stderr)
    result: Dict[str, object] = {"record": timed(
        [heaptrace, "run", "-o", db, "--", str(heavy), str(pairs), "0", str(PATHS)], cwd=tmp)}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    result["events"] = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    result["stacks"] = con.execute("SELECT COUNT(*) FROM stacks").fetchone()[0]
    con.close()
    scan = min(full_scan(db) for _ in range(3))
    result["scan_s"] = round(scan, 3)
    views: Dict[str, Dict[str, float]] = {}
    for name, args in VIEWS.items():
        print(f"[{size}] {name}...", file=sys.stderr)
        argv = [heaptrace, *(a.format(db=db, tmp=tmp) for a in args)]
        views[name] = timed(argv, cwd=tmp)
        views[name]["x_scan"] = round(views[name]["s"] / scan, 1) if scan else 0.0
    result["views"] = views
    result["perf"] = perf_side(heavy, pairs, tmp)
    if keep is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def lines(results: Dict[str, Dict[str, object]]) -> List[str]:
    out = []
    for size, r in results.items():
        rec = r["record"]
        assert isinstance(rec, dict)
        out.append(f"{size}: {r['events']:,} events on {r['stacks']:,} stacks; full scan "
                   f"{r['scan_s']} s; heaptrace run {rec['s']:.1f} s, peak RSS {rec['mb']:.0f} MB")
        out.append(f"  {'view':<20} {'seconds':>8} {'x scan':>7} {'peak RSS MB':>12}")
        views = r["views"]
        assert isinstance(views, dict)
        for name, v in views.items():
            out.append(f"  {name:<20} {v['s']:>8.2f} {v['x_scan']:>7.1f} {v['mb']:>12.0f}")
        out.append(f"  perf: {json.dumps(r['perf'])}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", default="1m", help="comma-separated: 1m, 10m (1m)")
    parser.add_argument("--heaptrace", default=str(ROOT / ".venv" / "bin" / "heaptrace"))
    parser.add_argument("--keep", help="keep the recordings in this directory")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.events.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        print(f"scale.py: unknown size {unknown[0]!r} (choose from 1m, 10m)", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("scale.py: heaptrace run needs root (eBPF)", file=sys.stderr)
        return 2
    heavy = build_heavy()
    results = {s: measure(s, args.heaptrace, heavy, args.keep) for s in sizes}
    print(json.dumps(results, indent=2) if args.json else "\n".join(lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
