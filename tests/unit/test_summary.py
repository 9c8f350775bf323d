"""The run summary: the exact peak RSS with its split, what became resident, and the probe's
counters saying when a figure may be short."""

from __future__ import annotations

import io

from heaptrace.events import KindTotals, Rss
from heaptrace.render.summary import render_summary

MIB = 1 << 20


def summary(**kwargs) -> str:
    out = io.StringIO()
    totals = {"mmap": KindTotals(calls=1, bytes=4 * MIB, classes={"committed": 4 * MIB}),
              "resident": KindTotals(calls=1024, bytes=4 * MIB)}
    render_summary(totals, "x.db", 0, 1, out, **kwargs)
    return out.getvalue()


def test_the_peak_is_exact_and_split():
    text = summary(peak_rss=6 * MIB, peak_split=Rss(anon=5 * MIB, file=MIB))
    assert "  peak RSS 6.0 MiB, exact (anon 5.0 MiB, file 1.0 MiB, shmem 0 B)\n" in text
    assert "  made resident 4.0 MiB (first touch: heaptrace flame --event resident)\n" in text
    assert "warning" not in text


def test_no_rss_no_peak_line():
    assert "peak RSS" not in summary()


def test_counters_say_when_resident_or_rss_may_be_short():
    text = summary(counters={"lost": 0, "resident_lost": 12, "spaces_full": 3})
    assert "warning: 12 resident increments found the per-stack sums full" in text
    assert "warning: 3 RSS changes of address spaces not followed" in text
