"""flamegraph.pl's remaining options: --flamechart, --nametype, --fonttype, --bgcolors,
--cp, --random, --notes, and default titles that say what is shown. Checked on the built
data first, then in the SVG, then through the command line."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from importlib import resources

import pytest

from heaptrace.analysis.profiles import load_profile
from heaptrace.analysis.replay import DEFAULT_PAGE_SIZE as PAGE
from heaptrace.analysis.stacks import ChartRun, Selection, fold_chart
from heaptrace.errors import ImportFormatError, UsageError
from heaptrace.render.flamegraph import FlameOptions, build, default_title, frame_info, render
from heaptrace.render.folded import chart_lines
from heaptrace.render.palettes import (
    BACKGROUND_CHOICES,
    BACKGROUNDS,
    PALETTES,
    background,
    frame_color,
    read_palette_map,
    write_palette_map,
)
from tests.helpers.cli import heaptrace

SVG = "{http://www.w3.org/2000/svg}"
PROFILE = {("prog", "main", "load"): 3000, ("prog", "main", "parse"): 1000,
           ("gzip", "inflate"): 2000}


def svg_of(graph):
    out = io.StringIO()
    render(graph, out)
    return ET.fromstring(out.getvalue().encode("utf-8"))


def boxes(graph):
    """(name, depth, start, value) of the frames, left to right, top to bottom."""
    return sorted((f.name, f.depth, f.start, f.value) for f in graph.frames)


def fills(doc):
    return {g.find(SVG + "title").text.split(" (")[0]: g.find(SVG + "rect").get("fill")
            for g in doc.find(f"{SVG}g[@id='frames']")}


# --- --flamechart: the built data ----------------------------------------------------

def test_flame_chart_keeps_time_order_and_merges_only_neighbours():
    runs = [ChartRun(("a", "b"), 10), ChartRun(("a", "c"), 5), ChartRun(("a", "b"), 3),
            ChartRun(("x", "y"), 7)]
    chart = build(runs, FlameOptions(flamechart=True, minwidth="0"))
    assert boxes(chart) == sorted([("all", 0, 0, 25), ("a", 1, 0, 18), ("x", 1, 18, 7),
                                   ("y", 2, 18, 7), ("b", 2, 0, 10), ("c", 2, 10, 5),
                                   ("b", 2, 15, 3)])
    graph = build(fold_chart(runs), FlameOptions(minwidth="0"))
    assert ("b", 2, 0, 13) in boxes(graph)  # the flame graph merges both b's


def test_flame_chart_stack_ending_between_two_runs_splits_its_children():
    runs = [ChartRun(("a", "b"), 4), ChartRun(("a",), 2), ChartRun(("a", "b"), 4)]
    chart = build(runs, FlameOptions(flamechart=True, minwidth="0"))
    assert [(f.name, f.start, f.value) for f in chart.frames if f.depth == 2] == [
        ("b", 0, 4), ("b", 6, 4)]
    assert chart.frames[1].value == 10


def test_flame_chart_merges_adjacent_narrow_frames_where_they_are():
    runs = [ChartRun(("m", "big"), 1000)]
    runs += [ChartRun(("m", f"tiny{i}"), 1) for i in range(30)]
    runs += [ChartRun(("m", "big2"), 1000), ChartRun(("m", "tiny_alone"), 1)]
    chart = build(runs, FlameOptions(flamechart=True, width=120, minwidth="1"))
    merged = [(f.start, f.value, f.merged) for f in chart.frames if f.merged]
    assert merged == [(1000, 30, 30)]  # the lone one is too narrow even as a box
    assert chart.merged == 31
    assert [(f.name, f.start) for f in chart.frames if f.name.startswith("big")] == [
        ("big", 0), ("big2", 1030)]


def test_flame_chart_frames_say_when():
    runs = [ChartRun(("a", "b"), 4096, 0.5, 0.75), ChartRun(("a", "c"), 4096, 1.25, 1.25)]
    chart = build(runs, FlameOptions(flamechart=True))
    by_name = {f.name: f for f in chart.frames}
    assert by_name["a"].when == (0.5, 1.25)
    assert frame_info(by_name["b"], chart).endswith(", 50.00%, 0.500-0.750 s)")
    assert frame_info(by_name["c"], chart).endswith(", 50.00%, at 1.250 s)")


def test_flame_chart_of_a_profile_uses_its_order_and_reverse_applies():
    chart = build({("a", "z"): 1, ("a", "b"): 1}, FlameOptions(flamechart=True, reverse=True))
    assert [f.name for f in chart.frames if f.depth == 1] == ["z", "b"]
    with pytest.raises(UsageError, match="not a difference"):
        build({("a",): (1, 2)}, FlameOptions(flamechart=True))


def test_an_empty_flame_chart_says_so(synth):
    synth.open().close()
    for runs in ([], [ChartRun(("a",), 0)], load_profile(synth.writer.path, Selection(),
                                                          in_time_order=True).chart):
        doc = svg_of(build(runs, FlameOptions(flamechart=True)))
        assert "No stacks to show" in doc.find(f"{SVG}text[@id='message']").text


def test_chart_lines_merge_only_adjacent_identical_stacks():
    runs = [ChartRun(("a", "b"), 1), ChartRun(("a", "b;"), 2), ChartRun(("a", "c"), 0),
            ChartRun(("a", "b:"), 4), ChartRun(("a", "c"), 8), ChartRun(("a", "b"), 16)]
    # "b;" is cleaned to "b:" so those lines are one; "a;c 0" is left out
    assert list(chart_lines(runs)) == ["a;b 1", "a;b: 6", "a;c 8", "a;b 16"]


# --- --flamechart on a recording where time order matters ------------------------------

@pytest.fixture
def timed(synth):
    synth.process(1, "prog")
    synth.mmap(1, 0x10000, 4 * PAGE, stack=["main", "load"])
    synth.mmap(2, 0x20000, 1 * PAGE, stack=["main", "load"])
    synth.mmap(3, 0x30000, 2 * PAGE, stack=["main", "parse"])
    synth.mmap(4, 0x40000, 8 * PAGE, stack=["main", "load"])
    synth.munmap(5, 0x40000, 8 * PAGE)
    synth.brk(6, 0x601000, PAGE, stack=["main", "grow"])
    synth.open().close()
    return synth.writer.path


def test_growth_chart_follows_event_time(timed):
    profile = load_profile(timed, Selection(), in_time_order=True)
    assert [(r.stack[-1], r.value, r.first_s, r.last_s) for r in profile.chart] == [
        ("load", 5 * PAGE, 0.001, 0.002), ("parse", 2 * PAGE, 0.003, 0.003),
        ("load", 8 * PAGE, 0.004, 0.004), ("grow", PAGE, 0.006, 0.006)]
    assert profile.folded == fold_chart(profile.chart)
    assert profile.folded[("prog", "main", "load")] == 13 * PAGE


def test_retained_chart_is_in_allocation_order(timed):
    profile = load_profile(timed, Selection(), at="exit", in_time_order=True)
    assert [(r.stack[-1], r.value) for r in profile.chart] == [
        ("load", 5 * PAGE), ("parse", 2 * PAGE), ("grow", PAGE)]  # the third load was freed


def test_flamechart_command_line(timed):
    lines = heaptrace("flame", timed, "--flamechart", "--folded", check=True).stdout.splitlines()
    assert lines == [f"prog;main;load {5 * PAGE}", f"prog;main;parse {2 * PAGE}",
                     f"prog;main;load {8 * PAGE}", f"prog;main;grow {PAGE}"]
    doc = ET.fromstring(heaptrace("flame", timed, "--flamechart", check=True).stdout)
    loads = [g for g in doc.find(f"{SVG}g[@id='frames']")
             if g.find(SVG + "title").text.startswith("load (")]
    assert [int(g.get("data-x")) for g in loads] == [0, 7 * PAGE]
    assert doc.find(f"{SVG}text[@id='title']").text == "Memory Flame Chart"
    held = ET.fromstring(heaptrace("flame", timed, "--flamechart", "--retained", check=True).stdout)
    assert held.find(f"{SVG}text[@id='title']").text == "Bytes held at exit, in allocation order"


def test_flamechart_of_a_folded_file_keeps_its_line_order(tmp_path):
    path = tmp_path / "in.folded"
    path.write_text("a;b 10\na;c 5\na;b 3\n")
    chart = heaptrace("flame", str(path), "--flamechart", "--folded", check=True).stdout
    assert chart == path.read_text()
    assert heaptrace("flame", str(path), "--folded", check=True).stdout == "a;b 13\na;c 5\n"


# --- default titles ----------------------------------------------------------------------

@pytest.mark.parametrize("opts, profile, title", [
    (FlameOptions(), PROFILE, "Memory Flame Graph"),
    (FlameOptions(inverted=True), PROFILE, "Memory Icicle Graph"),
    (FlameOptions(flamechart=True), PROFILE, "Memory Flame Chart"),
    (FlameOptions(view="exit"), PROFILE, "Bytes held at exit"),
    (FlameOptions(view="peak", inverted=True), PROFILE, "Bytes held at peak"),
    (FlameOptions(view="peak", flamechart=True), PROFILE,
     "Bytes held at peak, in allocation order"),
    (FlameOptions(), {("a",): (1, 2)}, "Differential Memory Flame Graph: red grew, blue shrank"),
    (FlameOptions(view="exit"), {("a",): (1, 2)},
     "Bytes held at exit, before vs after: red grew, blue shrank"),
    (FlameOptions(view="peak", negate=True), {("a",): (0, 0)},
     "Bytes held at peak, before vs after: red grew, blue shrank (widths: before)"),
])
def test_default_title_says_what_is_shown(opts, profile, title):
    assert default_title(build(profile, opts)) == title


def test_an_explicit_title_wins_and_views_are_checked():
    doc = svg_of(build(PROFILE, FlameOptions(title="Mine", view="exit")))
    assert doc.find(f"{SVG}text[@id='title']").text == "Mine"
    with pytest.raises(UsageError, match="unknown view"):
        build(PROFILE, FlameOptions(view="later"))


def test_retained_and_diff_titles_through_the_command_line(timed, tmp_path):
    def title(*args):
        svg = ET.fromstring(heaptrace(*args, check=True).stdout)
        return svg.find(f"{SVG}text[@id='title']").text

    assert title("flame", timed, "--retained") == "Bytes held at exit"
    assert title("flame", timed, "--at", "peak") == "Bytes held at peak"
    assert title("diff", timed, timed, "--at", "peak").startswith("Bytes held at peak, before")
    assert title("diff", timed, timed).startswith("Differential Memory Flame Graph")


# --- --nametype, --fonttype, --notes -----------------------------------------------------

def test_nametype_fonttype_and_notes_reach_the_svg_escaped():
    opts = FlameOptions(nametype="Stack<&>:", fonttype='Courier "New"',
                        notes="heaptrace run -- ./grow --stream ]]> <script>")
    doc = svg_of(build(PROFILE, opts))
    assert doc.get("data-nametype") == "Stack<&>:"
    assert doc.get("font-family") == 'Courier "New", sans-serif'
    assert doc.find(f"{SVG}desc[@id='notes']").text == opts.notes
    assert len(doc.findall(f".//{SVG}script")) == 1
    css = resources.files("heaptrace.render").joinpath("assets", "flamegraph.css")
    assert "font-family" not in re.sub(r"/\*.*?\*/", "", css.read_text("utf-8"))  # CSS would win


def test_defaults_match_flamegraph_pl():
    doc = svg_of(build(PROFILE, FlameOptions()))
    assert doc.get("data-nametype") == "Function:"
    assert doc.get("font-family").startswith("Verdana")
    assert doc.find(f"{SVG}desc[@id='notes']").text is None


# --- --bgcolors ------------------------------------------------------------------------

def stops(doc):
    return [s.get("stop-color") for s in doc.iter(SVG + "stop")]


def test_bgcolors_choices_flat_colour_and_palette_defaults():
    for name in BACKGROUND_CHOICES:
        assert background(name, "mem") == BACKGROUNDS[name]
    assert background("#102030", "hot") == ("#102030", "#102030")
    # flamegraph.pl's defaults: mem green, io/wakeup/chain blue, plain grey, else yellow
    expected = {"mem": "green", "io": "blue", "chain": "blue", "red": "grey", "hot": "yellow",
                "java": "yellow"}
    for palette, name in expected.items():
        assert background("", palette) == BACKGROUNDS[name]
    for bad in ("pink", "#12345", "#1234567", "diff", "#gggggg"):
        with pytest.raises(UsageError, match="--bgcolors"):
            background(bad, "mem")


def test_bgcolors_in_the_built_graph_and_the_svg():
    graph = build(PROFILE, FlameOptions(bgcolors="blue", colors="hot"))
    assert graph.background == BACKGROUNDS["blue"] and stops(svg_of(graph)) == list(
        BACKGROUNDS["blue"])
    assert build({("a",): (1, 2)}, FlameOptions()).background == BACKGROUNDS["diff"]
    assert build({("a",): (1, 2)}, FlameOptions(bgcolors="#ffffff")).background == (
        "#ffffff", "#ffffff")
    bad = heaptrace("flame", "missing.db", "--bgcolors", "pink", check=False)
    assert bad.returncode == 2 and "--bgcolors" in bad.stderr  # checked before reading


# --- --random ----------------------------------------------------------------------------

def test_random_colours_follow_the_seed_one_colour_per_name():
    profile = {("main", f"fn{i}", "xmalloc"): 100 + i for i in range(20)}
    first = build(profile, FlameOptions(random_seed=1)).colors
    again = build(profile, FlameOptions(random_seed=1)).colors
    other = build(profile, FlameOptions(random_seed=2)).colors
    usual = build(profile, FlameOptions()).colors
    assert first == again and set(first) == set(usual)
    assert sum(first[n] != other[n] for n in first) >= 18
    assert sum(first[n] != usual[n] for n in first) >= 18
    for palette in PALETTES:  # still the palette's hues
        assert re.fullmatch(r"rgb\(\d+,\d+,\d+\)", frame_color("main", palette, seed=7))


def test_random_on_the_command_line_differs_between_runs(tmp_path):
    path = tmp_path / "in.folded"
    path.write_text("".join(f"main;fn{i} {i + 1}\n" for i in range(10)))
    runs = [fills(ET.fromstring(heaptrace("flame", str(path), "--random", check=True).stdout))
            for _ in range(2)]
    assert sum(runs[0][n] != runs[1][n] for n in runs[0]) >= 8


# --- --cp: the palette map -----------------------------------------------------------

def test_palette_map_round_trip_in_flamegraph_pl_format(tmp_path):
    file = tmp_path / "palette.map"
    path = str(file)
    assert read_palette_map(path) == {}
    colors = {"main": "rgb(1,2,3)", "Foo::operator->": "rgb(4,5,6)", "a\nb": "rgb(7,8,9)",
              "all": "#aabbcc"}
    write_palette_map(path, colors)
    text = file.read_text()
    assert text == "Foo::operator->->rgb(4,5,6)\nall->#aabbcc\nmain->rgb(1,2,3)\n"  # sorted
    assert read_palette_map(path) == {k: v for k, v in colors.items() if "\n" not in k}


def test_palette_map_errors_name_the_line(tmp_path):
    path = tmp_path / "palette.map"
    path.write_text("main->rgb(1,2,3)\n\nbroken line\n")
    with pytest.raises(ImportFormatError, match=r"palette.map:3: expected `name->rgb"):
        read_palette_map(str(path))


def test_pinned_colours_win_and_new_names_are_reported():
    graph = build(PROFILE, FlameOptions(palette_map={"main": "rgb(1,2,3)"}))
    assert graph.colors["main"] == "rgb(1,2,3)"
    assert graph.colors["load"] == frame_color("load")
    assert fills(svg_of(graph))["main"] == "rgb(1,2,3)"


def test_cp_keeps_colours_across_graphs_and_runs(tmp_path):
    first, second = tmp_path / "one.folded", tmp_path / "two.folded"
    first.write_text("main;load 10\nmain;parse 5\n")
    second.write_text("main;load 3\nmain;inflate 7\n")
    one = fills(ET.fromstring(
        heaptrace("flame", str(first), "--cp", cwd=tmp_path, check=True).stdout))
    pinned = read_palette_map(str(tmp_path / "palette.map"))
    assert pinned == one  # every drawn name, all included
    two = fills(ET.fromstring(heaptrace("flame", str(second), "--cp", "--colors", "hot",
                                        cwd=tmp_path, check=True).stdout))
    assert two["load"] == one["load"] and two["main"] == one["main"]
    assert two["inflate"] == frame_color("inflate", "hot")
    assert read_palette_map(str(tmp_path / "palette.map")) == {**one, **two}
    custom = tmp_path / "custom.map"
    heaptrace("flame", str(first), "--palette-map", str(custom), "--colors", "blue", check=True)
    assert read_palette_map(str(custom))["load"] == frame_color("load", "blue")
