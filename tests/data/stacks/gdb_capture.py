"""Runs inside gdb (gdb -batch -x gdb_capture.py --args PROG): stops at every brk/mmap
syscall entry and saves what heaptrace's BPF program captures there (ip, sp, bp, the stack
from sp up to 16 KiB or the end of its mapping, /proc/PID/maps) plus gdb's own backtrace,
the reference. Settings come from the environment: HT_OUT (directory), HT_FOLLOW (parent or
child), HT_MAX (most stops to save), HT_STACK (bytes of stack),
HT_SKIP_LOADER (1: skip stops in the dynamic loader, identical for every program)."""

import gzip
import hashlib
import json
import os

import gdb

OUT = os.environ["HT_OUT"]
FOLLOW = os.environ.get("HT_FOLLOW", "parent")
MAX_STOPS = int(os.environ.get("HT_MAX", "60"))
STACK_BYTES = int(os.environ.get("HT_STACK", "16384"))
SKIP_LOADER = os.environ.get("HT_SKIP_LOADER") == "1"
SYSCALLS = {9: "mmap", 12: "brk"}
ENOSYS = -38


def stack_end(maps_text, sp):
    for line in maps_text.splitlines():
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        if start <= sp < end:
            return end
    return sp


def backtrace():
    frames, frame = [], gdb.newest_frame()
    while frame is not None and len(frames) < 128:
        # Inlined calls share their caller's pc; tail-call frames are gdb's reconstruction from
        # DWARF call-site data, absent from the machine stack (and from any unwinder's).
        if frame.type() not in (gdb.INLINE_FRAME, gdb.TAILCALL_FRAME):
            frames.append({"pc": frame.pc(), "name": frame.name()})
        try:
            frame = frame.older()
        except gdb.error:
            break
    return frames


def save_stop(index, syscall):
    inferior = gdb.selected_inferior()
    pid, tid = inferior.pid, gdb.selected_thread().ptid[1]
    regs = {r: int(gdb.parse_and_eval(f"(unsigned long)${r}")) for r in ("rip", "rsp", "rbp")}
    with open(f"/proc/{pid}/maps") as fh:
        maps_text = fh.read()
    size = min(STACK_BYTES, stack_end(maps_text, regs["rsp"]) - regs["rsp"])
    stack = bytes(inferior.read_memory(regs["rsp"], size))
    maps_name = "maps-" + hashlib.sha1(maps_text.encode()).hexdigest()[:10] + ".txt"
    with open(os.path.join(OUT, maps_name), "w") as fh:
        fh.write(maps_text)
    stack_name = f"{FOLLOW}-{index:03d}.stack.gz"
    with open(os.path.join(OUT, stack_name), "wb") as fh:
        fh.write(gzip.compress(stack, mtime=0))
    return {"syscall": syscall, "pid": pid, "tid": tid, "ip": regs["rip"], "sp": regs["rsp"],
            "bp": regs["rbp"], "stack": stack_name, "maps": maps_name, "gdb_bt": backtrace()}


def in_loader():
    name = gdb.solib_name(int(gdb.parse_and_eval("(unsigned long)$rip")))
    return bool(name) and "ld-linux" in name


def syscall_entry():
    """At a syscall-entry stop the kernel has set rax to -ENOSYS; at the return, the result."""
    try:
        return int(gdb.parse_and_eval("(long)$rax")) == ENOSYS
    except gdb.error:
        return False


def main():
    for cmd in ("set pagination off", "set confirm off", f"set follow-fork-mode {FOLLOW}",
                "set detach-on-fork on", "set backtrace past-main on",
                "set backtrace past-entry off", "set print thread-events off",
                "catch syscall brk mmap"):
        gdb.execute(cmd)
    stops = []
    gdb.execute("run", to_string=True)
    first_pid = gdb.selected_inferior().pid
    while len(stops) < MAX_STOPS and gdb.selected_inferior().pid:
        # Following the child, its parent's stops before the fork are the parent run's.
        wanted = FOLLOW == "parent" or gdb.selected_inferior().pid != first_pid
        if wanted and syscall_entry() and not (SKIP_LOADER and in_loader()):
            nr = int(gdb.parse_and_eval("$orig_rax"))
            stops.append(save_stop(len(stops), SYSCALLS[nr]))
        try:
            gdb.execute("continue", to_string=True)
        except gdb.error:
            break  # the program exited
    with open(os.path.join(OUT, f"stops-{FOLLOW}.json"), "w") as fh:
        json.dump(stops, fh, indent=1)


main()
