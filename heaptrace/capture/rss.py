"""Resident and virtual size of the traced processes over time, beside the syscall trace:
what the kernel actually backs with pages, which heap growth alone does not tell."""

from __future__ import annotations

import time
from typing import Dict, Iterable

import psutil

from heaptrace.recording import RecordingWriter

INTERVAL_S = 0.25


class RssSampler:
    def __init__(self, writer: RecordingWriter) -> None:
        self.writer = writer
        self.last = 0.0
        self.peak: Dict[int, int] = {}

    def sample_if_due(self, pids: Iterable[int]) -> None:
        now = time.monotonic()
        if now - self.last < INTERVAL_S:
            return
        self.last = now
        for pid in pids:
            self._sample(pid)

    def _sample(self, pid: int) -> None:
        try:
            info = psutil.Process(pid).memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return
        self.writer.add_sample(time.monotonic_ns(), pid, info.rss, info.vms)
        self.peak[pid] = max(self.peak.get(pid, 0), info.rss)
