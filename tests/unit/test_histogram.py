"""Quantize buckets and the DTrace quantize() layout, against DTrace's published output."""

from __future__ import annotations

import io
import json
from pathlib import Path

from heaptrace.analysis.quantize import bucket, quantize, rows
from heaptrace.events import KindTotals
from heaptrace.recording import RunMeta
from heaptrace.render.histogram import quantize_table, render_json, render_text, total_line

DATA = Path(__file__).parent.parent / "data"

# The brk() table published with the pkgin memory post (DTrace on SmartOS).
PKGIN_BUCKETS = {65536: 573, 131072: 32, 262144: 23, 524288: 39, 1048576: 1, 2097152: 2,
                 4194304: 1, 8388608: 2, 16777216: 1, 134217728: 1}


def test_bucket_is_the_power_of_two_at_or_below():
    assert [bucket(v) for v in (0, 1, 2, 3, 4, 4095, 4096, 4097)] == [0, 1, 2, 2, 4, 2048, 4096,
                                                                        4096]
    assert bucket(-5) == -4
    assert bucket(1 << 62) == 1 << 62


def test_quantize_counts_per_bucket():
    assert quantize([4096, 5000, 8192, 0, 1]) == {4096: 2, 8192: 1, 0: 1, 1: 1}


def test_rows_pad_one_empty_bucket_each_side_and_keep_empty_ones_between():
    assert rows({65536: 2, 1048576: 1}) == [(32768, 0), (65536, 2), (131072, 0), (262144, 0),
                                            (524288, 0), (1048576, 1), (2097152, 0)]
    assert rows({1: 3}) == [(0, 0), (1, 3), (2, 0)]
    assert rows({}) == []


def test_table_matches_dtrace_published_output_line_for_line():
    published = (DATA / "dtrace" / "pkgin-brkquantize.txt").read_text().splitlines()
    table_lines = [line.rstrip() for line in quantize_table("brk() allocation sizes",
                                                            PKGIN_BUCKETS)]
    assert table_lines == published[0:16]
    assert total_line("Total bytes allocated", 401752064) == published[17]
    assert total_line("Total number of brk() calls", 675) == published[18]


def test_bar_width_is_count_over_total_times_40_rounded():
    lines = quantize_table("t", {8: 1, 16: 1, 32: 2})
    bars = [line.split("|")[1].split()[0] if "@" in line else "" for line in lines[2:]]
    assert bars == ["", "@@@@@@@@@@", "@@@@@@@@@@", "@" * 20, ""]


def test_text_report_has_every_kind_and_a_lost_warning():
    totals = {"brk": KindTotals(calls=3, bytes=135168, buckets={131072: 1}),
              "munmap": KindTotals(calls=1, bytes=38879, buckets={32768: 1})}
    out = io.StringIO()
    render_text(totals, out, RunMeta(lost_events=7))
    text = out.getvalue()
    assert "Total number of brk() calls" in text and "Total bytes released" in text
    assert "7 events lost" in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_json_has_calls_bytes_and_buckets_per_kind():
    totals = {"mmap": KindTotals(calls=2, failed=1, bytes=4096, buckets={4096: 1})}
    out = io.StringIO()
    render_json(totals, out, RunMeta(command=["x"]))
    doc = json.loads(out.getvalue())
    assert doc["events"]["mmap"] == {
        "calls": 2, "bytes": 4096, "failed": 1, "released": 0,
        "buckets": [{"value": 2048, "count": 0}, {"value": 4096, "count": 1},
                    {"value": 8192, "count": 0}],
    }
    assert doc["recording"]["command"] == ["x"] and doc["recording"]["lost_events"] == 0
