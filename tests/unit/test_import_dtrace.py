"""DTrace aggregation output -> recording: quantize() tables, printa() totals, ustack() stacks."""

from __future__ import annotations

import os

import pytest

from heaptrace.analysis.quantize import rows
from heaptrace.errors import ImportFormatError
from heaptrace.importers import import_file
from heaptrace.recording import Recording
from tests.helpers.cli import heaptrace
from tests.helpers.importing import data, fold, read, without_edges

PKGIN = ["orig", "dlpkg", "streamsum", "nocache"]


@pytest.mark.parametrize("name", PKGIN)
def test_histogram_of_an_imported_table_is_the_published_table(tmp_path, name):
    source = data("dtrace", f"pkgin-{name}-brkquantize.txt")
    out = str(tmp_path / "run.db")
    heaptrace("import", "dtrace", source, "-o", out, check=True)
    printed = heaptrace("histogram", out, check=True).stdout.split("\n")
    assert without_edges(printed) == without_edges(read(source))


def test_pkgin_original_totals_and_rows(tmp_path):
    out = str(tmp_path / "run.db")
    import_file("dtrace", data("dtrace", "pkgin-orig-brkquantize.txt"), out)
    with Recording(out) as rec:
        totals, meta = rec.totals(), rec.meta()
    brk = totals["brk"]
    assert (brk.calls, brk.bytes) == (675, 401752064)
    values = [v for v, _ in rows(brk.buckets)]
    assert values[0] == 32768 and values[-1] == 268435456
    assert brk.buckets[65536] == 573 and brk.buckets[134217728] == 1
    assert meta.titles == {"brk": "brk() allocation sizes"}
    assert meta.source == "dtrace"


def test_histogram_json_of_an_imported_table(tmp_path):
    out = str(tmp_path / "run.db")
    import_file("dtrace", data("dtrace", "pkgin-nocache-brkquantize.txt"), out)
    import json
    doc = json.loads(heaptrace("histogram", out, "--json", check=True).stdout)
    assert doc["events"]["brk"]["calls"] == 58
    assert doc["events"]["brk"]["bytes"] == 9388032
    assert {"value": 1048576, "count": 1} in doc["events"]["brk"]["buckets"]


@pytest.mark.parametrize("name, counts", [("pkgin-brkbytes", "bytes"),
                                          ("cxx-brk-count", "calls")])
def test_stacks_fold_as_stackcollapse_pl(tmp_path, name, counts):
    """The golden files are FlameGraph's stackcollapse.pl output on the same inputs."""
    out = str(tmp_path / "run.db")
    import_file("dtrace", data("dtrace", f"{name}.txt"), out, counts=counts)
    weight = "size" if counts == "bytes" else "calls"
    golden = read(data("dtrace", f"{name}.stackcollapse.folded"))
    assert fold(out, weight) == [line for line in golden if line]


def test_stack_import_knows_bytes_but_not_calls(tmp_path):
    out = str(tmp_path / "run.db")
    import_file("dtrace", data("dtrace", "pkgin-brkbytes.txt"), out)
    with Recording(out) as rec:
        totals, meta = rec.totals(), rec.meta()
        events = list(rec.events())
    golden = read(data("dtrace", "pkgin-brkbytes.stackcollapse.folded"))
    golden_sum = sum(int(line.rsplit(" ", 1)[1]) for line in golden if line)
    assert totals["brk"].bytes == sum(e.size for e in events) == golden_sum
    assert meta.unknown_totals == {"brk": ["calls"]}
    assert all(e.kind == "brk" and e.calls == 0 for e in events)  # from the leaf _brk_unlocked
    printed = heaptrace("histogram", out, check=True).stdout
    assert "Total bytes allocated" in printed and "calls" not in printed


def test_dtrace_header_is_kept_in_meta(tmp_path):
    out = str(tmp_path / "run.db")
    import_file("dtrace", data("dtrace", "cxx-brk-count.txt"), out, counts="calls")
    with Recording(out) as rec:
        assert rec.meta().header[0].startswith("CPU     ID")
        assert rec.totals()["brk"].calls == 16


def test_histogram_output_imports_back_to_the_same_histogram(tmp_path):
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    import_file("perf", data("perf", "grow-callchain.perf"), first)
    printed = heaptrace("histogram", first, check=True).stdout
    text = tmp_path / "histogram.txt"
    text.write_text(printed)
    import_file("dtrace", str(text), second)
    assert heaptrace("histogram", second, check=True).stdout == printed


def _import_text(tmp_path, text, **options):
    source = tmp_path / "in.txt"
    source.write_text(text)
    out = tmp_path / "out.db"
    import_file("dtrace", str(source), str(out), **options)
    return str(out)


MALFORMED = [
    # (input, line the error names, words of what was expected)
    ("", 1, "found none"),
    ("  t\n     value  ---- Distribution ---- count\n   4096 |@@@ 1\n   3000 |@ 1\n", 4,
     "power-of-two"),
    ("  brk() sizes\n     value  ---- Distribution ---- count\n   4096 |@@@ 1\n  < 0 |@ 1\n", 4,
     "quantize() row"),
    ("\n    libc`brk+0x1\n    a`main+0x2\n       12\n\n    libc`brk+0x1\n\n", 7, "count"),
    ("\n    libc`malloc+0x1\n       12\n", 2, "--event"),
    ("  Total bytes allocated    12\n", 1, "--event"),
]


@pytest.mark.parametrize("text, line, expected", MALFORMED)
def test_malformed_input_names_its_line_and_writes_nothing(tmp_path, text, line, expected):
    with pytest.raises(ImportFormatError) as err:
        _import_text(tmp_path, text)
    assert err.value.line == line
    assert expected in str(err.value)
    assert os.listdir(tmp_path) == ["in.txt"]  # no output, no temporary file left


def test_event_option_names_the_kind_the_data_does_not(tmp_path):
    out = _import_text(tmp_path, "\n    libc`malloc+0x1\n    a`main+0x2\n       12\n",
                       kind="mmap")
    with Recording(out) as rec:
        assert rec.totals()["mmap"].bytes == 12


def test_numeric_key_above_a_table_is_its_title(tmp_path):
    text = ("\n             4242\n           value  ---- Distribution ---- count\n"
            "            4096 |@@@@ 2\n            8192 |     0\n\n")
    out = _import_text(tmp_path, text, kind="brk")
    with Recording(out) as rec:
        assert rec.meta().titles == {"brk": "4242"}
        assert rec.totals()["brk"].calls == 2


def test_existing_output_needs_force(tmp_path):
    out = _import_text(tmp_path, "  Total number of brk() calls    3\n")
    from heaptrace.errors import RecordingError
    with pytest.raises(RecordingError, match="--force"):
        import_file("dtrace", str(tmp_path / "in.txt"), out)
    import_file("dtrace", str(tmp_path / "in.txt"), out, force=True)
