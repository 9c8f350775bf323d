"""A running process's RSS by class, from /proc/PID/status: where an attached process starts.

After that the probe follows every change from the kernel's own counters (kmem:rss_stat), so
nothing is sampled; this is the only RSS heaptrace reads from /proc. (It replaces the 0.25 s
psutil sampler, which missed every peak between two samples and every process shorter than one.)
"""

from __future__ import annotations

from typing import Dict, Optional

from heaptrace.events import Rss

# /proc/PID/status lines (kB) -> Rss fields. The kernel prints them from the same counters
# kmem:rss_stat reports (read without summing the per-CPU parts: a few pages of difference).
STATUS_FIELDS = {"RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem", "VmSwap": "swap"}


def parse_status(text: str) -> Optional[Rss]:
    """The Rss in a /proc/PID/status text; None when it has none (a kernel thread, a zombie)."""
    found: Dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        field = STATUS_FIELDS.get(name)
        parts = value.split()
        if field and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            found[field] = int(parts[0]) * 1024
    if "anon" not in found:
        return None
    return Rss(**found)


def process_rss(pid: int) -> Optional[Rss]:
    """The RSS of a running process now, None if it has none or is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return parse_status(f.read())
    except OSError:
        return None
