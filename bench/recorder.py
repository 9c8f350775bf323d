"""Benchmark: `heaptrace run`'s memory as the events grow (issue 12, item 3: a bounded recorder).

    .venv/bin/python bench/recorder.py [--events 100k,1m] [--buffer-mib 64] [--json]

For each size, bench/heavy.c makes PAIRS mmap/munmap pairs through 512 call paths (about
2 x PAIRS events; the same work as bench/scale.py) under `heaptrace run`, while this script
samples the recorder's VmRSS (/proc/PID/status) every SAMPLE_S: printed are its peak RSS
(GNU time's maxrss, the whole run), the RSS once the probe is loaded (the baseline: Python,
bcc, the ring buffer), the highest RSS while events were recorded, and the RSS at a quarter, half
and three quarters of the events and at the last progress line (those lines count them), then
the ring buffer's share of RSS (its data pages are mapped twice: 2 x --buffer-mib) and what
a larger recording adds per million events. The target (issue 12): under 300 MB at 1M events
and not growing with the event count. Timings and sizes live here, never in tests.
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


def record(heaptrace: str, heavy: Path, pairs: int, buffer_mib: int,
           tmp: str) -> Dict[str, object]:
    """One run: GNU time's peak and the samples (seconds, RSS MB, events so far)."""
    db = os.path.join(tmp, "r.db")
    argv = ["/usr/bin/time", "-f", "%e %M", heaptrace, "run", "--buffer-mib", str(buffer_mib),
            "-o", db, "--", str(heavy), str(pairs), "0", str(PATHS)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, cwd=tmp)
    events = [0]
    err: List[str] = []

    def read_progress() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            found = PROGRESS.search(line)
            if found:
                events[0] = int(found.group(1).replace(",", ""))

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    samples: List[Tuple[float, float, int]] = []
    start, pid = time.monotonic(), None
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
            "events": total}


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
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.events.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        print(f"recorder.py: unknown size {unknown[0]!r} (choose from {', '.join(SIZES)})",
              file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("recorder.py: heaptrace run needs root (eBPF)", file=sys.stderr)
        return 2
    heavy = build_heavy()
    results = {}
    for size in sizes:
        tmp = tempfile.mkdtemp(prefix=f"heaptrace-recorder-{size}-")
        try:
            print(f"[{size}] recording {2 * SIZES[size]:,} events...", file=sys.stderr)
            run = record(args.heaptrace, heavy, SIZES[size], args.buffer_mib, tmp)
            results[size] = summary(run, args.buffer_mib)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2) if args.json else "\n".join(lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
