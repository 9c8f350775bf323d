"""Runs inside gdb-multiarch, attached to a program under `qemu-aarch64-static -g PORT`
(gdb -batch -x gdb_capture.py): stops right after every `svc` of libc's brk and mmap (the pc
the kernel reports at the syscall) and saves what heaptrace's BPF program copies there (pc,
sp, x29, x30, the stack from sp up to 16 KiB or the end of the stack) plus gdb's own
backtrace, the reference. qemu's gdbstub has neither `catch syscall` nor /proc, so the
breakpoints sit on the instruction after each `svc`, and the load address of every object is
saved for capture.py to rebuild the executable mappings. Settings come from the environment:
HT_OUT (directory), HT_PORT, HT_BIN (the program), HT_MAX (most stops), HT_STACK (bytes)."""

import gzip
import json
import os
import re

import gdb

OUT = os.environ["HT_OUT"]
PORT = os.environ["HT_PORT"]
BIN = os.environ["HT_BIN"]
MAX_STOPS = int(os.environ.get("HT_MAX", "40"))
STACK_BYTES = int(os.environ.get("HT_STACK", "16384"))
PAGE = 4096
WRAPPERS = {"brk": "brk", "mmap": "mmap"}  # libc function -> syscall


def reg(name):
    return int(gdb.parse_and_eval(f"(unsigned long)${name}"))


def after_svc(function):
    """Addresses right after each `svc` of a function (where the kernel's pc points)."""
    text = gdb.execute(f"disassemble {function}", to_string=True)
    lines = [line for line in text.splitlines() if re.search(r"0x[0-9a-f]+", line)]
    found = []
    for line, nxt in zip(lines, lines[1:]):
        if re.search(r"\bsvc\b", line):
            found.append(int(re.search(r"0x[0-9a-f]+", nxt).group(0), 16))
    return found


def read_stack(sp):
    """The stack from sp up to STACK_BYTES, or to the last readable page."""
    inferior = gdb.selected_inferior()
    try:
        return bytes(inferior.read_memory(sp, STACK_BYTES))
    except gdb.MemoryError:
        pass
    end = (sp // PAGE + 1) * PAGE
    while end - sp < STACK_BYTES:
        try:
            inferior.read_memory(end, 8)
        except gdb.MemoryError:
            break
        end += PAGE
    return bytes(inferior.read_memory(sp, min(end - sp, STACK_BYTES)))


def backtrace():
    frames, frame = [], gdb.newest_frame()
    while frame is not None and len(frames) < 128:
        if frame.type() not in (gdb.INLINE_FRAME, gdb.TAILCALL_FRAME):
            frames.append({"pc": frame.pc(), "name": frame.name()})
        try:
            frame = frame.older()
        except gdb.error:
            break
    return frames


def objects():
    """[path, runtime address of .text] of every shared object, and of the program's main."""
    found = []
    for line in gdb.execute("info sharedlibrary", to_string=True).splitlines():
        m = re.match(r"\s*(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+\S+(?:\s+\(\*\))?\s+(/\S+)", line)
        if m:
            found.append([m.group(2), int(m.group(1), 16), ".text"])
    found.append([BIN, reg_addr("main"), "main"])
    return found


def reg_addr(symbol):
    return int(gdb.parse_and_eval(f"(unsigned long)&{symbol}"))


def save_stop(index, syscall):
    regs = {r: reg(r) for r in ("pc", "sp", "x29", "x30")}
    stack = bytes(read_stack(regs["sp"]))
    name = f"parent-{index:03d}.stack.gz"
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(gzip.compress(stack, mtime=0))
    return {"syscall": syscall, "tid": gdb.selected_thread().ptid[1], "ip": regs["pc"],
            "sp": regs["sp"], "fp": regs["x29"], "lr": regs["x30"], "stack": name,
            "objects": objects(), "gdb_bt": backtrace()}


def main():
    for cmd in ("set pagination off", "set confirm off", "set sysroot /usr/aarch64-linux-gnu",
                "set backtrace past-main on", "set backtrace past-entry off",
                "set print thread-events off", f"file {BIN}", f"target remote :{PORT}",
                "break main", "continue", "delete"):
        gdb.execute(cmd, to_string=True)
    stops_at = {}
    for function, syscall in WRAPPERS.items():
        for addr in after_svc(function):
            stops_at[addr] = syscall
            gdb.execute(f"break *{addr:#x}", to_string=True)
    stops = []
    while len(stops) < MAX_STOPS:
        try:
            gdb.execute("continue", to_string=True)
        except gdb.error:
            break  # the program exited
        if not gdb.selected_inferior().pid:
            break
        syscall = stops_at.get(reg("pc"))
        if syscall:
            stops.append(save_stop(len(stops), syscall))
    with open(os.path.join(OUT, "raw-parent.json"), "w") as fh:
        json.dump(stops, fh, indent=1)
    gdb.execute("kill", to_string=True)


main()
