"""Hostile input for every text reader (issue 8, C2/C3): long lines in linear time, bounded
lines and input, numbers too big for a recording, devices and pipes; and the splitters that
replaced backtracking regular expressions agree with those expressions on short input."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heaptrace.analysis.compact import without_clone_suffix
from heaptrace.analysis.profiles import load_profile
from heaptrace.analysis.stacks import Selection
from heaptrace.errors import HeaptraceError, ImportFormatError
from heaptrace.formats import collapse, dtrace_events
from heaptrace.formats.folded import is_count, is_whole_number, split_counts
from heaptrace.formats.perf_script import parse_args, parse_callchain, parse_header
from heaptrace.formats.textinput import input_lines
from heaptrace.importers import dtrace, folded, perf
from heaptrace.importers.dtrace import _labelled
from heaptrace.render.folded import _CONTROL, clean_frame
from tests.helpers.cli import heaptrace

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = 1 << 19  # half a megabyte: lines of this length, quadratic, take hours
# Lines that made the old regular expressions backtrack: runs of blanks, separators,
# brackets and digits with nothing to end a match.
HOSTILE = [" " * LONG + "x", "a " * (LONG // 2), "::" * (LONG // 2) + "(", " (" * (LONG // 2),
           ".(" * (LONG // 2), "a" * LONG + ": 1", "1 " * (LONG // 2), "\t" * LONG + "1",
           ";" * LONG, "  " + "a " * (LONG // 2) + "x", "x" + " " * LONG + "1.2.3",
           ".isra" * (LONG // 5) + "!", "a 1/" * (LONG // 4), "[0] " * (LONG // 4),
           "0x" * (LONG // 2), "@" * LONG + "|"]
# Ample for a linear parse of these lines on a loaded machine; the quadratic parsers
# took 90 s for one line of 100 KB, days for these.
BOUND_S = 300


def _each_reader(path: str) -> None:
    """Run every reader on the file; errors are fine, tracebacks and hangs are not."""
    readers = [lambda: folded.parse(path, kind="brk"), lambda: perf.parse(path),
               lambda: dtrace.parse(path, kind="brk"),
               lambda: dtrace_events.parse_lines(path, input_lines(path)),
               lambda: load_profile(path, Selection())]
    for read in readers:
        with contextlib.suppress(HeaptraceError):
            read()


def _all_hostile(directory: str) -> None:
    for i, line in enumerate(HOSTILE):
        path = os.path.join(directory, f"hostile{i}.txt")
        with open(path, "w") as f:
            f.write(line + "\n" + line + " 12\n")
        _each_reader(path)
        for name in (line, line[: LONG // 4]):
            clean_frame(name)
            collapse.dtrace_frame(name)
            collapse.perf_frame(name, "m", "p")
            without_clone_suffix(name)


def test_long_lines_are_read_in_linear_time(tmp_path):
    """Every reader on half-megabyte lines of the shapes that made the old parsers quadratic, in a
    child process that must finish (regular expressions cannot be interrupted in-process)."""
    child = multiprocessing.get_context("fork").Process(target=_all_hostile,
                                                        args=(str(tmp_path),))
    child.start()
    child.join(BOUND_S)
    hung = child.is_alive()
    if hung:
        child.kill()
        child.join()
    assert not hung, f"the readers did not finish the hostile lines in {BOUND_S} s"
    assert child.exitcode == 0


# --- bounds ---------------------------------------------------------------------------------

def test_a_line_over_the_bound_is_one_error_naming_it(tmp_path):
    path = tmp_path / "long.folded"
    path.write_bytes(b"a;brk 1\n" + b"x" * (5 << 20) + b" 1\n")
    with pytest.raises(ImportFormatError) as err:
        folded.parse(str(path), kind="brk")
    assert err.value.line == 2 and "longer than 4 MiB" in str(err.value)


def test_input_over_the_bound_is_one_error(tmp_path):
    path = tmp_path / "many.folded"
    path.write_text("a;brk 1\n" * 1000)
    with pytest.raises(ImportFormatError, match="more than"):
        list(input_lines(str(path), max_total=4000))


@pytest.mark.parametrize("fmt", ["folded", "perf", "dtrace"])
def test_devices_and_directories_are_refused_before_reading(tmp_path, fmt):
    result = heaptrace("import", fmt, "/dev/zero", "-o", str(tmp_path / "out.db"), "--event", "brk")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "expected a file or a pipe, not a device" in result.stderr
    result = heaptrace("import", fmt, str(tmp_path), "-o", str(tmp_path / "out.db"))
    assert result.returncode == 2 and "is a directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.db").exists()


def test_flame_refuses_dev_zero():
    result = heaptrace("flame", "/dev/zero")
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_a_pipe_is_read_and_bounded(tmp_path):
    fifo = str(tmp_path / "in.folded")
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as f:
            f.write("main;brk 4096\n" * 3)

    writer = threading.Thread(target=write)
    writer.start()
    imported = folded.parse(fifo, kind="brk")
    writer.join()
    assert imported.totals["brk"].bytes == 3 * 4096


# --- numbers a recording cannot hold ---------------------------------------------------------

BIG = [str(1 << 63), "9" * 5000]


@pytest.mark.parametrize("big", BIG)
def test_huge_counts_are_one_error(tmp_path, big):
    texts = {
        "folded": f"a;brk {big}\n",
        "dtrace": f"\n              libc.so.1`_brk_unlocked+0xa\n    {big}\n",
        "perf": f"app 1/1 [000] 1.0: {big} syscalls:sys_enter_mmap: addr: 0x0, len: 0x1000\n",
    }
    for fmt, text in texts.items():
        source = tmp_path / f"in.{fmt}"
        source.write_text(text)
        result = heaptrace("import", fmt, str(source), "-o", str(tmp_path / "o.db"),
                                "--event", "brk")
        assert result.returncode == 1, (fmt, result.stderr)
        assert "below 2^63" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    flame = tmp_path / "big.folded"
    flame.write_text(f"a;b {big}\n")
    result = heaptrace("flame", str(flame))
    assert result.returncode == 1 and "below 2^63" in result.stderr


def test_counts_whose_sum_passes_2_63_are_one_error(tmp_path):
    source = tmp_path / "in.folded"
    source.write_text(f"a;brk {(1 << 63) - 1}\nb;brk {(1 << 63) - 1}\n")
    result = heaptrace("import", "folded", str(source), "-o", str(tmp_path / "o.db"),
                            "--event", "brk")
    assert result.returncode == 1 and "2^63" in result.stderr
    assert "Traceback" not in result.stderr


def test_dtrace_events_with_a_huge_number_are_one_error(tmp_path):
    source = tmp_path / "in.events"
    source.write_text(f"target 7\ncall brk brk 7 7 {1 << 64} 0 0 0 0 0 0 0\n")
    with pytest.raises(ImportFormatError, match="below 2"):
        dtrace_events.parse_lines(str(source), input_lines(str(source)))


# --- the splitters agree with the regular expressions they replaced ----------------------

TEXT = st.text(alphabet=" \t\x0b:;()<>.+-_/[]@|,x0123456789aL", max_size=40)
OLD_FOLDED = re.compile(r"^(.*?)[ \t]+(-?\d+)(?:[ \t]+(-?\d+))?\s*$", re.ASCII)
OLD_FLAME = re.compile(r"^(.*?)[ \t]+(\d+(?:\.\d*)?)(?:[ \t]+(\d+(?:\.\d*)?))?\s*$", re.ASCII)
OLD_HEADER = re.compile(
    r"^(?P<comm>\S.*?)\s+(?P<pid>\d+)(?:/(?P<tid>\d+))?\s+(?:\[\d+\]\s+)?"
    r"(?:(?P<sec>\d+)\.(?P<frac>\d+):\s+)?(?:(?P<period>\d+)\s+)?"
    r"(?P<event>\S+?):(?:\s+(?P<args>.*?))?\s*$", re.ASCII)
OLD_FRAME = re.compile(r"^\s*(\w+)\s*(.+) \((.*)\)", re.ASCII)
OLD_LABELLED = re.compile(r"^\s+(\S.*?)\s+(-?\d+)$", re.ASCII)
OLD_CXX = re.compile(r"(::.*)[(<].*", re.ASCII)
OLD_DOTTED = re.compile(r"\.\(.*\)\.", re.ASCII)
OLD_CLONE = re.compile(r"(\.(constprop|isra|part|cold|lto_priv|llvm)(\.\d+)?)+$", re.ASCII)
OLD_TRAILING = re.compile(r"\s+(\d+(?:\.\d*)?)$")


def _old_split(regex: re.Pattern, line: str):
    m = regex.match(line)
    if m is None:
        return None
    return m.group(1), [c for c in m.groups()[1:] if c is not None]


@SETTINGS
@given(TEXT)
def test_split_counts_is_the_old_regex(line):
    assert split_counts(line, is_whole_number) == _old_split(OLD_FOLDED, line)
    assert split_counts(line, is_count) == _old_split(OLD_FLAME, line)


PERF_HEADER = st.builds(
    lambda comm, pid, tid, cpu, when, period, event, args: " ".join(
        p for p in (comm, pid + (f"/{tid}" if tid else ""), cpu, when, period, event + ":", args)
        if p),
    st.sampled_from(["grow", "a b", "x 12", "[w] 1", "k:"]), st.sampled_from(["12", "0", "x"]),
    st.sampled_from(["", "13"]), st.sampled_from(["", "[000]", "[x]"]),
    st.sampled_from(["", "1.5:", "12.000001:", "1.2"]), st.sampled_from(["", "250", "7:"]),
    st.sampled_from(["syscalls:sys_enter_brk", "cycles:u", "a:b", ""]),
    st.sampled_from(["", "brk: 0x0", "addr: 0x0, len: 0x2000  "]))


@SETTINGS
@given(st.one_of(TEXT, PERF_HEADER))
def test_parse_header_is_the_old_regex(line):
    m = OLD_HEADER.match(line)
    h = parse_header(line)
    if m is None:
        assert h is None
        return
    assert h is not None
    assert (h.comm, h.pid, h.tid, h.sec, h.frac, h.period, h.event, h.args) == (
        m.group("comm"), int(m.group("pid")), int(m.group("tid") or m.group("pid")),
        m.group("sec"), m.group("frac"),
        None if m.group("period") is None else int(m.group("period")), m.group("event"),
        m.group("args") or "")


@SETTINGS
@given(TEXT)
def test_parse_callchain_is_stackcollapse_perf_regex(line):
    m = OLD_FRAME.match(line)
    assert parse_callchain(line) == (None if m is None else (m.group(2), m.group(3)))


@SETTINGS
@given(TEXT)
def test_labelled_total_is_the_old_regex(line):
    m = OLD_LABELLED.match(line)
    assert _labelled(line) == (None if m is None else m.groups())


@SETTINGS
@given(TEXT)
def test_collapse_cuts_are_perls(text):
    assert collapse._without_cxx_args(text) == OLD_CXX.sub(r"\1", text, count=1)
    assert collapse._has_dotted_args(text) == bool(OLD_DOTTED.search(text))


@SETTINGS
@given(st.lists(st.sampled_from(["a", "constprop", "isra", "0", "12", "cold", "", "x1"]),
                max_size=8))
def test_clone_suffix_is_the_old_regex(parts):
    name = ".".join(parts)
    assert without_clone_suffix(name) == OLD_CLONE.sub("", name)


@SETTINGS
@given(st.one_of(TEXT, st.text(alphabet=" \xa0\u3000\u2007x.;0\u0661\u00b2", max_size=20)))
def test_trailing_number_is_joined_as_before(text):
    name = _CONTROL.sub(" ", text.replace(";", ":")).strip()
    if name:
        assert clean_frame(text) == OLD_TRAILING.sub(r"_\1", name)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["addr", "len", "brk", "x y"]),
                          st.sampled_from(["0x0", "0x2000", "12", "-3", "zz"])), max_size=5))
def test_parse_args_reads_perfs_name_value_list(pairs):
    text = ", ".join(f"{n}: {v}" for n, v in pairs)
    expected = {}
    for n, v in pairs:
        if " " not in n and v != "zz":
            expected[n] = int(v, 16) if v.startswith("0x") else int(v)
    assert parse_args(text) == expected
