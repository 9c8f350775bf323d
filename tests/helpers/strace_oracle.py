"""The reference heaptrace's totals are tested against: the same program run under strace.

`trace(cmd)` runs

    setarch -R strace -f -qq -e trace=brk,mmap,munmap,mremap,madvise,mprotect,clone,clone3,fork,
        vfork,execve -o LOG -- CMD

(setarch outside strace: strace and the target run without address randomisation, so brk
deltas are the same run after run, while setarch's own calls are not traced), parses the
log and computes, per kind, exactly what ARCHITECTURE.md says heaptrace counts:

    calls     every call of the kind, successful or not, in every thread and process
    failed    calls that failed: -1 ERRNO; for brk (whose syscall never returns -1) a
              call asking for a new break (argument not NULL) and answered another one
    bytes     brk: growth of the break (new - previous break of that address space; the
              previous break starts at the first answer seen, a forked child inherits its
              parent's, threads and CLONE_VM children share it, exec starts afresh);
              mmap, munmap: the length argument of successful calls;
              mremap: new_len - old_len of successful calls, when positive;
              madvise: the length of successful MADV_DONTNEED, MADV_FREE, MADV_REMOVE calls;
              mprotect: the bytes of successful mprotect(prot != PROT_NONE) calls that were
              reserved (private anonymous PROT_NONE) pages of that address space
    released  brk shrinks and mremap shrinks (positive numbers); mprotect: the bytes of
              successful mprotect(PROT_NONE) calls that were committed pages
    classes   mmap: the lengths of successful calls by what they mapped (committed: private
              anonymous with access, reserved: private anonymous PROT_NONE, file, shared:
              shared anonymous); mremap: its growth by the class of the mapping it grew

Classes are followed page by page in a plain dict per address space (the reference model:
nothing clever), from mmap, munmap (at its entry, before another thread can map the pages
again), mremap (the new range takes the class most of the old one's bytes had) and mprotect;
fork copies them, threads and CLONE_VM children share them, exec starts afresh.

The per-call list (`OracleResult.calls`: kind, pid, tid, args, ret, errno, size) is there
for finer comparisons (sizes, order, which process). Like heaptrace, the trace starts at
the target's own exec (strace starts the command the same way).

    python3 -m tests.helpers.strace_oracle -- ./prog args    # JSON totals, like histogram --json
    python3 -m tests.helpers.strace_oracle --parse LOG       # the same from a saved log
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

KINDS = ("brk", "mmap", "munmap", "mremap", "madvise", "mprotect")
CLASSES = ("committed", "reserved", "file", "shared")
CLASSED = ("mmap", "mremap")
PAGE = 4096
GIVE_BACK_ADVICE = ("MADV_DONTNEED", "MADV_FREE", "MADV_REMOVE")
CLONE_CALLS = ("clone", "clone3", "fork", "vfork")
TRACE = ",".join(KINDS + CLONE_CALLS + ("execve",))
FIELDS = ("calls", "failed", "bytes", "released")

# "1234  " as strace -f -o writes it, or "[pid  1234] " as it writes to stderr.
_PID = re.compile(r"^(?:\[pid\s+(\d+)\]\s|(\d+)\s+)")
_COMPLETE = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)\s*=\s*(?P<ret>.*)$")
_UNFINISHED = re.compile(
    r"^(?P<name>\w+)\((?P<args>.*?)\s*<unfinished \.\.\.>\)?(?:\s*=\s*(?P<ret>.*))?$"
)
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<args>.*)\)\s*=\s*(?P<ret>.*)$")
_RETURN = re.compile(r"^(?P<value>0x[0-9a-fA-F]+|-?\d+|\?)(?:\s+(?P<errno>E[A-Z0-9]+))?")
_CLONE_FLAGS = re.compile(r"flags=([A-Z0-9_|]+)")


class StraceError(RuntimeError):
    """strace could not run the command (missing, not permitted) or its log is unreadable."""


@dataclass
class Syscall:
    """One syscall of the log, its two halves joined when strace split it."""

    name: str
    tid: int
    args: Tuple[str, ...]
    ret: Optional[int]  # None: strace printed "?" or the call never finished
    errno: Optional[str]  # "ENOMEM" for "= -1 ENOMEM (...)"
    entry: int  # line index where the call started
    exit: int  # line index where its result was printed
    cls: Optional[str] = None  # set while accounting: what the call mapped


@dataclass
class Call:
    """One memory call with its meaning: `size` is the signed byte delta it stands for
    (brk growth or shrink, mmap/munmap length, mremap new_len - old_len), 0 if it failed."""

    kind: str
    pid: int  # process (thread group) id
    tid: int
    args: Tuple[str, ...]
    ret: Optional[int]
    errno: Optional[str]
    failed: bool
    size: int
    cls: Optional[str] = None  # what an mmap mapped, or an mremap moved and grew


@dataclass
class OracleResult:
    """Per-kind totals ({kind: {calls, failed, bytes, released}}), every memory call in
    the order the kernel answered them, the processes seen and the command's exit code."""

    totals: Dict[str, Dict[str, int]]
    calls: List[Call]
    pids: List[int] = field(default_factory=list)
    exit_code: Optional[int] = None
    held: int = 0  # committed bytes still held when each image ended (flame --retained)

    def sizes(self, kind: str) -> List[int]:
        """Byte sizes of the successful calls of one kind that moved memory (size != 0)."""
        return [c.size for c in self.calls if c.kind == kind and not c.failed and c.size]


