"""The flame graph: layout data first, then the SVG (well-formed, escaped, golden)."""

from __future__ import annotations

import io
import os
import re
import time
import xml.etree.ElementTree as ET
from importlib import resources

import pytest

from heaptrace.render.flamegraph import (
    XPAD,
    FlameOptions,
    build,
    fit_label,
    frame_info,
    render,
)
from heaptrace.render.palettes import PALETTES, diff_color, frame_color
from heaptrace.render.svg import escape

SVG = "{http://www.w3.org/2000/svg}"
GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "flame", "small.svg")
PROFILE = {
    ("prog", "main", "load", "xmalloc"): 3 << 20,
    ("prog", "main", "load", "parse"): 1 << 20,
    ("prog", "main", "std::vector<std::pair<int, char&>>::push_back"): 12345,
    ("prog", "[no stack]"): 4096,
    ("gzip", "main", "inflate"): 2 << 20,
}


def children(graph, parent):
    return [f for f in graph.frames if f.depth == parent.depth + 1
            and parent.start <= f.start < parent.start + parent.value]


def test_widths_add_up_and_siblings_do_not_overlap():
    graph = build(PROFILE, FlameOptions())
    root = graph.frames[0]
    assert (root.name, root.value, graph.total) == ("all", sum(PROFILE.values()), root.value)
    for frame in graph.frames:
        kids = sorted(children(graph, frame), key=lambda f: f.start)
        assert sum(k.value for k in kids) <= frame.value
        for a, b in zip(kids, kids[1:]):
            assert a.start + a.value <= b.start
        assert all(k.start + k.value <= frame.start + frame.value for k in kids)
    leaves = [f for f in graph.frames if not children(graph, f)]
    assert sum(f.value for f in leaves) == graph.total  # nothing merged at this size


def test_siblings_in_name_order_like_flamegraph_pl():
    graph = build(PROFILE, FlameOptions())
    roots = sorted((f for f in graph.frames if f.depth == 1), key=lambda f: f.start)
    assert [f.name for f in roots] == ["gzip", "prog"]


def test_narrow_frames_are_merged_and_said_so():
    profile = {("main", "big"): 10**9}
    profile.update({("main", f"tiny{i}"): 10_000 for i in range(500)})
    graph = build(profile, FlameOptions(minwidth="1"))
    merged = [f for f in graph.frames if f.merged]
    assert graph.merged == 500
    assert len(merged) == 1 and merged[0].value == 500 * 10_000
    assert len(graph.frames) == 4  # all, main, big, the merged box
    assert "500 frames narrower than 1 px" in render_text(graph)


def test_minwidth_as_percentage():
    profile = {("a",): 990, ("b",): 10}
    assert [f.name for f in build(profile, FlameOptions(minwidth="2%")).frames] == ["all", "a"]
    assert len(build(profile, FlameOptions(minwidth="0.5%")).frames) == 3


def test_reverse_makes_leaves_roots():
    graph = build({("main", "leaf"): 5}, FlameOptions(reverse=True))
    assert [(f.depth, f.name) for f in graph.frames] == [(0, "all"), (1, "leaf"), (2, "main")]


def test_inverted_puts_the_root_on_top():
    ys = {}
    for inverted in (False, True):
        doc = parse(render_text(build(PROFILE, FlameOptions(inverted=inverted))))
        ys[inverted] = {int(g.get("data-d")): float(g.find(SVG + "rect").get("y"))
                        for g in frame_groups(doc)}
    assert ys[False][0] > ys[False][1] and ys[True][0] < ys[True][1]


def test_differential_deltas_colours_and_negate():
    pairs = {("main", "grew"): (100, 300), ("main", "shrank"): (400, 100),
             ("main", "gone"): (50, 0)}
    graph = build(pairs, FlameOptions())
    by_name = {f.name: f for f in graph.frames}
    # Both directions: each stack as wide as its larger side, what went away included.
    assert by_name["grew"].value == 300 and by_name["grew"].delta == 200
    assert by_name["shrank"].value == 400 and by_name["shrank"].delta == -300
    assert by_name["gone"].value == 50 and by_name["gone"].delta == -50
    assert by_name["main"].value == 750 and by_name["main"].delta == 400 - 550
    assert graph.total == 750
    assert diff_color(200, 300).startswith("rgb(255,") and diff_color(-300, 300) == "rgb(0,0,255)"
    negated = {f.name: f for f in build(pairs, FlameOptions(negate=True)).frames}
    assert negated["gone"].value == 50 and negated["gone"].delta == -50
    assert negated["grew"].value == 100 and negated["shrank"].value == 400
    assert "before 100, after 300 bytes: +200 bytes" in frame_info(by_name["grew"], graph)
    assert "before 50, after 0 bytes: -50 bytes" in frame_info(by_name["gone"], graph)


