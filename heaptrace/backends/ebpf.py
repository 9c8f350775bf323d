"""The eBPF backend: the only module that imports bcc.

Loads probes/heaptrace.bpf.c, follows the traced process tree through its maps, hands the
per-event stream to a callback and reads the exact totals back from the per-CPU maps.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from typing import TYPE_CHECKING, Callable, Dict, List, Sequence, Tuple

from heaptrace.backends import probe_layout as layout
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
    REC_STACK,
    STAGES,
    STATE_ACTIVE,
    STATE_ARMED,
)
from heaptrace.backends.probefiles import probe_dir, probe_path
from heaptrace.backends.records import (
    STACK_WALKED,
    Call,
    MappedFile,
    ProcessChange,
    Record,
    StackCopy,
    WalkedStack,
)
from heaptrace.errors import BackendUnavailable, HeaptraceError, PrivilegeError, UsageError
from heaptrace.events import CLASSED_KINDS, KIND_INDEX, KINDS, KindTotals, MemClass

if TYPE_CHECKING:
    from heaptrace.stacks.unwind.bpf_rules import StepRule

CAP_PERFMON, CAP_BPF, CAP_SYS_ADMIN = 38, 39, 21
BATCH_HEADER = layout.BATCH_HEADER.struct
CALL_REC = layout.CALL_REC.struct
STACK_REC = layout.STACK_REC.struct
COPY_HEADER = layout.COPY_HEADER.struct
PROC_REC = layout.PROC_REC.struct
MAPFILE_REC = layout.MAPFILE_REC.struct
EXIT_FORMATS = ("/sys/kernel/tracing/events/sched/sched_process_exit/format",
                "/sys/kernel/debug/tracing/events/sched/sched_process_exit/format")


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


def _has_group_dead() -> bool:
    """Linux 6.16 and later say in sched_process_exit whether the whole process ended."""
    for path in EXIT_FORMATS:
        try:
            with open(path) as f:
                return "group_dead" in f.read()
        except OSError:
            continue
    return False


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
        f"-DNCPUS={_possible_cpus()}",
        f"-DHAVE_GROUP_DEAD={int(_has_group_dead())}",
        f"-I{probe_dir()}",  # heaptrace.h
        "-Wno-unused-function",
        "-Werror=implicit-function-declaration",
    ]


def _call(fields: tuple) -> Call:
    kind, tid, ts, pid, stack_id, a0, a1, a2, a3, a4, a5, ret, size, ip, ref, rest, cls, _ = fields
    return Call(KINDS[kind], ts, pid, tid, (a0, a1, a2, a3, a4, a5), ret, size, ip, ref, rest,
                stack_id, cls)


def probe_source(cflags: Sequence[str]) -> str:
    """The BPF program as it is compiled: the settings as #defines, then the probe file."""
    defines = [f"#define {flag[2:].replace('=', ' ', 1)}" for flag in cflags
               if flag.startswith("-D")]
    header = probe_path("heaptrace.h").read_text()
    probe = probe_path("heaptrace.bpf.c").read_text().replace('#include "heaptrace.h"', header, 1)
    return "\n".join(["/* heaptrace run settings */", *defines, ""]) + probe


def batch_calls(data: bytes) -> List[Call]:
    """The calls of a struct call_batch (sent on the ring buffer, or a partial one read back
    from the per-CPU map at the end)."""
    n = BATCH_HEADER.unpack_from(data)[1]
    body = data[BATCH_HEADER.size: BATCH_HEADER.size + n * CALL_REC.size]
    return [_call(fields) for fields in CALL_REC.iter_unpack(body)]


def parse_record(data: bytes) -> Sequence[Record]:
    """Decode one ring-buffer record (a batch of calls decodes to several)."""
    rec_type = struct.unpack_from("<I", data)[0]
    if rec_type == REC_BATCH:
        return batch_calls(data)
    if rec_type == REC_STACK:
        _, pid, n, _complete, h, *ips = STACK_REC.unpack_from(data)
        return [WalkedStack(STACK_WALKED | (h >> 1), pid, tuple(ips[:n]))]
    if rec_type == REC_COPY:
        _, pid, tid, length, gen, depth, ref, ip, sp, fp, lr = COPY_HEADER.unpack_from(data)
        stack = data[COPY_HEADER.size: COPY_HEADER.size + length]
        return [StackCopy(ref, pid, tid, ip, sp, fp, lr, stack, gen, depth)]
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


class EbpfTracer:
    """Compiles and attaches the probes; `poll()` delivers records to `on_record`."""

    def __init__(
        self, on_record: Callable[[Record], None], cflags: Sequence[str], fp_stacks: bool = False
    ) -> None:
        """`cflags` from build_cflags(): the probe's settings."""
        check_privileges()
        bcc = import_bcc()
        self.source_path = str(probe_path("heaptrace.bpf.c"))
        try:
            self._bpf = bcc.BPF(src_file=self.source_path.encode(), cflags=list(cflags))
        except Exception as exc:  # bcc raises bare Exception on compile/load failures
            raise HeaptraceError(
                f"could not load the eBPF program: {exc}",
                "run `heaptrace doctor` (kernel headers, BPF support)",
            ) from None
        layout.check_against(lambda name, side: getattr(self._bpf[name], side))
        stages = self._bpf["stages"]
        for index, name in enumerate(STAGES):  # the programs sys_exit hands calls on to
            stages[ctypes.c_int(index)] = ctypes.c_int(
                self._bpf.load_func(name.encode(), bcc.BPF.RAW_TRACEPOINT).fd)
        self._on_record = on_record
        self._fp_stacks = fp_stacks
        self._bpf["events"].open_ring_buffer(self._callback)

    def _callback(self, _ctx: object, data: int, size: int) -> None:
        for record in parse_record(ctypes.string_at(data, size)):
            self._on_record(record)

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

    def teach(self, pid: int, gen: int, rules: Sequence[Tuple[int, StepRule]]) -> None:
        """Hand per-PC unwinding rules to the probe (see heaptrace/unwind/bpf_rules.py)."""
        table = self._bpf["rules"]
        for pc, r in rules:
            key = table.Key(pid, gen, pc)
            leaf = table.Leaf(r.cfa_off, r.fp_off, r.cfa_reg, int(r.fp_saved), int(r.end))
            table[key] = leaf

    def poll(self, timeout_ms: int) -> None:
        self._bpf.ring_buffer_poll(timeout_ms)

    def drain(self) -> None:
        """Deliver everything still buffered, partial per-CPU batches included."""
        self._bpf.ring_buffer_consume()
        for batch in self._bpf["batches"].getvalue(ctypes.c_int(0)):
            raw = ctypes.string_at(ctypes.addressof(batch), ctypes.sizeof(batch))
            for call in batch_calls(raw):
                self._on_record(call)

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
        self._bpf.cleanup()


def kernel_release() -> str:
    return platform.release()
