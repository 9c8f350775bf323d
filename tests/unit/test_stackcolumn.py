"""C++ names shortened before anything is dropped, and report/timeline text that never hides
the program's own frames (issue 13, item 4)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest

from heaptrace.analysis.compact import compact_stack, is_own
from heaptrace.analysis.names import is_library_code, shorten
from heaptrace.analysis.report import StackRow, build_report
from heaptrace.analysis.timeline import timeline
from heaptrace.events import Event, Frame
from heaptrace.recording import Recording
from heaptrace.render.report import STACK_WIDTH, WIDTH, render_text
from heaptrace.render.stackcolumn import stack_column, wrap
from heaptrace.render.timeline import render_svg
from heaptrace.render.timeline import render_text as timeline_text
from tests.helpers.synth import Synth

SVG = "{http://www.w3.org/2000/svg}"
PROG, LIBC = "/usr/bin/app", "/usr/lib/x86_64-linux-gnu/libc.so.6"
STDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
# Demangled names as the symbolizer gives them for tests/programs/templates.cpp.
FILL = ("unsigned long heaptest::fill<heaptest::pools::Pool<heaptest::Block<4096ul>, 64ul> >"
        "(heaptest::pools::Pool<heaptest::Block<4096ul>, 64ul>&, int)")
GROW = "heaptest::pools::Pool<heaptest::Block<4096ul>, 64ul>::grow()"
VECTOR = "std::vector<char, std::allocator<char> >::reserve(unsigned long)"
NEW = "operator new(unsigned long)@cxx"


@pytest.mark.parametrize("name, levels", [
    (FILL, ["heaptest::fill<heaptest::pools::Pool<heaptest::Block<4096ul>, 64ul> >",
            "heaptest::fill<Pool<Block<4096ul>, 64ul> >", "heaptest::fill<…>",
            "heaptest::fill<…>"]),
    (GROW, ["heaptest::pools::Pool<heaptest::Block<4096ul>, 64ul>::grow",
            "Pool<Block<4096ul>, 64ul>::grow", "heaptest::pools::Pool<…>::grow",
            "Pool<…>::grow"]),
    ("operator new(unsigned long)", ["operator new"] * 4),
    ("std::basic_ostream<char, std::char_traits<char> >& std::operator<< "
     "<std::char_traits<char> >(std::basic_ostream<char, std::char_traits<char> >&, char const*)",
     ["std::operator<< <std::char_traits<char> >", "std::operator<< <char_traits<char> >",
      "std::operator<< <…>", "std::operator<< <…>"]),
    ("main::{lambda(int)#1}::operator()(int) const",
     ["main::{lambda(int)#1}::operator()", "{lambda(int)#1}::operator()",
      "main::{lambda(int)#1}::operator()", "{lambda(int)#1}::operator()"]),
    ("(anonymous namespace)::Worker::run() [clone .isra.0]",
     ["(anonymous namespace)::Worker::run", "Worker::run", "(anonymous namespace)::Worker::run",
      "Worker::run"]),
    ("decltype (a->b) f<int>(int)", ["f<int>", "f<int>", "f<…>", "f<…>"]),
    ("download_package.constprop.0", ["download_package.constprop.0"] * 4),
    ("a<b(", ["a<b("] * 4),  # not C++: as it is
])
def test_shorter_forms_of_cxx_names(name, levels):
    assert [shorten(name, level) for level in (1, 2, 3, 4)] == levels
    assert shorten(name, 0) == name


def test_standard_library_templates_are_not_the_programs_own_code():
    assert is_library_code(VECTOR) and is_library_code("void std::__cxx11::list<int>::f()")
    assert not is_library_code(GROW) and not is_library_code("stdio_thing()")
    assert not is_own(Frame(VECTOR, PROG)) and is_own(Frame(GROW, PROG))
    assert not is_own(Frame("buffer_append", "inlined"))  # perf's mark: module unknown
    assert not is_own(Frame("x", "[unknown]")) and not is_own(Frame("x", "/lib/libfoo.so.1"))


def row(names_root_first, shown, nbytes=1 << 20):
    return StackRow(" > ".join(names_root_first[i] for i in shown), list(names_root_first),
                    shown, nbytes, 0.5, 1)


def cxx_stack(pool: str, syscall: str = "mmap"):
    """Root first: _start ... main > fill > grow > operator new > malloc ... > syscall."""
    fill = FILL.replace("4096ul>, 64ul", pool)
    grow = GROW.replace("4096ul>, 64ul", pool)
    return ["_start", "__libc_start_main", "main", fill, grow, "operator new(unsigned long)",
            "malloc", "_int_malloc", "sysmalloc", syscall]


def test_long_cxx_names_are_shortened_and_no_own_frame_is_dropped():
    stack = cxx_stack("4096ul>, 64ul")
    lines = stack_column([row(stack, [2, 3, 4, 5, 9])], STACK_WIDTH)[0]
    assert lines == ["main > heaptest::fill<…> > Pool<…>::grow > operator new > mmap"]
    assert all(len(line) <= STACK_WIDTH for line in lines)


def test_different_stacks_never_print_the_same():
    """Two template instances (same names once shortened) and two thread starts whose
    stacks part below the program's only frame: each row says what tells it apart."""
    a, b = cxx_stack("4096ul>, 64ul"), cxx_stack("64ul>, 1024ul")
    columns = stack_column([row(a, [2, 3, 4, 5, 9]), row(b, [2, 3, 4, 5, 9])], STACK_WIDTH)
    assert columns[0] != columns[1]
    assert all(len(line) <= STACK_WIDTH for lines in columns for line in lines)
    spawn = ["_start", "main", "spawn", "pthread_create@@GLIBC_2.34"]
    t1 = spawn + ["allocate_stack", "mmap"]
    t2 = spawn + ["allocate_stack", "__mprotect", "mmap"]
    columns = stack_column([row(t1, [2, 3, 5]), row(t2, [2, 3, 6])], STACK_WIDTH)
    assert columns[0] != columns[1]
    assert columns == [["spawn > pthread_create@@GLIBC_2.34 > mmap"],
                       ["spawn > pthread_create@@GLIBC_2.34 > __mprotect > mmap"]]