def test_frame_info_has_exact_and_human_bytes_and_percent():
    graph = build(PROFILE, FlameOptions())
    load = next(f for f in graph.frames if f.name == "load")
    assert frame_info(load, graph) == (
        f"load ({4 << 20:,} bytes, 4.0 MiB, {100 * (4 << 20) / graph.total:.2f}%)")
    other = build(PROFILE, FlameOptions(countname="samples"))
    assert frame_info(other.frames[0], other).endswith(" samples, 100.00%)")


def test_labels_are_cut_with_two_dots():
    opts = FlameOptions()
    char = opts.fontsize * opts.fontwidth
    assert fit_label("pkg_install", 3 + 20 * char, opts) == "pkg_install"
    assert fit_label("pkg_install", 3 + 6 * char, opts) == "pkg_.."
    assert fit_label("pkg_install", 3 + 2 * char, opts) == ""


# --- the SVG -------------------------------------------------------------------------

def render_text(graph):
    out = io.StringIO()
    render(graph, out)
    return out.getvalue()


def parse(text):
    return ET.fromstring(text.encode("utf-8"))


def frame_groups(doc):
    return list(doc.find(f"{SVG}g[@id='frames']"))


def test_svg_is_well_formed_and_pixel_widths_follow_bytes():
    opts = FlameOptions(width=900)
    doc = parse(render_text(build(PROFILE, opts)))
    groups = frame_groups(doc)
    total = int(groups[0].get("data-w"))
    for g in groups:
        rect = g.find(SVG + "rect")
        expected = int(g.get("data-w")) * (opts.width - 2 * XPAD) / total
        assert abs(float(rect.get("width")) - expected) <= 0.05 + 1e-9
        assert g.find(SVG + "title").text.startswith((g.find(SVG + "text").text or "").rstrip("."))
    assert float(groups[0].find(SVG + "rect").get("width")) == opts.width - 2 * XPAD


HOSTILE = ["operator<<(std::ostream&, Foo<Bar> const&)", '"quoted" & \'single\'',
           "</title><script>alert(1)</script>", "]]><!--", "ctrl\x01\x1b[31m", "lone\ud800",
           "{{js}}", "name (with parens)"]


def test_hostile_names_are_escaped():
    profile = {("main", name): 100 + i for i, name in enumerate(HOSTILE)}
    text = render_text(build(profile, FlameOptions(title="<T&>", subtitle="a<b")))
    doc = parse(text)
    titles = {g.find(SVG + "title").text for g in frame_groups(doc)}
    for name in HOSTILE[:4] + HOSTILE[6:]:
        assert any(t.startswith(name + " (") for t in titles), name
    assert len(doc.findall(f".//{SVG}script")) == 1
    assert doc.find(f"{SVG}text[@id='title']").text == "<T&>"
    assert text.count("heaptrace's flame graph SVG") == 2  # the js and css, once each


def test_escape_keeps_xml_valid():
    assert escape('<a & "b">') == "&lt;a &amp; &quot;b&quot;&gt;"
    assert escape("x\x00y\ud800") == "x\ufffdy\ufffd"


def test_empty_selection_gives_a_valid_svg_saying_so():
    graph = build({}, FlameOptions())
    doc = parse(render_text(graph))
    assert frame_groups(doc) == []
    assert "No stacks to show" in doc.find(f"{SVG}text[@id='message']").text
    assert build({("a",): 0}, FlameOptions()).message


@pytest.mark.parametrize("name", ["flamegraph.js", "flamegraph.css"])
def test_assets_cannot_end_their_cdata_section(name):
    text = resources.files("heaptrace.render").joinpath("assets", name).read_text("utf-8")
    assert "]]>" not in text and "{{" not in text


def test_every_palette_gives_rgb():
    for palette in PALETTES:
        for use_hash in (False, True):
            color = frame_color("java/lang/Thread.run_[j]", palette, use_hash)
            assert all(0 <= int(c) <= 255 for c in re.findall(r"\d+", color))
    assert frame_color("main") == frame_color("main")


def test_golden_small_svg():
    """The whole document for one small profile; regenerate with HEAPTRACE_GOLDEN=1 after
    a deliberate change, and look at the diff."""
    text = render_text(build(PROFILE, FlameOptions(title="Golden", subtitle="small profile")))
    if os.environ.get("HEAPTRACE_GOLDEN"):
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w", encoding="utf-8") as f:
            f.write(text)
    with open(GOLDEN, encoding="utf-8") as f:
        assert text == f.read()


def test_100k_unique_stacks_render_in_seconds():
    profile = {(f"proc{i % 7}", "main", f"mod{i % 97}", f"fn{i % 1009}", f"leaf{i}"): 4096 + i
               for i in range(100_000)}
    began = time.perf_counter()
    graph = build(profile, FlameOptions())
    text = render_text(graph)
    elapsed = time.perf_counter() - began
    assert elapsed < 20, elapsed
    assert graph.merged > 0 and "narrower than 0.1 px" in text
    assert len(text) < 30_000_000
    assert len(frame_groups(parse(text))) == len(graph.frames)
