"""Rebuilds the aarch64 stack fixtures under emulation: cross-compiles src/chain.c into bin/,
copies the aarch64 libc and loader it runs with into bin/lib/, runs each program under
`qemu-aarch64-static -g PORT` and drives gdb-multiarch (gdb_capture.py) through it.

    .venv/bin/python tests/data/stacks-aarch64/capture.py [OUTDIR]

Needs qemu-user-static, gdb-multiarch, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (the
tests need none of them: only the files written here). Each program gets OUTDIR/NAME/ with
stops-parent.json (registers pc, sp, x29 as "fp", x30 as "lr", gdb's backtrace), *.stack.gz
and maps-*.txt. qemu's gdbstub has no /proc, so the executable mappings are rebuilt from
each object's load address and its PT_LOAD segments, in /proc/PID/maps form with the bin/
directory written as @BIN@. Only stops gdb unwinds whole (down to _start or a thread's
clone) are kept: they are the reference."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

from elftools.elf.elffile import ELFFile

HERE = os.path.dirname(os.path.abspath(__file__))
SYSROOT = "/usr/aarch64-linux-gnu"
LIBS = ("libc.so.6", "ld-linux-aarch64.so.1")
PAGE = 4096
PROGRAMS = {
    "chain": ["-O2", "-fomit-frame-pointer", "-pthread"],
    # No CFI for the program's own code: its frames need the frame-pointer step.
    "chain-fp": ["-O2", "-fno-omit-frame-pointer", "-fno-asynchronous-unwind-tables",
                 "-fno-unwind-tables", "-pthread"],
}


def build(bindir: str) -> None:
    os.makedirs(os.path.join(bindir, "lib"), exist_ok=True)
    for name, flags in PROGRAMS.items():
        subprocess.run(["aarch64-linux-gnu-gcc", *flags, "-o", os.path.join(bindir, name),
                        os.path.join(HERE, "src", "chain.c")], check=True)
    for lib in LIBS:
        shutil.copyfile(os.path.realpath(f"{SYSROOT}/lib/{lib}"), os.path.join(bindir, "lib", lib))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_under_gdb(bindir: str, target: str, name: str) -> int:
    """Runs one program under qemu's gdbstub and gdb; returns the guest's pid."""
    port, binary = free_port(), os.path.join(bindir, name)
    qemu = subprocess.Popen(["qemu-aarch64-static", "-g", str(port), "-L", SYSROOT, binary],
                            stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # the gdbstub listens before the guest runs
    env = dict(os.environ, HT_OUT=target, HT_PORT=str(port), HT_BIN=binary)
    subprocess.run(["gdb-multiarch", "-batch", "-nx", "-x", os.path.join(HERE, "gdb_capture.py")],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    qemu.wait(timeout=30)
    return qemu.pid


def maps_text(objects, bindir: str) -> str:
    """/proc/PID/maps lines of the executable PT_LOAD segments of every object."""
    lines = []
    for path, runtime, anchor in objects:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            bias = runtime - link_address(elf, anchor)
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD" or not seg["p_flags"] & 1:
                    continue
                start = (bias + seg["p_vaddr"]) // PAGE * PAGE
                end = -(-(bias + seg["p_vaddr"] + seg["p_memsz"]) // PAGE) * PAGE
                offset = seg["p_offset"] // PAGE * PAGE
                where = fixture_path(path, bindir)
                lines.append(f"{start:x}-{end:x} r-xp {offset:08x} 00:00 0 {where}")
    return "\n".join(sorted(lines)) + "\n"


def link_address(elf, anchor: str) -> int:
    if anchor.startswith("."):
        return elf.get_section_by_name(anchor)["sh_addr"]
    symbol = elf.get_section_by_name(".symtab").get_symbol_by_name(anchor)[0]
    return symbol["st_value"]


def fixture_path(path: str, bindir: str) -> str:
    if path.startswith(f"{SYSROOT}/lib/"):
        return "@BIN@/lib/" + os.path.basename(path)
    return path.replace(bindir, "@BIN@")


def whole(stop) -> bool:
    """gdb reached the outermost frame: _start, or the thread's clone (thread_start)."""
    frames = stop["gdb_bt"]
    return frames[-1]["name"] == "_start" or "thread_main" in [f["name"] for f in frames]


def capture(bindir: str, outdir: str, name: str) -> None:
    target = os.path.join(outdir, name)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    pid = run_under_gdb(bindir, target, name)
    raw_path = os.path.join(target, "raw-parent.json")
    with open(raw_path) as fh:
        raw = json.load(fh)
    os.unlink(raw_path)
    stops = []
    for stop in raw:
        if not whole(stop):
            os.unlink(os.path.join(target, stop["stack"]))
            continue
        text = maps_text(stop.pop("objects"), bindir)
        stop["maps"] = "maps-" + hashlib.sha1(text.encode()).hexdigest()[:10] + ".txt"
        with open(os.path.join(target, stop["maps"]), "w") as fh:
            fh.write(text)
        stops.append({"pid": pid, **stop})
    with open(os.path.join(target, "stops-parent.json"), "w") as fh:
        json.dump(stops, fh, indent=1)


def main(outdir: str = HERE) -> None:
    bindir = os.path.join(outdir, "bin")
    build(bindir)
    for name in PROGRAMS:
        capture(bindir, outdir, name)


if __name__ == "__main__":
    main(*sys.argv[1:])