def test_wrap_breaks_between_frames_and_keeps_the_end_of_a_giant_name():
    assert wrap(["aaaa", "bbbb", "cccc"], 12) == ["aaaa > bbbb", "> cccc"]
    assert wrap(["aaaa", "bbbb", "cccc"], 10) == ["aaaa", "> bbbb", "> cccc"]
    assert wrap(["x" * 30 + "tail"], 10) == ["…xxxxxtail"]
    assert wrap(["main", "y" * 30 + "tail"], 10) == ["main", "> …yyytail"]


def frames(*spec):
    """Leaf-first frames from names; "@lib" marks libc, "@cxx" libstdc++."""
    module = {"lib": LIBC, "cxx": STDCXX}
    return tuple(Frame(n.split("@")[0], module.get(n.partition("@")[2], PROG), 0x1000 + i)
                 for i, n in enumerate(spec))


@pytest.fixture
def cxx_recording(tmp_path):
    """A C++ program: two Pool instances and a vector, each growing memory; then freed."""
    s = Synth(str(tmp_path / "cxx.db"))
    s.process(1, "templates")
    stacks = {
        "large": frames("mmap@lib", "sysmalloc@lib", "malloc@lib", NEW, GROW, FILL, "main",
                        "__libc_start_main@lib", "_start"),
        "small": frames("mmap@lib", "sysmalloc@lib", "malloc@lib", NEW,
                        GROW.replace("4096ul>, 64ul", "64ul>, 1024ul"),
                        FILL.replace("4096ul>, 64ul", "64ul>, 1024ul"), "main",
                        "__libc_start_main@lib", "_start"),
        "vector": frames("mmap@lib", "malloc@lib", "operator new(unsigned long)@cxx",
                         "std::__new_allocator<char>::allocate(unsigned long, void const*)",
                         VECTOR, "heaptest::io::Buffer<char>::reserve(unsigned long)", "main",
                         "__libc_start_main@lib", "_start"),
    }
    for i, fr in enumerate(stacks.values()):
        sid = s.writer.add_stack((), fr, 1)
        s.writer.add_events([Event("mmap", (i + 1) << 20, s.ts(100 + 300 * i), 1, 1,
                                   ret=0x10000000 * (i + 1), length=(i + 1) << 20,
                                   stack_id=sid)])
    s.writer.set_meta(end_ns=s.ts(1200), command_line="templates")
    s.close()
    return Recording(str(tmp_path / "cxx.db"))


def test_report_keeps_the_programs_cxx_frames(cxx_recording):
    out = io.StringIO()
    report = build_report(cxx_recording)
    render_text(report, out)
    text = out.getvalue()
    stacks = text.split("\nStack quality")[0]
    assert all(len(line) <= WIDTH for line in stacks.splitlines()), text
    rows = [line for line in text.splitlines() if "MiB" in line and " > " in line]
    assert any("Buffer<char>::reserve" in r or "Buffer<…>::reserve" in r for r in rows)
    assert sum("Pool<" in r for r in rows) >= 4  # both instances, taken and held
    taken = rows[:3]
    assert len(set(taken)) == 3  # two Pool instances do not print the same
    # --json keeps the full names
    assert any(GROW in r.stack for r in report.growth.rows)


def test_timeline_growth_line_and_svg_titles_fit(cxx_recording):
    tl = timeline(cxx_recording, 0.25)
    out = io.StringIO()
    timeline_text(tl, out)
    growth = [line for line in out.getvalue().splitlines() if "most growth" in line]
    assert growth and len(growth[0]) <= 100 and "Buffer<" in growth[0] and "main" in growth[0]
    svg = io.StringIO()
    render_svg(tl, svg, width=600)
    doc = ET.fromstring(svg.getvalue())
    for key, px in (("title", 17), ("subtitle", 12), ("note", 12)):
        element = doc.find(f".//{SVG}text[@id='{key}']")
        shown, full = element.text or "", element.find(f"{SVG}title").text or ""
        assert len(shown) * px * 0.62 <= 600 - 40, (key, shown)
        assert shown == full or shown.endswith("…")
        if key != "note":
            assert full.startswith(shown.rstrip("…"))
    note = doc.find(f".//{SVG}text[@id='note']")
    assert note.text.endswith("…")
    assert "heaptest::io::Buffer<char>::reserve(unsigned long)" in note.find(f"{SVG}title").text


def test_compact_form_keeps_full_names_for_json():
    stack = frames("mmap@lib", "malloc@lib", "operator new(unsigned long)@cxx", GROW, "main")
    assert compact_stack(stack) == f"main > {GROW} > operator new(unsigned long) > mmap"
