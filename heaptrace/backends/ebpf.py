"""The eBPF backend: the only module that imports bcc.

Loads probes/heaptrace.bpf.c, follows the traced process tree through its maps, hands the
per-event stream to a callback and reads the exact totals back from the per-CPU maps.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import struct
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import (
    TYPE_CHECKING,
    Callable,
    Deque,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

from heaptrace.backends import probe_layout as layout
from heaptrace.backends.backlog import Backlog
from heaptrace.backends.probe_layout import (
    CLASS_SLOTS,
    COUNTERS,
    MAX_RANGES,
    NBUCKETS,
    REC_BATCH,
    REC_COPY,
    REC_EXEC,
    REC_EXIT,
    REC_FORK,
    REC_MAPFILE,
    REC_PYCODE,
    REC_PYSTACK,
    REC_RSS,
    REC_STACK,
    RSS_CHANGE,
    RSS_END,
    RSS_START,
    STAGES,
    STATE_ACTIVE,
    STATE_ARMED,
)
from heaptrace.backends.probefiles import probe_dir, probe_path
from heaptrace.backends.records import (
    PY_STACK,
    STACK_WALKED,
    Call,
    MappedFile,
    ProcessChange,
    PyCode,
    PyStack,
    Record,
    ResidentSum,
    RssSample,
    StackCopy,
    WalkedStack,
)
from heaptrace.backends.release import release_compiler_memory
from heaptrace.errors import BackendUnavailable, HeaptraceError, PrivilegeError, UsageError
from heaptrace.events import CLASSED_KINDS, KIND_INDEX, KINDS, KindTotals, MemClass, Rss

if TYPE_CHECKING:
    from heaptrace.stacks.unwind.bpf_rules import StepRule

CAP_PERFMON, CAP_BPF, CAP_SYS_ADMIN = 38, 39, 21
BATCH_HEADER = layout.BATCH_HEADER.struct
CALL_REC = layout.CALL_REC.struct
STACK_REC = layout.STACK_REC.struct
COPY_HEADER = layout.COPY_HEADER.struct
PROC_REC = layout.PROC_REC.struct
MAPFILE_REC = layout.MAPFILE_REC.struct
PY_STACK_REC = layout.PY_STACK_REC.struct
PY_CODE_HEADER = layout.PY_CODE_HEADER.struct
LOOK_AHEAD_S = 0.02  # while records are handled, fetch the new ones this often
LOOK_AHEAD = (REC_EXEC, REC_MAPFILE)  # the records look_ahead is shown
DELIVER_S = 0.2  # poll() hands records on this long at most, then the run's loop comes round
# A sum of resident growth taken from the probe's map into the backlog: this header, then the
# map's key and value (a type the probe's records never have).
REC_RESIDENT_SUM = 0x7E51DE47
RESIDENT_SUM_HEADER = struct.pack("<I", REC_RESIDENT_SUM)
RSS_REC = layout.RSS_REC.struct
RESIDENT_KEY = layout.RESIDENT_KEY.struct
RESIDENT_VAL = layout.RESIDENT_VAL.struct
RSS_SPACE = layout.RSS_SPACE.struct
RSS_TOTAL = layout.RSS_TOTAL.struct
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# The kernel's RSS counters (kmem:rss_stat's member) by their names in its print format, and
# the values Linux 5.5 to 6.18 give them.
MM_NAMES = {"MM_FILEPAGES": "file", "MM_ANONPAGES": "anon", "MM_SWAPENTS": "swap",
            "MM_SHMEMPAGES": "shmem"}
DEFAULT_MEMBERS = {0: "file", 1: "anon", 2: "swap", 3: "shmem"}
RSS_WHY = {RSS_START: "start", RSS_CHANGE: "change", RSS_END: "end"}


def has_bpf_privileges() -> bool:
    """Root, or CAP_BPF with CAP_PERFMON, or CAP_SYS_ADMIN (older kernels) in the effective set."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("CapEff:"))
    except (OSError, StopIteration):
        return False
    caps = int(line.split()[1], 16)
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    return has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))


