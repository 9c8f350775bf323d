"""The flame graph's interaction in a real headless Chromium (Debian's `chromium`, driven
by Playwright): hover line, click to zoom, search with Matched %, case toggle, reset, and
the state kept in the URL. Screenshots go to $HEAPTRACE_SCREENSHOTS when it is set."""

from __future__ import annotations

import os
import re
from urllib.parse import quote

import pytest

from heaptrace.analysis.stacks import ChartRun
from heaptrace.render.flamegraph import XPAD, FlameOptions, build, render

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-component-update", "--disable-sync"]
WIDTH = 1000
PROFILE = {
    ("pkgin", "main", "pkg_install", "read_archive", "xmalloc", "malloc"): 6 << 20,
    ("pkgin", "main", "pkg_install", "extract_file", "XMALLOC_WRAPPER"): 2 << 20,
    ("pkgin", "main", "pkg_install", "a_function_with_a_rather_long_name_to_cut"): 1 << 19,
    ("pkgin", "main", "parse_args", "xmalloc"): 1 << 20,
    ("pkgin", "[no stack]"): 300_000,
    ("gzip", "main", "inflate", "zcalloc"): 3 << 20,
}


@pytest.fixture(scope="module")
def browser():
    assert os.path.exists(CHROMIUM), "install chromium: sudo scripts/setup-system.sh"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def graph_url(tmp_path):
    graph = build(PROFILE, FlameOptions(width=WIDTH, title="Browser test"))
    path = tmp_path / "graph.svg"
    with open(path, "w", encoding="utf-8") as f:
        render(graph, f)
    return f"file://{path}", graph


@pytest.fixture
def page(browser, graph_url):
    page = browser.new_page(viewport={"width": WIDTH + 20, "height": 260})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(graph_url[0])
    page.wait_for_function("document.getElementById('frames').children[0].heaptraceFrame")
    yield page
    page.close()
    assert errors == []


def frame(page, name):
    return page.locator("#frames > g").filter(
        has=page.locator("title", has_text=re.compile("^" + re.escape(name) + " \\("))).first


def rect(page, name):
    r = frame(page, name).locator("rect")
    return float(r.get_attribute("x")), float(r.get_attribute("width"))