# ---------------------------------------------------------------- parsing


def split_args(text: str) -> Tuple[str, ...]:
    """Top-level, comma-separated arguments; commas inside (), [], {} and strings stay."""
    args, depth, start, quoted, i = [], 0, 0, False, 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    last = text[start:].strip()
    if last or args:
        args.append(last)
    return tuple(args)


def parse_int(text: str) -> int:
    """An integer argument or return value as strace prints it (NULL, hex, decimal)."""
    text = text.strip()
    if text in ("NULL", "MAP_FAILED"):
        return 0 if text == "NULL" else -1
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def parse_return(text: str) -> Tuple[Optional[int], Optional[str]]:
    """(value, errno) of the text after '= ': '-1 ENOMEM (...)', '0x7f..', '3', '?'."""
    m = _RETURN.match(text.strip())
    if not m or m.group("value") == "?":
        return None, None
    return parse_int(m.group("value")), m.group("errno")


def _split_pid(line: str) -> Tuple[int, str]:
    m = _PID.match(line)
    if not m:
        return 0, line.strip()
    return int(m.group(1) or m.group(2)), line[m.end():].strip()


class _Joiner:
    """Joins `NAME(args <unfinished ...>` with the matching `<... NAME resumed>rest) = r`."""

    def __init__(self) -> None:
        self.calls: List[Syscall] = []
        self.pending: Dict[int, Tuple[str, str, int]] = {}  # tid -> (name, args, entry)

    def feed(self, index: int, line: str) -> None:
        tid, body = _split_pid(line)
        if body.startswith(("---", "+++", "strace:", "[ ")) or not body:
            return
        for pattern, handler in (
            (_RESUMED, self._resumed),
            (_UNFINISHED, self._unfinished),
            (_COMPLETE, self._complete),
        ):
            m = pattern.match(body)
            if m:
                handler(index, tid, m)
                return

    def _complete(self, index: int, tid: int, m: re.Match) -> None:
        self._add(m.group("name"), tid, m.group("args"), m.group("ret"), index, index)

    def _unfinished(self, index: int, tid: int, m: re.Match) -> None:
        if m.group("ret") is not None:  # killed inside the call: "<unfinished ...>) = ?"
            self._add(m.group("name"), tid, m.group("args"), m.group("ret"), index, index)
        else:
            self.pending[tid] = (m.group("name"), m.group("args"), index)

    def _resumed(self, index: int, tid: int, m: re.Match) -> None:
        name, args, entry = self.pending.pop(tid, (m.group("name"), "", index))
        rest = m.group("args").replace(" <unfinished ...>", "")
        self._add(name, tid, args + rest, m.group("ret"), entry, index)

    def _add(self, name: str, tid: int, args: str, ret: Optional[str], entry: int,
             exit_: int) -> None:
        value, errno = parse_return(ret) if ret is not None else (None, None)
        self.calls.append(Syscall(name, tid, split_args(args), value, errno, entry, exit_))

    def finish(self) -> List[Syscall]:
        # Calls still unfinished when the log ends (process killed mid-call): result unknown.
        for tid, (name, args, entry) in self.pending.items():
            self._add(name, tid, args, None, entry, entry)
        self.pending.clear()
        return self.calls