def check_privileges() -> None:
    if not has_bpf_privileges():
        raise PrivilegeError(
            "loading eBPF programs needs root or CAP_BPF+CAP_PERFMON",
            "re-run with sudo: sudo heaptrace run -- CMD",
        )


def preflight() -> None:
    """Fail early, before anything is written, when tracing cannot work here."""
    check_privileges()
    import_bcc()


def import_bcc():  # noqa: ANN201 - the bcc module has no stable type to name
    try:
        import bcc
    except ImportError:
        raise BackendUnavailable(
            "the bcc Python module is not importable",
            "run `heaptrace doctor` to see how to install it",
        ) from None
    return bcc


def _possible_cpus() -> int:
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            last = f.read().strip().split(",")[-1].split("-")[-1]
        return int(last) + 1
    except (OSError, ValueError):
        return os.cpu_count() or 256


def tracefs_format(event: str) -> Optional[str]:
    """The format file of a tracepoint ("sched/sched_process_exit"), None if there is none."""
    for root in TRACEFS:
        try:
            with open(f"{root}/events/{event}/format") as f:
                return f.read()
        except OSError:
            continue
    return None


def _has_group_dead() -> bool:
    """Linux 6.16 and later say in sched_process_exit whether the whole process ended."""
    return "group_dead" in (tracefs_format("sched/sched_process_exit") or "")


def rss_members(format_text: Optional[str]) -> Dict[int, str]:
    """kmem:rss_stat's member values by class ("anon", "file", "shmem", "swap"), read from its
    print format (`{ 1, "MM_ANONPAGES" }`); Linux 5.5 to 6.18's when it does not say."""
    found = {int(v): MM_NAMES[n] for v, n in
             re.findall(r'\{\s*(\d+),\s*"(MM_\w+)"\s*\}', format_text or "") if n in MM_NAMES}
    if sorted(found.values()) != sorted(MM_NAMES.values()) or max(found) >= layout.NMEMBERS:
        return dict(DEFAULT_MEMBERS)
    return found


def _rss_defines(members: Mapping[int, str]) -> List[str]:
    names = {v: k for k, v in MM_NAMES.items()}
    has_fault_tp = platform.machine() == "x86_64" and tracefs_format(
        "exceptions/page_fault_user") is not None
    return [f"-D{names[name]}={value}" for value, name in sorted(members.items())] + [
        f"-DHAVE_FAULT_TP={int(has_fault_tp)}"]


