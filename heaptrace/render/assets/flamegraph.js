// Interaction for heaptrace's flame graph SVG (inserted verbatim by heaptrace/render/flamegraph.py).
// Every frame is <g data-x=OFFSET data-w=BYTES data-d=DEPTH><title>NAME (...)</title><rect/><text/></g>;
// positions are recomputed from those byte counts, so zooming is exact at any depth.
// Kept in the URL: x and d (the zoomed frame), s (the search), i=1 (ignore case).
"use strict";
(function () {
	var svg, framesBox, details, unzoomBtn, searchBtn, icBtn, matchedText;
	var cfg = {};
	var frames = [];        // [{g, rect, text, name, x, w, d}]
	var zoomed = null;      // the frame zoomed into, or null
	var term = null;        // the current search, or null
	var ignorecase = false;

	function init() {
		svg = document.documentElement;
		framesBox = document.getElementById("frames");
		details = document.getElementById("details").firstChild;
		unzoomBtn = document.getElementById("unzoom");
		searchBtn = document.getElementById("search");
		icBtn = document.getElementById("ignorecase");
		matchedText = document.getElementById("matched");
		readConfig();
		collectFrames();
		bindEvents();
		restoreState();
	}

	function readConfig() {
		cfg.xpad = parseFloat(svg.getAttribute("data-xpad"));
		cfg.fontsize = parseFloat(svg.getAttribute("data-fontsize"));
		cfg.fontwidth = parseFloat(svg.getAttribute("data-fontwidth"));
		cfg.searchcolor = svg.getAttribute("data-searchcolor");
		cfg.nametype = svg.getAttribute("data-nametype");
		cfg.width = parseFloat(svg.getAttribute("width"));
	}

	function frameName(g) {
		var title = g.querySelector("title").textContent;
		var cut = title.lastIndexOf(" (");
		return cut < 0 ? title : title.substring(0, cut);
	}

	function collectFrames() {
		var groups = framesBox.children;
		for (var i = 0; i < groups.length; i++) {
			var g = groups[i];
			frames.push({
				g: g, rect: g.querySelector("rect"), text: g.querySelector("text"),
				name: frameName(g), x: Number(g.getAttribute("data-x")),
				w: Number(g.getAttribute("data-w")), d: Number(g.getAttribute("data-d"))
			});
			g.heaptraceFrame = frames[frames.length - 1];
		}
	}

	function frameOf(node) {
		while (node && node.parentNode !== framesBox) node = node.parentNode;
		return node ? node.heaptraceFrame : null;
	}

	function bindEvents() {
		framesBox.addEventListener("mouseover", function (e) {
			var f = frameOf(e.target);
			if (f) details.nodeValue = cfg.nametype + " " + f.g.querySelector("title").textContent;
		});
		framesBox.addEventListener("mouseout", function () { details.nodeValue = " "; });
		framesBox.addEventListener("click", function (e) {
			var f = frameOf(e.target);
			if (f) { zoom(f); saveState(); }
		});
		unzoomBtn.addEventListener("click", function () { unzoom(); saveState(); });
		searchBtn.addEventListener("click", searchPrompt);
		icBtn.addEventListener("click", toggleIgnorecase);
		window.addEventListener("keydown", function (e) {
			if (e.key === "F3" || (e.ctrlKey && (e.key === "f" || e.key === "F"))) {
				e.preventDefault();
				searchPrompt();
			} else if (e.ctrlKey && (e.key === "i" || e.key === "I")) {
				e.preventDefault();
				toggleIgnorecase();
			}
		});
	}

	// --- drawing -------------------------------------------------------------------

	function label(name, width) {
		var chars = Math.floor((width - 3) / (cfg.fontsize * cfg.fontwidth));
		if (chars < 3) return "";
		return name.length <= chars ? name : name.substring(0, chars - 2) + "..";
	}

	function place(f, x, w) {
		f.rect.setAttribute("x", x.toFixed(1));
		f.rect.setAttribute("width", w.toFixed(1));
		f.text.setAttribute("x", (x + 3).toFixed(2));
		f.text.textContent = label(f.name, w);
	}

	// Draw the part of the graph under `top` across the whole width; its ancestors span
	// the width too, dimmed; everything else is hidden.
	function draw(top) {
		var inner = cfg.width - 2 * cfg.xpad;
		var scale = inner / top.w;
		for (var i = 0; i < frames.length; i++) {
			var f = frames[i];
			var inside = f.d >= top.d && f.x >= top.x && f.x + f.w <= top.x + top.w;
			var ancestor = f.d < top.d && f.x <= top.x && f.x + f.w >= top.x + top.w;
			f.g.classList.toggle("hide", !inside && !ancestor);
			f.g.classList.toggle("parent", ancestor);
			if (ancestor) place(f, cfg.xpad, inner);
			else if (inside) place(f, cfg.xpad + (f.x - top.x) * scale, f.w * scale);
		}
	}

	function zoom(f) {
		zoomed = f.d === 0 ? null : f;
		draw(f);
		unzoomBtn.classList.toggle("hide", zoomed === null);
		if (term !== null) search(term);
	}

	function unzoom() {
		if (frames.length) zoom(frames[0]);
	}

	// --- search --------------------------------------------------------------------

	function searchPrompt() {
		if (term !== null) {
			resetSearch();
			saveState();
			return;
		}
		var answer = prompt("Search frames (regular expression, e.g. ^malloc)" +
			(ignorecase ? ", ignoring case" : "") + "\nCtrl-I toggles case sensitivity", "");
		if (answer) { search(answer); saveState(); }
	}

	function toggleIgnorecase() {
		ignorecase = !ignorecase;
		icBtn.classList.toggle("show", ignorecase);
		if (term !== null) search(term);
		saveState();
	}

	function clearHighlight() {
		for (var i = 0; i < frames.length; i++) {
			var r = frames[i].rect;
			if (r.hasAttribute("data-fill")) {
				r.setAttribute("fill", r.getAttribute("data-fill"));
				r.removeAttribute("data-fill");
			}
		}
	}

	function resetSearch() {
		clearHighlight();
		term = null;
		searchBtn.classList.remove("show");
		searchBtn.firstChild.nodeValue = "Search";
		matchedText.firstChild.nodeValue = " ";
	}

	function search(text) {
		var re;
		try {
			re = new RegExp(text, ignorecase ? "i" : "");
		} catch (err) {
			matchedText.firstChild.nodeValue = "Invalid regular expression";
			return;
		}
		clearHighlight();
		term = text;
		var hits = [];
		for (var i = 0; i < frames.length; i++) {
			var f = frames[i];
			if (!re.test(f.name)) continue;
			f.rect.setAttribute("data-fill", f.rect.getAttribute("fill"));
			f.rect.setAttribute("fill", cfg.searchcolor);
			if (!f.g.classList.contains("hide")) hits.push(f);
		}
		searchBtn.classList.add("show");
		searchBtn.firstChild.nodeValue = "Reset Search";
		matchedText.firstChild.nodeValue = "Matched: " + matchedPercent(hits) + "%";
	}

	// Share of the frame in view covered by matching frames; a match inside another match
	// is not counted twice. Ancestors of the zoomed frame cover all of it.
	function matchedPercent(hits) {
		var top = zoomed || frames[0];
		var spans = hits.map(function (f) {
			return f.d < top.d ? [top.x, top.w] : [f.x, f.w];
		});
		spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
		var covered = 0, end = -1;
		for (var i = 0; i < spans.length; i++) {
			if (spans[i][0] >= end) {
				covered += spans[i][1];
				end = spans[i][0] + spans[i][1];
			}
		}
		var pct = top.w ? 100 * covered / top.w : 0;
		return pct === 100 ? "100" : pct.toFixed(1);
	}

	// --- state in the URL ---------------------------------------------------------

	function saveState() {
		var params = new URLSearchParams();
		if (zoomed) { params.set("x", zoomed.x); params.set("d", zoomed.d); }
		if (term !== null) params.set("s", term);
		if (ignorecase) params.set("i", "1");
		var query = params.toString();
		try {
			history.replaceState(null, "", query ? "?" + query : location.pathname);
		} catch (err) {
			// some viewers forbid changing the URL: the graph works without it
		}
	}

	function restoreState() {
		var params = new URLSearchParams(location.search);
		if (params.get("i") === "1") { ignorecase = true; icBtn.classList.add("show"); }
		var x = params.get("x"), d = params.get("d");
		for (var i = 0; x !== null && i < frames.length; i++) {
			if (String(frames[i].x) === x && String(frames[i].d) === d) { zoom(frames[i]); break; }
		}
		if (params.get("s")) search(params.get("s"));
	}

	window.addEventListener("load", init);
})();
