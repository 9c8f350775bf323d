"""Benchmark: where `heaptrace run` spends its time before the target's main (issue 12, item 4).

    .venv/bin/python bench/startup.py [--reps 3] [--compare CHECKOUT] [--json]

Two measurements, each repeated REPS times (medians printed):

1. End to end, side by side on the same program (bench/heavy.c with no work, which prints the
   CLOCK_REALTIME at which its main began): from launching the command to the target's main,
   and the wall time of the whole command, for
       untraced       heavy alone
       heaptrace      heaptrace run -o F -- heavy
       perf record    perf record -e syscalls:sys_enter_{brk,mmap,munmap} -g -- heavy
2. Phase by phase, in a fresh Python process that does what `heaptrace run` does before it
   starts the target, each phase timed alone: the interpreter, `import bcc`, the heaptrace
   modules `run` imports, the probe's settings (tracefs, BTF), its text, the clang compile of
   an empty program (what bcc costs whatever the probe: its headers, its rewriter, clang's
   first run), the clang compile of the probe (bcc's BPF() without its automatic load), then
   per program the verifier's load and the attach, the tail-called stage programs, the
   table set-up and the ring buffer, with the process's RSS after each phase; then all of
   it again as `heaptrace run` does it (backends/ebpf.py load_probe: the programs verified
   in parallel threads). Per program, the instructions the verifier processed (the kernel's
   bpf_prog_info.verified_insns).

--compare CHECKOUT measures another tree's heaptrace too (a `git worktree` of main, say, run
by this venv's Python with the checkout first on PYTHONPATH), each repetition running both one
after the other, so that before and after see the same load; the phases are printed side by
side.

The target is 0.5 s from launch to main. Timings live here, never in tests.
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
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import build_heavy  # noqa: E402

TARGET_S = 0.5
PERF_EVENTS = ",".join(f"syscalls:sys_enter_{k}" for k in ("brk", "mmap", "munmap"))

# Runs in a fresh interpreter: prints one JSON object of phase -> [seconds, RSS MB after].
PHASES = r'''
import ctypes, json, sys, time
T = {}
class ProgInfo(ctypes.Structure):  # struct bpf_prog_info (uapi/linux/bpf.h), to verified_insns
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64),
                ("name", ctypes.c_char * 16), ("ifindex", ctypes.c_uint32),
                ("gpl_compatible", ctypes.c_uint32), ("netns_dev", ctypes.c_uint64),
                ("netns_ino", ctypes.c_uint64), ("nr_jited_ksyms", ctypes.c_uint32),
                ("nr_jited_func_lens", ctypes.c_uint32), ("jited_ksyms", ctypes.c_uint64),
                ("jited_func_lens", ctypes.c_uint64), ("btf_id", ctypes.c_uint32),
                ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
                ("nr_func_info", ctypes.c_uint32), ("nr_line_info", ctypes.c_uint32),
                ("line_info", ctypes.c_uint64), ("jited_line_info", ctypes.c_uint64),
                ("nr_jited_line_info", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
                ("jited_line_info_rec_size", ctypes.c_uint32), ("nr_prog_tags", ctypes.c_uint32),
                ("prog_tags", ctypes.c_uint64), ("run_time_ns", ctypes.c_uint64),
                ("run_cnt", ctypes.c_uint64), ("recursion_misses", ctypes.c_uint64),
                ("verified_insns", ctypes.c_uint32), ("attach_btf_obj_id", ctypes.c_uint32),
                ("attach_btf_id", ctypes.c_uint32), ("pad", ctypes.c_uint32)]
class InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]
libc = ctypes.CDLL(None, use_errno=True)
def verified(fd):
    """(instructions after load, instructions the verifier processed) of program fd."""
    info = ProgInfo()
    attr = InfoAttr(fd, ctypes.sizeof(info), ctypes.addressof(info))
    if libc.syscall(321, 15, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:  # x86_64 bpf()
        return None
    return [info.xlated_prog_len // 8, info.verified_insns]
INSNS = {}
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) // 1024 for l in f if l.startswith("VmRSS"))
import resource
def cpu():  # this process's CPU seconds: clang runs in it, the verifier in its bpf() calls
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
last, last_cpu = time.monotonic(), cpu()
def mark(name):
    global last, last_cpu
    now, now_cpu = time.monotonic(), cpu()
    T[name] = [round(now - last, 4), rss(), round(now_cpu - last_cpu, 4)]
    last, last_cpu = now, now_cpu
import bcc
mark("import bcc")
import heaptrace.cli, heaptrace.commands.run
from heaptrace.backends import ebpf
mark("import heaptrace (run's modules)")
from heaptrace.capture.runner import RunOptions
flags = RunOptions().cflags()
mark("probe settings (tracefs, sysconf)")
text = ebpf.probe_text()
mark("probe text (files read, headers inlined)")
autoload = bcc.BPF._trace_autoload
bcc.BPF._trace_autoload = lambda self: None
bcc.BPF(text="int nothing(void *ctx) { return 0; }").cleanup()
mark("clang compile of an empty program (bcc's own cost)")
b = bcc.BPF(text=text, cflags=flags)
mark("clang compile + maps created (BPF())")
bcc.BPF._trace_autoload = autoload
n = bcc.lib.bpf_num_functions(b.module)
names = [bcc.lib.bpf_function_name(b.module, i) for i in range(n)]
attach = []
for name in names:
    for prefix, kind in ((b"tracepoint__", b.TRACEPOINT), (b"raw_tracepoint__", b.RAW_TRACEPOINT)):
        if name.startswith(prefix):
            fn = b.load_func(name, kind)
            mark(f"verify+load {name.decode()}")
            INSNS[name.decode()] = verified(fn.fd)
            attach.append((prefix, name))
for prefix, name in attach:
    tp = name[len(prefix):]
    if prefix == b"tracepoint__":
        b.attach_tracepoint(tp=tp.replace(b"__", b":"), fn_name=name)
    else:
        b.attach_raw_tracepoint(tp=tp, fn_name=name)
mark("attach (all)")
stages = b["stages"]
for i, name in enumerate(ebpf.STAGES):
    prog = b.load_func(name.encode(), bcc.BPF.RAW_TRACEPOINT)
    stages[ctypes.c_int(i)] = ctypes.c_int(prog.fd)
    mark(f"verify+load stage {name}")
    INSNS[name] = verified(prog.fd)
ebpf.layout.check_against(lambda name, side: getattr(b[name], side))
b["events"].open_ring_buffer(lambda *a: None)
mark("tables checked, ring buffer opened")
b.cleanup()
mark("cleanup")
ebpf.load_probe(bcc, text, flags).cleanup()
mark("again as heaptrace run loads it: compile, programs in parallel, attach")
print(json.dumps({"phases": T, "insns": INSNS}))
'''


def phases(python: str, tree: Path = ROOT,
           env: Optional[Dict[str, str]] = None) -> Dict[str, Dict[str, List[float]]]:
    """{"phases": name -> [seconds, RSS MB after, CPU seconds], "insns": program ->
    [instructions, instructions the verifier processed]}, with the heaptrace of `tree` (the
    current directory comes first on the path of `python -c`)."""
    proc = subprocess.run([python, "-c", PHASES], capture_output=True, text=True, cwd=tree,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"phases failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def interpreter_alone(python: str) -> float:
    start = time.monotonic()
    subprocess.run([python, "-c", "pass"], check=True)
    return time.monotonic() - start


def to_main(argv: Sequence[str], cwd: str,
            env: Optional[Dict[str, str]] = None) -> Dict[str, float]:
    """Seconds from launching argv to heavy's main, and the whole command's wall time."""
    launched, start = time.time(), time.monotonic()
    proc = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, env=env)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()[-300:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("{"))
    return {"to_main_s": json.loads(line)["main_started"] - launched, "wall_s": wall}


def end_to_end(heavy: Path, heaptrace: str, tmp: str,
               base: Optional[Dict[str, str]] = None) -> Dict[str, Dict[str, float]]:
    """One repetition of every mode; with `base` (the environment that runs the checkout
    compared with), `heaptrace run` of that checkout first."""
    target = [str(heavy), "0", "0"]
    run = ["run", "-o", os.path.join(tmp, "s.db"), "--", *target]
    result = {"untraced": to_main(target, tmp)}
    if base is not None:
        python = str(Path(heaptrace).parent / "python")
        result["heaptrace run (base)"] = to_main([python, "-m", "heaptrace", *run], tmp, base)
    result["heaptrace run"] = to_main([heaptrace, *run], tmp)
    if shutil.which("perf"):
        result["perf record"] = to_main(["perf", "record", "-q", "-o",
                                         os.path.join(tmp, "perf.data"), "-g", "-e",
                                         PERF_EVENTS, "--", *target], tmp)
    return result


def median_of(runs: List[Dict[str, Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
    return {mode: {k: round(statistics.median(r[mode][k] for r in runs), 3)
                   for k in runs[0][mode]} for mode in runs[0]}


def median_phases(runs: List[Dict[str, List[float]]]) -> Dict[str, List[float]]:
    """name -> [median seconds, highest RSS MB, median CPU seconds]."""
    return {name: [round(statistics.median(r[name][0] for r in runs), 3),
                   max(r[name][1] for r in runs),
                   round(statistics.median(r[name][2] for r in runs), 3)] for name in runs[0]}


def lines(result: Dict[str, object]) -> List[str]:
    e2e = result["end_to_end"]
    assert isinstance(e2e, dict)
    out = [f"from launch to the target's main (median of {result['reps']}; target "
           f"{TARGET_S} s):", f"  {'':<16} {'to main s':>10} {'wall s':>8}"]
    for mode, v in e2e.items():
        out.append(f"  {mode:<16} {v['to_main_s']:>10.3f} {v['wall_s']:>8.3f}")
    out.append(f"phases of heaptrace run's set-up (medians: wall seconds, CPU seconds, RSS MB "
               f"after; `python -c pass` alone: {result['interpreter_alone_s']} s):")
    ph = result["phases"]
    base = result.get("phases_base")
    assert isinstance(ph, dict)
    if isinstance(base, dict):
        out.append(f"  {'':<58} {'base':>20} {'this tree':>20}")

    def cells(v: Optional[List[float]]) -> str:
        return f"{v[0]:>7.3f} {v[2]:>6.3f} {v[1]:>5}" if v else f"{'-':>20}"

    for name, v in ph.items():
        before = f"{cells(base.get(name))} " if isinstance(base, dict) else ""
        out.append(f"  {name[:58]:<58} {before}{cells(v)}")
    total = f"{sum(v[0] for v in ph.values()):>7.3f} {sum(v[2] for v in ph.values()):>6.3f}"
    if isinstance(base, dict):
        total = (f"{sum(v[0] for v in base.values()):>7.3f} "
                 f"{sum(v[2] for v in base.values()):>6.3f} {'':>5} {total}")
    out.append(f"  {'sum':<58} {total}")
    insns = result["insns"]
    assert isinstance(insns, dict)
    base_insns = result.get("insns_base")
    out.append("the verifier's work per program (instructions; instructions it processed"
               + ("; base's processed)" if isinstance(base_insns, dict) else ")"))
    for name, counts in insns.items():
        if counts:
            before = ""
            if isinstance(base_insns, dict):
                was = base_insns.get(name)
                before = f" {was[1]:>10,}" if was else f" {'-':>10}"
            out.append(f"  {name:<44} {counts[0]:>7,} {counts[1]:>10,}{before}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--heaptrace", default=str(ROOT / ".venv" / "bin" / "heaptrace"))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--compare", metavar="CHECKOUT",
                        help="also measure the heaptrace of this checkout, side by side")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("startup.py: heaptrace run needs root (eBPF)", file=sys.stderr)
        return 2
    python = str(Path(args.heaptrace).parent / "python")
    heavy = build_heavy()
    tmp = tempfile.mkdtemp(prefix="heaptrace-startup-")
    base = None
    if args.compare:  # the checkout first on the path, ahead of this venv's editable install
        base = {**os.environ, "PYTHONPATH": os.path.abspath(args.compare)}
    try:
        e2e = [end_to_end(heavy, args.heaptrace, tmp, base) for _ in range(args.reps)]
        measured, measured_base = [], []
        for _ in range(args.reps):
            if base is not None:
                measured_base.append(phases(python, Path(args.compare).resolve(), base))
            measured.append(phases(python))
        ph = [m["phases"] for m in measured]
        alone = statistics.median(interpreter_alone(python) for _ in range(args.reps))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result: Dict[str, object] = {"reps": args.reps, "end_to_end": median_of(e2e),
                                 "phases": median_phases(ph), "insns": measured[0]["insns"],
                                 "interpreter_alone_s": round(alone, 3)}
    if measured_base:
        result["phases_base"] = median_phases([m["phases"] for m in measured_base])
        result["insns_base"] = measured_base[0]["insns"]
    print(json.dumps(result, indent=2) if args.json else "\n".join(lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
