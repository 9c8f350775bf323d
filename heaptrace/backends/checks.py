"""Checks that tell whether this machine can trace, each with what to do when it cannot."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from typing import Callable, List

from heaptrace.backends.ebpf import has_bpf_privileges, import_bcc, tracefs_format
from heaptrace.errors import HeaptraceError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _kernel_bpf() -> Check:
    release = platform.release()
    btf = os.path.exists("/sys/kernel/btf/vmlinux")
    ok = os.path.exists("/sys/fs/bpf") or btf
    detail = f"Linux {release}" + (", BTF available" if btf else "")
    if not ok:
        detail += ": no /sys/fs/bpf or BTF; a kernel with CONFIG_BPF_SYSCALL is needed"
    return Check("kernel BPF support", ok, detail)


def _privileges() -> Check:
    if has_bpf_privileges():
        return Check("privileges", True, "root or CAP_BPF+CAP_PERFMON")
    return Check("privileges", False,
                 "not root: run `sudo heaptrace run ...` or grant CAP_BPF and CAP_PERFMON")


def _bcc() -> Check:
    try:
        bcc = import_bcc()
    except HeaptraceError:
        return Check("bcc Python module", False,
                     "not importable: apt-get install bpfcc-tools python3-bpfcc, and use a Python "
                     "that sees /usr/lib/python3/dist-packages (make setup builds such a venv)")
    return Check("bcc Python module", True, os.path.dirname(bcc.__file__))


def _headers() -> Check:
    release = platform.release()
    build = f"/lib/modules/{release}/build"
    if os.path.exists(os.path.join(build, "include")):
        target = os.path.realpath(build)
        note = "" if release in target else (
            " (generic headers for another kernel version: enough, the probes use only "
            "stable interfaces)")
        return Check("kernel headers", True, f"{build} -> {target}{note}")
    return Check(
        "kernel headers", False,
        f"{build} missing: apt-get install linux-headers-{release}; if no such package exists "
        "(custom kernel), install linux-headers-amd64 and link /usr/src/linux-headers-*-amd64 as "
        f"{build} and *-common as /lib/modules/{release}/source (scripts/setup-system.sh does)",
    )


def _tracefs() -> Check:
    for path in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.exists(os.path.join(path, "events")):
            return Check("tracefs", True, path)
    return Check("tracefs", False,
                 "not mounted (the sched tracepoints need it): "
                 "mount -t tracefs nodev /sys/kernel/tracing")


def _rss_tracepoints() -> Check:
    """kmem:rss_stat gives the exact RSS; page_fault_user (x86) tells faults from syscalls."""
    if tracefs_format("kmem/rss_stat") is None:
        return Check("RSS tracepoints", False,
                     "no kmem:rss_stat (Linux 5.5 or later, with tracefs mounted): no RSS and "
                     "no resident growth")
    faults = tracefs_format("exceptions/page_fault_user") is not None
    detail = "kmem:rss_stat" + (", exceptions:page_fault_user" if faults else
                                " (no page_fault_user: resident growth is not split into "
                                "faults and syscalls)")
    return Check("RSS tracepoints", True, detail)


def _tools() -> Check:
    missing = [t for t in ("strace", "perf", "gcc") if shutil.which(t) is None]
    if missing:
        return Check("test tools", True, f"optional, missing: {', '.join(missing)}")
    return Check("test tools", True, "strace, perf, gcc")


CHECKS: List[Callable[[], Check]] = [_kernel_bpf, _privileges, _bcc, _headers, _tracefs,
                                     _rss_tracepoints, _tools]


def run_checks() -> List[Check]:
    return [check() for check in CHECKS]