def build_cflags(
    kinds: Sequence[str], stack_bytes: int, fp_stacks: bool, ringbuf_mib: int
) -> List[str]:
    """Compiler defines that configure heaptrace.bpf.c (never text substitution)."""
    if stack_bytes < 0 or stack_bytes & (stack_bytes - 1):
        raise UsageError(f"--stack-bytes must be a power of two, not {stack_bytes}")
    if ringbuf_mib <= 0 or ringbuf_mib & (ringbuf_mib - 1):
        raise UsageError(f"--buffer-mib must be a power of two, not {ringbuf_mib}")
    # The ring buffer is sized in the kernel's pages: 4 KiB on x86_64, 4, 16 or 64 KiB on arm64.
    ringbuf_pages = max(ringbuf_mib * 2**20 // os.sysconf("SC_PAGE_SIZE"), 1)
    mask = sum(1 << KIND_INDEX[k] for k in kinds)
    return [
        f"-DKIND_MASK={mask}",
        f"-DSTACK_BYTES={stack_bytes}",
        f"-DUSER_STACK_MAP={int(fp_stacks)}",
        f"-DRINGBUF_PAGES={ringbuf_pages}",
        f"-DPAGE_BYTES={os.sysconf('SC_PAGE_SIZE')}",
        f"-DNCPUS={_possible_cpus()}",
        f"-DHAVE_GROUP_DEAD={int(_has_group_dead())}",
        *_rss_defines(rss_members(tracefs_format("kmem/rss_stat"))),
        f"-I{probe_dir()}",  # heaptrace.h
        # No debug information: bcc asks clang for DWARF (for BTF line info) that nothing here
        # reads; without it clang does less work (bench/startup.py measures the compile)
        "-g0",
        "-Wno-unused-function",
        "-Werror=implicit-function-declaration",
    ]


def _call(fields: tuple) -> Call:
    kind, tid, ts, pid, stack_id, a0, a1, a2, a3, a4, a5, ret, size, ip, ref, rest, cls, _, py = \
        fields
    return Call(KINDS[kind], ts, pid, tid, (a0, a1, a2, a3, a4, a5), ret, size, ip, ref, rest,
                stack_id, cls, py)


def _py_stack(data: bytes) -> PyStack:
    _, pid, n, flags, h, *words = PY_STACK_REC.unpack_from(data)
    n = min(n, layout.MAX_PY_FRAMES)
    most = layout.MAX_PY_FRAMES
    codes, instrs, scopes = words[:n], words[most:most + n], words[2 * most:2 * most + n]
    frames = tuple((code & ~layout.PY_ENTRY, instr, bool(code & layout.PY_ENTRY), scope)
                   for code, instr, scope in zip(codes, instrs, scopes))
    return PyStack(PY_STACK | (h >> 3), pid, frames, bool(flags & layout.PY_CUT))


def _py_code(data: bytes) -> PyCode:
    _, pid, ts, code, scope, gen, lines_len, head, name, qualname, filename = \
        PY_CODE_HEADER.unpack_from(data)
    lines = data[PY_CODE_HEADER.size: PY_CODE_HEADER.size + lines_len]
    return PyCode(pid, ts, code, scope, gen, head, name, qualname, filename, lines)


LOCAL_INCLUDE = re.compile(r'^#include "([\w.-]+)"[^\n]*$', re.M)


def probe_text(name: str = "heaptrace.bpf.c") -> str:
    """A probe file with the probe's own headers (`#include "x.h"`) inlined, each once: bcc
    rewrites map calls (`spaces.lookup(...)`) and tracepoint arguments in its main file only."""
    seen: set = set()

    def inline(match: re.Match) -> str:
        header = match.group(1)
        if header in seen:
            return f"/* {header}: above */"
        seen.add(header)
        return LOCAL_INCLUDE.sub(inline, probe_path(header).read_text())

    return LOCAL_INCLUDE.sub(inline, probe_path(name).read_text())


def probe_source(cflags: Sequence[str]) -> str:
    """The BPF program as it is compiled: the settings as #defines, then the probe file."""
    defines = [f"#define {flag[2:].replace('=', ' ', 1)}" for flag in cflags
               if flag.startswith("-D")]
    return "\n".join(["/* heaptrace run settings */", *defines, ""]) + probe_text()


def batch_calls(data: bytes) -> List[Call]:
    """The calls of a struct call_batch (sent on the ring buffer, or a partial one read back
    from the per-CPU map at the end)."""
    n = BATCH_HEADER.unpack_from(data)[1]
    body = data[BATCH_HEADER.size: BATCH_HEADER.size + n * CALL_REC.size]
    return [_call(fields) for fields in CALL_REC.iter_unpack(body)]


def rss_of(values: Sequence[int], members: Mapping[int, str]) -> Rss:
    """Bytes by member (the probe's order) as an Rss."""
    return Rss(**{members[i]: max(int(v), 0) for i, v in enumerate(values) if i in members})


def rss_sample(data: bytes, members: Mapping[int, str], offset: int = 0) -> RssSample:
    n = layout.NMEMBERS
    _, pid, space, why, ts, *rest = RSS_REC.unpack_from(data, offset)
    now, peak, peak_ts, at_peak = rest[:n], rest[n], rest[n + 1], rest[n + 2:]
    return RssSample(pid, space, RSS_WHY.get(why, "change"), ts, rss_of(now, members), peak,
                     peak_ts, rss_of(at_peak, members))


def parse_record(data: bytes,
                 members: Mapping[int, str] = DEFAULT_MEMBERS) -> Sequence[Record]:
    """Decode one ring-buffer record (a batch of calls decodes to several)."""
    rec_type = struct.unpack_from("<I", data)[0]
    if rec_type == REC_BATCH:
        return batch_calls(data)
    if rec_type == REC_RSS:
        return [rss_sample(data, members)]
    if rec_type == REC_RESIDENT_SUM:
        start = len(RESIDENT_SUM_HEADER)
        key = data[start:start + RESIDENT_KEY.size]
        return [resident_sum(key, data[start + RESIDENT_KEY.size:], members)]
    if rec_type == REC_STACK:
        _, pid, n, _complete, h, *ips = STACK_REC.unpack_from(data)
        return [WalkedStack(STACK_WALKED | (h >> 1), pid, tuple(ips[:n]))]
    if rec_type == REC_COPY:
        _, pid, tid, length, gen, depth, ref, ip, sp, fp, lr = COPY_HEADER.unpack_from(data)
        stack = data[COPY_HEADER.size: COPY_HEADER.size + length]
        return [StackCopy(ref, pid, tid, ip, sp, fp, lr, stack, gen, depth)]
    if rec_type == REC_PYSTACK:
        return [_py_stack(data)]
    if rec_type == REC_PYCODE:
        return [_py_code(data)]
    if rec_type == REC_MAPFILE:
        _, pid, ts, addr, length, offset, path = MAPFILE_REC.unpack_from(data)
        return [MappedFile(pid, ts, addr, length, offset, _cstr(path))]
    if rec_type in (REC_FORK, REC_EXEC, REC_EXIT):
        _, pid, ts, ppid, _code, comm, filename = PROC_REC.unpack_from(data)
        what = {REC_FORK: "fork", REC_EXEC: "exec", REC_EXIT: "exit"}[rec_type]
        return [ProcessChange(what, ts, pid, ppid, _cstr(comm), _cstr(filename))]
    return []


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


Mapped = Sequence[Tuple[int, int, MemClass]]  # [start, end) and class, sorted by address


def merged_ranges(mapped: Mapped) -> List[Tuple[int, int, MemClass]]:
    """Touching ranges of one class as one, as the probe keeps them (probes/ranges.h)."""
    out: List[Tuple[int, int, MemClass]] = []
    for start, end, cls in mapped:
        if out and out[-1][1] == start and out[-1][2] is cls:
            out[-1] = (out[-1][0], end, cls)
        else:
            out.append((start, end, cls))
    return out


def resident_sum(key: bytes, value: bytes, members: Mapping[int, str]) -> ResidentSum:
    """One entry of the probe's per-stack sums of resident growth."""
    pid, gen, _slot, member, cause, nr, stack_id, _, ref, rest, comm = RESIDENT_KEY.unpack(key)
    nbytes, count, first_ts, addr, tid, _pad = RESIDENT_VAL.unpack(value)
    return ResidentSum(pid, gen, first_ts, members.get(member, "anon"), cause, nr, ref, rest,
                       _cstr(comm), nbytes, count, addr, tid, stack_id)


def space_sample(mm: int, value: bytes, members: Mapping[int, str], ts_ns: int) -> RssSample:
    """An entry of the probe's map of spaces, as a sample read at ts_ns."""
    n = layout.NMEMBERS
    tgid, _exiting, *rest = RSS_SPACE.unpack(value)
    now, peak, peak_ts, at_peak = rest[:n], rest[n + 2], rest[n + 3], rest[n + 4:]
    return RssSample(tgid, mm, "now", ts_ns, rss_of(now, members), peak, peak_ts,
                     rss_of(at_peak, members))


AUTOLOADED = ((b"tracepoint__", "TRACEPOINT"), (b"raw_tracepoint__", "RAW_TRACEPOINT"))


def load_probe(bcc, text: str, cflags: Sequence[str]):  # noqa: ANN001, ANN201 - bcc's types
    """Compile the probe, load every program of it at once, then attach: bcc's own automatic
    load and attach of the tracepoint programs, with the stage programs that sys_exit
    tail-calls loaded beside them and put in their table first. The kernel's verifier is
    most of a program's load (bench/startup.py) and the programs are independent: each is
    loaded in a thread of its own (ctypes lets go of the GIL in the bpf() call)."""

    class Probe(bcc.BPF):
        def _trace_autoload(self) -> None:
            pass  # once every program is loaded, below

    def fail(exc: Exception) -> HeaptraceError:
        return HeaptraceError(f"could not load the eBPF program: {exc}",
                              "run `heaptrace doctor` (kernel headers, BPF support)")

    try:
        bpf = Probe(text=text, cflags=list(cflags))
    except Exception as exc:  # bcc raises bare Exception on compile/load failures
        raise fail(exc) from None
    layout.check_against(lambda name, side: getattr(bpf[name], side))
    module = bpf.module
    names = [bcc.lib.bpf_function_name(module, i)
             for i in range(bcc.lib.bpf_num_functions(module))]
    jobs = [(name.encode(), bcc.BPF.RAW_TRACEPOINT) for name in STAGES]  # the costliest
    jobs += [(name, getattr(bcc.BPF, kind)) for name in names for prefix, kind in AUTOLOADED
             if name.startswith(prefix)]
    try:
        with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
            programs = list(pool.map(lambda job: bpf.load_func(*job), jobs))
        stages = bpf["stages"]
        for index, program in enumerate(programs[:len(STAGES)]):
            stages[ctypes.c_int(index)] = ctypes.c_int(program.fd)
        bcc.BPF._trace_autoload(bpf)  # attach (each program is loaded already)
    except Exception as exc:  # bcc raises bare Exception on load and attach failures
        bpf.cleanup()
        raise fail(exc) from None
    return bpf


class EbpfTracer:
    """Compiles and attaches the probes; `poll()` delivers records to `on_record`."""

    in_callback = False  # handing records on (see request_return)
    return_asked = False

    def __init__(
        self, on_record: Callable[[Record], None], cflags: Sequence[str], fp_stacks: bool = False,
        look_ahead: Optional[Callable[[Sequence[Record]], None]] = None,
        spill_dir: Optional[str] = None,
    ) -> None:
        """`cflags` from build_cflags(): the probe's settings. `look_ahead`: shown the process
        changes and file mappings of each poll before `on_record` gets them one by one.
        `spill_dir`: where the records waiting to be handled go past a few MiB (backlog.py)."""
        check_privileges()
        self._bpf = load_probe(import_bcc(), probe_text(), cflags)
        release_compiler_memory()  # loaded: clang's memory is not carried through the run
        self._on_record = on_record
        self._look_ahead = look_ahead
        self._polled: List[bytes] = []
        self.backlog = Backlog(spill_dir)
        self._pending: Deque[Record] = deque()  # of the ring-buffer record being handed on
        self._fp_stacks = fp_stacks
        self.members = rss_members(tracefs_format("kmem/rss_stat"))
        # The first exception raised while handling a record (a write error, a bug): ctypes
        # would print and swallow it, so it is kept here and ends the run (see poll()).
        self.failure: Optional[BaseException] = None
        self.callback_errors = 0
        # Calls and sums of resident growth taken from the probe, and decoded to be handed on:
        # what a drain cut short leaves out is counted from them (left_behind()).
        self._events_taken = self._events_decoded = 0
        self._partials_handed = False  # drain() handed on the probe's partial batches
        self._closed = False
        self._bpf["events"].open_ring_buffer(self._callback)

    def _callback(self, _ctx: object, data: int, size: int) -> None:
        self._polled.append(ctypes.string_at(data, size))

    def _deliver(self, budget_s: Optional[float] = None) -> None:
        """Hand the polled records on, in order, decoded one ring-buffer record at a time.
        Handling some takes long (the first stack copies of a process are unwound from cold
        caches) and a busy target makes records faster than they are handled: meanwhile the
        ring buffer is emptied every LOOK_AHEAD_S into the backlog (bounded memory, then a
        spill file), so the kernel drops nothing, and what arrives is shown to `look_ahead`
        at once, so what it does (teaching the probe where a new process runs Python) waits
        for no backlog. An exception, or a return asked for (request_return), leaves what
        was not handed on yet for the next call, the rest of the ring-buffer record in hand
        included (a stop signal loses none of them). With `budget_s`, it returns after that
        long even if records wait (they stay for the next call), so that the run's loop
        comes round (poll())."""
        self._take_polled()
        start = last = time.monotonic()
        self.in_callback = True
        try:
            while True:
                if not self._pending:
                    raw = self.backlog.pop()
                    if raw is None:
                        return
                    self._events_decoded += _events_in(raw)
                    self._pending.extend(parse_record(raw, self.members))
                    continue
                self._on_record(self._pending.popleft())
                if self.return_asked:
                    self.return_asked = False
                    return
                now = time.monotonic()
                if now - last > LOOK_AHEAD_S:
                    self._bpf.ring_buffer_consume()
                    self._take_polled()
                    last = now
                if budget_s is not None and now - start > budget_s:
                    return
        finally:
            self.in_callback = False

    def _take_polled(self) -> None:
        polled, self._polled = self._polled, []
        if self._look_ahead is not None:
            ahead = [record for raw in polled if struct.unpack_from("<I", raw)[0] in LOOK_AHEAD
                     for record in parse_record(raw, self.members)]
            if ahead:
                self._look_ahead(ahead)
        for raw in polled:
            self._events_taken += _events_in(raw)
            self.backlog.append(raw)

    def request_return(self) -> bool:
        """Called from a signal handler: if records are being handed on, have that stop after
        the one in hand, the rest kept for the next call (True); False if not."""
        if self.in_callback:
            self.return_asked = True
        return self.in_callback

    def arm(self, pid: int) -> None:
        """Trace `pid` from its next exec on (it is stopped between fork and exec)."""
        table = self._bpf["traced"]
        table[ctypes.c_uint32(pid)] = ctypes.c_uint8(STATE_ARMED)

    def attach(self, pid: int, mapped: Mapped = ()) -> None:
        """Trace the running process `pid` (all its threads) from now on. `mapped`: what its
        address space holds now ([start, end) and class, sorted), for the probe to follow."""
        table = self._bpf["ranges"]
        value = table.Leaf()
        kept = merged_ranges(mapped)[:MAX_RANGES]
        for i, (start, end, cls) in enumerate(kept):
            value.r[i].start, value.r[i].end, value.r[i].cls = start, end, cls.code
        value.n = len(kept)
        table[ctypes.c_uint32(pid)] = value
        self._bpf["traced"][ctypes.c_uint32(pid)] = ctypes.c_uint8(STATE_ACTIVE)

    def seed_rss(self, pid: int, rss: Rss) -> None:
        """The RSS of `pid` now (before `attach`): its first counter changes are measured
        from it, not taken for growth."""
        table = self._bpf["attach_rss"]
        by_name = {"anon": rss.anon, "file": rss.file, "shmem": rss.shmem, "swap": rss.swap}
        values = [by_name[self.members[i]] for i in range(layout.NMEMBERS)]
        table[ctypes.c_uint32(pid)] = table.Leaf((ctypes.c_uint64 * layout.NMEMBERS)(*values))

    def drain_resident(self, final: bool = False) -> int:
        """Take the probe's sums of resident growth of the finished time slots (all of them
        when `final`) into the backlog, behind every record the ring buffer holds now, so
        that they are handled after the stacks they name (`final`: every slot).
        Returns a time (bpf_ktime_get_ns's clock: CLOCK_MONOTONIC) before which no sum is
        left in the probe: the start of the oldest slot still summed, a slot earlier than
        the last finished one at the latest (an increment that raced the reading)."""
        self._bpf.ring_buffer_consume()
        self._take_polled()
        table = self._bpf["resident"]
        current = time.monotonic_ns() >> layout.SLOT_SHIFT  # bpf_ktime_get_ns's clock
        oldest = current - 2
        for key, value in list(table.items()):
            if not final and key.slot + 1 >= current:
                oldest = min(oldest, key.slot)
                continue  # still being summed
            self.backlog.append(RESIDENT_SUM_HEADER + _raw(key) + _raw(value))
            self._events_taken += 1
            del table[key]
        return max(oldest, 0) << layout.SLOT_SHIFT

    def batches_since(self) -> int:
        """The earliest time (CLOCK_MONOTONIC) of a call the probe still holds back in a
        CPU's partial batch; now when it holds none. Read before the ring buffer is emptied:
        every call made before it has then been taken."""
        oldest = time.monotonic_ns()
        for batch in self._bpf["batches"].getvalue(ctypes.c_int(0)):
            if batch.n:
                oldest = min(oldest, batch.first_ts)
        return oldest

    def rss_now(self) -> Iterator[RssSample]:
        """Every followed address space's RSS as the probe holds it now."""
        now = time.monotonic_ns()
        for key, value in self._bpf["spaces"].items():
            if value.tgid:
                yield space_sample(key.value, _raw(value), self.members, now)

    def rss_peak(self) -> Tuple[int, int, Rss]:
        """(peak, when, RSS by class then) of the summed RSS of every traced process."""
        total = self._bpf["rss_sum"][ctypes.c_int(0)]
        n = layout.NMEMBERS
        _, peak, ts, *rest = RSS_TOTAL.unpack(_raw(total))
        return peak, ts, rss_of(rest[n:], self.members)

    def rss_classes(self) -> Dict[str, KindTotals]:
        """Exact resident growth and shrinking by class (anon, file, shmem, swap)."""
        table = self._bpf["rss_members"]
        result = {}
        for i, name in sorted(self.members.items()):
            per_cpu = table.getvalue(ctypes.c_int(i))
            result[name] = KindTotals(calls=sum(v.calls for v in per_cpu),
                                      bytes=sum(v.bytes for v in per_cpu),
                                      released=sum(v.released for v in per_cpu))
        return result

    def detach(self, pid: int) -> None:
        """Stop tracing `pid` (attached by mistake: its pid was reused)."""
        with contextlib.suppress(KeyError):
            del self._bpf["traced"][ctypes.c_uint32(pid)]

    def teach(self, pid: int, gen: int, rules: Sequence[Tuple[int, StepRule]]) -> None:
        """Hand per-PC unwinding rules to the probe (see heaptrace/unwind/bpf_rules.py)."""
        table = self._bpf["rules"]
        for pc, r in rules:
            key = table.Key(pid, gen, pc)
            leaf = table.Leaf(r.cfa_off, r.fp_off, r.cfa_reg, int(r.fp_saved), int(r.end))
            table[key] = leaf

    def teach_python(self, pid: int, fields: Sequence[int]) -> None:
        """Tell the probe where process `pid` keeps its Python runtime: the py_proc fields in
        order (heaptrace/stacks/python/interpreter.py builds them)."""
        self._bpf["py_procs"][ctypes.c_uint32(pid)] = self._bpf["py_procs"].Leaf(*fields)

    def poll(self, timeout_ms: int) -> None:
        """Hand on what the probe sent, for at most DELIVER_S: waiting up to `timeout_ms`
        for records unless some wait already."""
        if self.failure is not None:
            return
        if self.waiting():
            self._bpf.ring_buffer_consume()
        else:
            self._bpf.ring_buffer_poll(timeout_ms)
        self._handed_on(DELIVER_S)

    def waiting(self) -> bool:
        """Records taken from the ring buffer wait to be handed on."""
        return bool(self._pending) or len(self.backlog) > 0

    def records_handed_on(self) -> int:
        """How many ring-buffer records (of backlog.appended) were wholly handed on."""
        return self.backlog.popped - (1 if self._pending else 0)

    def _handed_on(self, budget_s: Optional[float] = None) -> None:
        """Deliver what was polled; the first exception raised while handling a record (a
        write error, a bug) is kept (`failure`) and ends the run: nothing more is handed on."""
        try:
            self._deliver(budget_s)
        except BaseException as exc:  # kept, and raised by the run
            self.failure = exc
            self.callback_errors += 1

    def stop(self) -> None:
        """Stop tracing: every probe detached, its maps and ring buffer still readable, so
        that drain() ends (on a whole system, records would otherwise come in faster than
        they are handled, for ever) and the totals stay those of the events delivered."""
        for tp in list(self._bpf.raw_tracepoint_fds):
            self._bpf.detach_raw_tracepoint(tp=tp)
        for tp in list(self._bpf.tracepoint_fds):
            self._bpf.detach_tracepoint(tp=tp)

    def drain(self, between: Callable[[], None] = lambda: None,
              cut: Callable[[], bool] = lambda: False) -> bool:
        """After stop(): deliver everything still buffered, the probe's partial per-CPU
        batches, then its sums of resident growth. `between` is called every DELIVER_S
        while a backlog is handed on, and `cut` asked: when it says so (a stop signal: the
        drain of a flood's backlog can be long), the rest is left, False returned, and
        left_behind() counts what was not handed on."""
        self._bpf.ring_buffer_consume()
        if not self._hand_on_all(between, cut):
            return False
        for batch in self._bpf["batches"].getvalue(ctypes.c_int(0)):
            raw = ctypes.string_at(ctypes.addressof(batch), ctypes.sizeof(batch))
            for call in batch_calls(raw):
                self._on_record(call)
        self._partials_handed = True
        self.drain_resident(final=True)
        return self._hand_on_all(between, cut)

    def _hand_on_all(self, between: Callable[[], None], cut: Callable[[], bool]) -> bool:
        """Hand the backlog on until it is empty (True; also after a failure, which the
        caller raises) or `cut` says to stop (False)."""
        self._take_polled()
        while self.waiting():
            if cut():
                return False
            self._handed_on(DELIVER_S)
            if self.failure is not None:
                return True
            if self.waiting():
                between()
        return True

    def left_behind(self) -> int:
        """The calls and sums of resident growth the probe sent or still holds that were not
        handed on: what a drain cut short leaves out of the recording."""
        self._bpf.ring_buffer_consume()
        polled, self._polled = self._polled, []
        held = len(self._bpf["resident"]) + sum(_events_in(raw) for raw in polled)
        if not self._partials_handed:
            held += sum(batch.n for batch in self._bpf["batches"].getvalue(ctypes.c_int(0)))
        return self.events_waiting() + held

    def events_waiting(self) -> int:
        """The calls and sums of resident growth taken from the probe, not handed on yet."""
        decoded = sum(isinstance(record, (Call, ResidentSum)) for record in self._pending)
        return self._events_taken - self._events_decoded + decoded

    def stack_ips(self, stack_id: int) -> List[int]:
        """Frame-pointer stack (leaf first) from the kernel's stack map, if it was kept."""
        if not self._fp_stacks or stack_id < 0:
            return []
        try:
            return [ip for ip in self._bpf["stacks"].walk(stack_id) if ip]
        except KeyError:
            return []

    def totals(self) -> Dict[str, KindTotals]:
        """Exact counters summed over CPUs."""
        totals_map, buckets_map = self._bpf["totals"], self._bpf["buckets"]
        classes_map = self._bpf["class_bytes"]
        result = {}
        for kind in KINDS:
            i = KIND_INDEX[kind]
            per_cpu = totals_map.getvalue(ctypes.c_int(i))
            t = KindTotals(
                calls=sum(v.calls for v in per_cpu),
                failed=sum(v.failed for v in per_cpu),
                bytes=sum(v.bytes for v in per_cpu),
                released=sum(v.released for v in per_cpu),
            )
            for slot in range(NBUCKETS):
                count = sum(buckets_map.getvalue(ctypes.c_int(i * NBUCKETS + slot)))
                if count:
                    t.buckets[1 << slot] = count
            if kind in CLASSED_KINDS:
                t.classes = {cls.label: sum(classes_map.getvalue(
                    ctypes.c_int(i * CLASS_SLOTS + cls.code))) for cls in MemClass}
            result[kind] = t
        return result

    def counters(self) -> Dict[str, int]:
        table = self._bpf["counters"]
        return {name: sum(table.getvalue(ctypes.c_int(i))) for i, name in enumerate(COUNTERS)}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bpf.cleanup()
            self.backlog.close()


def _events_in(raw: bytes) -> int:
    """How many events a ring-buffer (or backlog) record holds: a batch's calls, a sum."""
    rec_type = struct.unpack_from("<I", raw)[0]
    if rec_type == REC_BATCH:
        return int(BATCH_HEADER.unpack_from(raw)[1])
    return int(rec_type == REC_RESIDENT_SUM)


def _raw(value: object) -> bytes:
    """The bytes of a ctypes value bcc returned (a map key or value)."""
    return ctypes.string_at(ctypes.addressof(value), ctypes.sizeof(value))  # type: ignore


def kernel_release() -> str:
    return platform.release()