def parse_log(text: str) -> List[Syscall]:
    """Every syscall of an strace log (any traced names), halves joined, in log order of
    their first line."""
    joiner = _Joiner()
    for index, line in enumerate(text.splitlines()):
        joiner.feed(index, line)
    return sorted(joiner.finish(), key=lambda c: c.entry)


# ---------------------------------------------------------------- accounting


def _pages(addr: int, length: int) -> range:
    return range(addr // PAGE, (addr + length + PAGE - 1) // PAGE)


class _Space:
    """One address space: its break, the class of each page mapped by a traced call, and the
    pages *held*: committed by this image's own traced calls (brk growth, committed mmaps,
    mremap growth of committed or unknown mappings, mprotect commits) and not given back
    (munmap, brk shrink, madvise DONTNEED/FREE/REMOVE, mprotect PROT_NONE). A forked child
    inherits its parent's classes but holds nothing it did not take itself."""

    def __init__(self, brk: Optional[int] = None, pages: Optional[Dict[int, str]] = None) -> None:
        self.brk = brk
        self.pages: Dict[int, str] = dict(pages or {})
        self.held: set = set()

    def take(self, addr: int, length: int, remove: bool = True) -> Dict[str, int]:
        """Bytes of [addr, addr + length) by class (page-rounded); removed unless told not
        (held pages go either way: a kept range has given its pages away)."""
        counts: Dict[str, int] = {}
        for page in _pages(addr, length):
            self.held.discard(page)
            cls = self.pages.pop(page, None) if remove else self.pages.get(page)
            if cls is not None:
                counts[cls] = counts.get(cls, 0) + PAGE
        return counts

    def put(self, addr: int, length: int, cls: Optional[str], held: bool = False) -> None:
        for page in _pages(addr, length):
            if cls is None:
                self.pages.pop(page, None)
            else:
                self.pages[page] = cls
            if held:
                self.held.add(page)
            else:
                self.held.discard(page)


def _order(call: Syscall) -> Tuple[int, int]:
    # A new task exists from the start of its clone: its state is taken there (the parent
    # may move the break again before strace prints the clone's result). munmap's pages are
    # gone before another thread can map them again. Everything else takes effect when the
    # kernel answers.
    early = call.name in CLONE_CALLS or call.name == "munmap"
    return (call.entry if early else call.exit, call.entry)


def _clone_flags(call: Syscall) -> List[str]:
    if call.name == "fork":
        return []
    if call.name == "vfork":
        return ["CLONE_VM", "CLONE_VFORK"]
    m = _CLONE_FLAGS.search(", ".join(call.args))
    return m.group(1).split("|") if m else []


class _Accountant:
    """Replays the calls in the kernel's order and derives each memory call's meaning."""

    def __init__(self) -> None:
        self.space: Dict[int, _Space] = {}  # tid -> its address space
        self.tgid: Dict[int, int] = {}  # tid -> process id
        self.calls: List[Call] = []
        self.ended_held = 0  # bytes held by images that exec'ed

    def held(self) -> int:
        """Bytes held by every image when it ended (exec, or the end of the trace)."""
        spaces = {id(space): space for space in self.space.values()}
        return self.ended_held + sum(len(s.held) * PAGE for s in spaces.values())

    def _task(self, tid: int) -> _Space:
        if tid not in self.space:
            self.space[tid], self.tgid[tid] = _Space(), tid
        return self.space[tid]

    def replay(self, syscall: Syscall) -> None:
        space = self._task(syscall.tid)
        if syscall.name in CLONE_CALLS:
            self._clone(syscall, space)
        elif syscall.name == "execve":
            if syscall.ret == 0:
                if not any(other is space for tid, other in self.space.items()
                           if tid != syscall.tid):
                    self.ended_held += len(space.held) * PAGE
                self.space[syscall.tid] = _Space()
        elif syscall.name in KINDS:
            self.calls.append(self._memory(syscall, space))

    def _clone(self, call: Syscall, space: _Space) -> None:
        if call.ret is None or call.ret <= 0 or call.errno:
            return
        flags = _clone_flags(call)
        child = call.ret
        self.space[child] = space if "CLONE_VM" in flags else _Space(space.brk, space.pages)
        self.tgid[child] = self.tgid[call.tid] if "CLONE_THREAD" in flags else child

    def _memory(self, call: Syscall, space: _Space) -> Call:
        call.cls = None
        failed, size = _MEANING[call.name](call, space)
        known = call.ret is not None and not failed
        return Call(call.name, self.tgid[call.tid], call.tid, call.args, call.ret,
                    call.errno, failed, size if known else 0, call.cls if known else None)


def _brk(call: Syscall, space: _Space) -> Tuple[bool, int]:
    if call.ret is None:
        return False, 0
    asked = parse_int(call.args[0]) if call.args else 0
    previous, space.brk = space.brk, call.ret
    delta = 0 if previous is None else call.ret - previous
    if delta > 0:
        space.held.update(_pages(call.ret - delta, delta))
    elif delta < 0:
        space.held.difference_update(_pages(call.ret, -delta))
    return asked != 0 and call.ret != asked, delta


def _failed(call: Syscall) -> bool:
    # An unknown result ("?": killed inside the call) is neither success nor failure.
    return call.ret is not None and (call.errno is not None or call.ret == -1)


def _names(text: str) -> List[str]:
    return [name.strip() for name in text.split("|")]


def mmap_class(prot: str, flags: str) -> str:
    """committed, reserved, file or shared, from strace's symbolic prot and flags."""
    names = _names(flags)
    if "MAP_ANONYMOUS" not in names:
        return "file"
    if "MAP_PRIVATE" not in names:
        return "shared"
    access = {"PROT_READ", "PROT_WRITE", "PROT_EXEC"} & set(_names(prot))
    return "committed" if access else "reserved"


def _mmap(call: Syscall, space: _Space) -> Tuple[bool, int]:
    failed = _failed(call)
    if not failed and call.ret is not None:
        call.cls = mmap_class(call.args[2], call.args[3])
        space.put(call.ret, parse_int(call.args[1]), call.cls, call.cls == "committed")
    return failed, parse_int(call.args[1])


def _munmap(call: Syscall, space: _Space) -> Tuple[bool, int]:
    failed = _failed(call)
    if not failed and call.ret is not None:
        space.take(parse_int(call.args[0]), parse_int(call.args[1]))
    return failed, parse_int(call.args[1])


def _mremap(call: Syscall, space: _Space) -> Tuple[bool, int]:
    failed = _failed(call)
    old, old_len, new_len = (parse_int(a) for a in call.args[:3])
    if not failed and call.ret is not None:
        keep = "MREMAP_DONTUNMAP" in _names(call.args[3])
        moved = [page - old // PAGE for page in _pages(old, min(old_len, new_len))
                 if page in space.held]
        counts = space.take(old, old_len, remove=not keep)
        best = max(CLASSES, key=lambda c: counts.get(c, 0))  # the first of the most bytes
        call.cls = best if counts.get(best) else None
        space.put(call.ret, new_len, call.cls)
        space.held.update(call.ret // PAGE + i for i in moved)
        if new_len > old_len and call.cls in ("committed", None):
            space.held.update(_pages(call.ret + old_len, new_len - old_len))
    return failed, new_len - old_len


def _mprotect(call: Syscall, space: _Space) -> Tuple[bool, int]:
    """Bytes committed (reserved pages made accessible), or minus the committed bytes made
    PROT_NONE again."""
    failed = _failed(call)
    if failed or call.ret is None:
        return failed, 0
    addr, length = parse_int(call.args[0]), parse_int(call.args[1])
    access = bool({"PROT_READ", "PROT_WRITE", "PROT_EXEC"} & set(_names(call.args[2])))
    new, counted = ("committed", "reserved") if access else ("reserved", "committed")
    changed = 0
    for page in range(addr // PAGE, (addr + length + PAGE - 1) // PAGE):
        cls = space.pages.get(page)
        if cls in ("committed", "reserved"):
            changed += PAGE if cls == counted else 0
            space.pages[page] = new
            if not access:
                space.held.discard(page)
            elif cls == "reserved":
                space.held.add(page)
    call.cls = (new if changed else None)
    return False, changed if access else -changed


def _madvise(call: Syscall, space: _Space) -> Tuple[bool, int]:
    """Only advice that hands pages back counts bytes (the length)."""
    advice = call.args[2].strip() if len(call.args) > 2 else ""
    if advice not in GIVE_BACK_ADVICE:
        return _failed(call), 0
    if not _failed(call) and call.ret is not None:
        space.held.difference_update(_pages(parse_int(call.args[0]), parse_int(call.args[1])))
    return _failed(call), parse_int(call.args[1])


_MEANING = {"brk": _brk, "mmap": _mmap, "munmap": _munmap, "mremap": _mremap,
            "madvise": _madvise, "mprotect": _mprotect}


def totals(calls: Iterable[Call]) -> Dict[str, Dict[str, int]]:
    """{kind: {calls, failed, bytes, released}} over memory calls, and for mmap and mremap
    {"classes": {class: bytes}} too."""
    out: Dict[str, Dict] = {kind: dict.fromkeys(FIELDS, 0) for kind in KINDS}
    for kind in CLASSED:
        out[kind]["classes"] = dict.fromkeys(CLASSES, 0)
    for call in calls:
        t = out[call.kind]
        t["calls"] += 1
        t["failed"] += call.failed
        if call.kind in ("mmap", "munmap", "madvise") or call.size > 0:
            t["bytes"] += call.size
        else:
            t["released"] += -call.size
        if call.kind in CLASSED and call.cls is not None and call.size > 0:
            t["classes"][call.cls] += call.size
    return out


def account(syscalls: Sequence[Syscall]) -> OracleResult:
    """Per-kind totals and per-call meanings of parsed syscalls (see the module doc)."""
    accountant = _Accountant()
    for syscall in sorted(syscalls, key=_order):
        accountant.replay(syscall)
    pids = sorted(set(accountant.tgid.values()))
    return OracleResult(totals(accountant.calls), accountant.calls, pids,
                        held=accountant.held())


def parse(text: str) -> OracleResult:
    """Totals and calls of an strace log's text."""
    return account(parse_log(text))


# ---------------------------------------------------------------- running


def strace_command(cmd: Sequence[str], log: str) -> List[str]:
    """The command line that records `cmd`'s calls into `log`."""
    return ["setarch", "-R", "strace", "-f", "-qq", "-e", f"trace={TRACE}", "-o", log,
            "--", *cmd]


def trace(
    cmd: Sequence[str],
    log: Optional[str] = None,
    cwd: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    timeout: float = 300,
) -> OracleResult:
    """Run `cmd` under strace (its output discarded) and return what it did. The log is
    kept at `log` when given, otherwise written to a temporary file and removed."""
    if log is not None:
        return _trace_into(cmd, log, cwd, env, timeout)
    with tempfile.TemporaryDirectory(prefix="strace-oracle-") as tmp:
        return _trace_into(cmd, os.path.join(tmp, "strace.log"), cwd, env, timeout)


def _trace_into(cmd: Sequence[str], log: str, cwd: Optional[str], env: Optional[Dict[str, str]],
                timeout: float) -> OracleResult:
    try:
        proc = subprocess.run(strace_command(cmd, log), cwd=cwd, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    except FileNotFoundError as e:
        raise StraceError(f"cannot run {e.filename}: install strace and util-linux") from e
    if not os.path.exists(log):
        raise StraceError(f"strace wrote no log: {proc.stderr.strip()}")
    result = parse(Path(log).read_text(errors="replace"))
    result.exit_code = proc.returncode
    return result


def to_json(result: OracleResult, with_calls: bool = False) -> dict:
    """A document shaped like `heaptrace histogram --json`'s events (without buckets)."""
    doc: dict = {"events": result.totals, "pids": result.pids, "exit_code": result.exit_code}
    if with_calls:
        doc["calls"] = [vars(c) for c in result.calls]
    return doc


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parse", metavar="LOG", help="read a saved strace log instead")
    parser.add_argument("--log", help="keep the strace log here")
    parser.add_argument("--calls", action="store_true", help="list every memory call too")
    parser.add_argument("cmd", nargs="*", help="the command to trace (after --)")
    args = parser.parse_args(argv)
    if args.parse:
        result = parse(Path(args.parse).read_text(errors="replace"))
    elif args.cmd:
        result = trace(args.cmd, log=args.log)
    else:
        parser.error("give a command after -- or --parse LOG")
    json.dump(to_json(result, args.calls), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