def shot(page, name):
    folder = os.environ.get("HEAPTRACE_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


def matched_share(graph, pattern, flags=0, top=None):
    """What the page should say: the share of `top` covered by matching frames, nested
    matches counted once."""
    top = top or graph.frames[0]
    spans = sorted(((f.start, f.value) for f in graph.frames if f.depth >= top.depth
                    and top.start <= f.start < top.start + top.value
                    and re.search(pattern, f.name, flags)), key=lambda s: (s[0], -s[1]))
    covered, end = 0, -1
    for start, value in spans:
        if start >= end:
            covered, end = covered + value, start + value
    return f"Matched: {100 * covered / top.value:.1f}%"


def test_hover_shows_the_frame_line(page):
    frame(page, "pkg_install").hover()
    title = frame(page, "pkg_install").locator("title").text_content()
    assert page.locator("#details").text_content() == f"Function: {title}"
    assert re.fullmatch(r"pkg_install \([\d,]+ bytes, 8\.5 MiB, \d+\.\d\d%\)", title)
    shot(page, "hover")
    page.mouse.move(1, 1)
    assert page.locator("#details").text_content() == " "


def test_click_zooms_dims_ancestors_and_hides_the_rest(page, graph_url):
    graph = graph_url[1]
    long_name = "a_function_with_a_rather_long_name_to_cut"
    _, before_w = rect(page, long_name)
    before_label = frame(page, long_name).locator("text").text_content()
    frame(page, "pkg_install").click()
    assert rect(page, "pkg_install") == (XPAD, WIDTH - 2 * XPAD)
    assert frame(page, "main").get_attribute("class") == "parent"
    assert frame(page, "all").evaluate("g => getComputedStyle(g).opacity") == "0.5"
    assert not frame(page, "gzip").is_visible() and not frame(page, "parse_args").is_visible()
    top = next(f for f in graph.frames if f.name == "pkg_install")
    assert abs(rect(page, long_name)[1] - before_w * graph.total / top.value) < 0.2
    label = frame(page, long_name).locator("text").text_content()
    assert label.endswith("..") and len(label) > len(before_label)
    assert page.locator("#unzoom").is_visible()
    assert re.search(r"\?x=\d+&d=3$", page.url)
    shot(page, "zoomed")
    frame(page, long_name).click()
    assert frame(page, long_name).locator("text").text_content() == long_name


def test_search_highlights_and_reports_matched_share(page, graph_url):
    page.once("dialog", lambda d: d.accept("xmalloc"))
    page.keyboard.press("Control+f")
    graph = graph_url[1]
    assert page.locator("#matched").text_content() == matched_share(graph, "xmalloc")
    assert frame(page, "xmalloc").locator("rect").get_attribute("fill") == "rgb(230,0,230)"
    assert frame(page, "XMALLOC_WRAPPER").locator("rect").get_attribute("fill") != "rgb(230,0,230)"
    assert page.locator("#search").text_content() == "Reset Search"
    assert "s=xmalloc" in page.url
    page.keyboard.press("Control+i")  # case-insensitive: the wrapper matches now
    assert page.locator("#matched").text_content() == matched_share(graph, "xmalloc", re.I)
    assert frame(page, "XMALLOC_WRAPPER").locator("rect").get_attribute("fill") == "rgb(230,0,230)"
    assert "i=1" in page.url
    shot(page, "search")
    page.locator("#search").click()  # Reset Search
    assert page.locator("#matched").text_content() == " "
    assert frame(page, "xmalloc").locator("rect").get_attribute("fill") != "rgb(230,0,230)"
    assert "s=" not in page.url


def test_search_while_zoomed_counts_what_is_in_view(page, graph_url):
    graph = graph_url[1]
    frame(page, "pkg_install").click()
    page.once("dialog", lambda d: d.accept("^(xmalloc|extract_file)$"))
    page.keyboard.press("F3")
    top = next(f for f in graph.frames if f.name == "pkg_install")
    expected = matched_share(graph, "^(xmalloc|extract_file)$", top=top)
    assert page.locator("#matched").text_content() == expected
    page.locator("#unzoom").click()
    assert frame(page, "gzip").is_visible() and not page.locator("#unzoom").is_visible()
    assert rect(page, "all") == (XPAD, WIDTH - 2 * XPAD)
    assert page.locator("#matched").text_content() == matched_share(
        graph, "^(xmalloc|extract_file)$")
    assert "x=" not in page.url and "s=" in page.url
    shot(page, "reset")


def test_zoom_and_search_come_back_from_the_url(browser, page):
    frame(page, "inflate").click()
    page.once("dialog", lambda d: d.accept("z.*c"))
    page.locator("#search").click()
    url, matched = page.url, page.locator("#matched").text_content()
    again = browser.new_page(viewport={"width": WIDTH + 20, "height": 260})
    again.goto(url)
    again.wait_for_function("document.getElementById('matched').textContent.trim() !== ''")
    assert again.locator("#matched").text_content() == matched
    assert rect(again, "inflate") == (XPAD, WIDTH - 2 * XPAD)
    assert not frame(again, "pkgin").is_visible()
    shot(again, "from-url")
    again.close()


def test_an_invalid_regex_is_searched_as_text(page, graph_url):
    page.once("dialog", lambda d: d.accept("[no stack"))
    page.keyboard.press("Control+f")
    share = matched_share(graph_url[1], re.escape("[no stack"))
    assert page.locator("#matched").text_content() == (
        f"{share} (as text: not a regular expression)")
    assert frame(page, "[no stack]").locator("rect").get_attribute("fill") == "rgb(230,0,230)"


def hostile_graph(tmp_path, names, name="hostile.svg"):
    """A graph of frames with long names, the kind that makes a backtracking RegExp run
    for ever: `a` repeated, never followed by what the pattern wants."""
    profile = {("main", n): 1 << 20 for n in names}
    path = tmp_path / name
    with open(path, "w", encoding="utf-8") as f:
        render(build(profile, FlameOptions(width=WIDTH)), f)
    return f"file://{path}"


def test_a_catastrophic_search_in_the_url_cannot_freeze_the_tab(browser, tmp_path):
    url = hostile_graph(tmp_path, ["a" * 3000])
    for pattern, why in (("(.*.*)*$x", "more than one unbounded repeat"),
                         ("(a|aa)*$x", "a repeated group with a repeat or | inside"),
                         ("(a)\\1*x", "a backreference")):
        page = browser.new_page(viewport={"width": WIDTH + 20, "height": 200})
        page.goto(f"{url}?s={quote(pattern)}", timeout=20000)  # before: never loaded
        assert page.locator("#matched").text_content() == f"Matched: 0.0% (as text: {why})"
        page.close()


def test_a_search_that_runs_too_long_is_finished_as_text(browser, tmp_path):
    # One unbounded repeat is allowed, but a.*b costs the square of a name's length: over
    # 200 names of 4000 characters the time bound ends it and the text search takes over.
    url = hostile_graph(tmp_path, [f"{i:03d}" + "a" * 4000 for i in range(200)])
    page = browser.new_page(viewport={"width": WIDTH + 20, "height": 200})
    page.goto(f"{url}?s=a.*b", timeout=20000)
    assert page.locator("#matched").text_content() == (
        "Matched: 0.0% (as text: took too long as a regular expression)")
    page.close()


def test_flame_chart_font_and_name_type_in_the_page(browser, tmp_path):
    """A flame chart has same-named siblings: zooming into the second keeps the first
    hidden, and the URL brings back the same one. --fonttype must beat the stylesheet,
    --nametype starts the mouse-over line."""
    runs = [ChartRun(("main", "load"), 4 << 20, 0.1, 0.2), ChartRun(("main", "parse"), 1 << 20),
            ChartRun(("main", "load"), 2 << 20, 0.4, 0.4)]
    opts = FlameOptions(width=WIDTH, flamechart=True, fonttype="DejaVu Sans Mono",
                        nametype="Frame:", bgcolors="#ffffff")
    path = tmp_path / "chart.svg"
    with open(path, "w", encoding="utf-8") as f:
        render(build(runs, opts), f)
    page = browser.new_page(viewport={"width": WIDTH + 20, "height": 200})
    page.goto(f"file://{path}")
    page.wait_for_function("document.getElementById('frames').children[0].heaptraceFrame")
    loads = page.locator("#frames > g").filter(has=page.locator("title", has_text="load ("))
    assert loads.count() == 2
    font = loads.nth(0).locator("text").evaluate("t => getComputedStyle(t).fontFamily")
    assert font.startswith('"DejaVu Sans Mono"')
    loads.nth(1).hover()
    assert page.locator("#details").text_content().startswith("Frame: load (2,097,152 bytes")
    assert page.locator("#details").text_content().endswith(", at 0.400 s)")
    loads.nth(1).click()
    assert not loads.nth(0).is_visible() and not frame(page, "parse").is_visible()
    box = loads.nth(1).locator("rect")
    assert (float(box.get_attribute("x")), float(box.get_attribute("width"))) == (
        XPAD, WIDTH - 2 * XPAD)
    shot(page, "flamechart-zoomed")
    again = browser.new_page(viewport={"width": WIDTH + 20, "height": 200})
    again.goto(page.url)
    again.wait_for_function("!document.getElementById('unzoom').classList.contains('hide')")
    shown = again.locator("#frames > g").filter(has=again.locator("title", has_text="load ("))
    assert [shown.nth(i).is_visible() for i in range(2)] == [False, True]
    again.close()
    page.close()
