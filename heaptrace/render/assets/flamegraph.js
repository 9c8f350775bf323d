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

	// A search term is a regular expression unless it is not one, or could freeze the tab:
	// the URL may come from anyone (?s=(.*.*)*$x backtracks for ever on a long name) and no
	// browser can stop a RegExp once it runs. Those are matched as plain text instead, and
	// so is a search still running after SEARCH_MS (checked between frames). A regular
	// expression only ever sees the first MAX_NAME characters of a name, which bounds the
	// work of the one unbounded repeat it may have.
	var SEARCH_MS = 200, MAX_NAME = 4096;

	function search(text) {
		clearHighlight();
		term = text;
		var risk = riskOf(text), re = null;
		if (risk === null) {
			try {
				re = new RegExp(text, ignorecase ? "i" : "");
			} catch (err) {
				risk = "not a regular expression";
			}
		}
		var hits = re ? scan(function (name) { return re.test(name.substring(0, MAX_NAME)); },
			SEARCH_MS) : null;
		if (hits === null) {
			risk = risk || "took too long as a regular expression";
			hits = scan(containing(text), Infinity);
		}
		searchBtn.classList.add("show");
		searchBtn.firstChild.nodeValue = "Reset Search";
		matchedText.firstChild.nodeValue = "Matched: " + matchedPercent(hits) + "%" +
			(re && !risk ? "" : " (as text: " + risk + ")");
	}

	function containing(text) {
		var needle = ignorecase ? text.toLowerCase() : text;
		return function (name) {
			return (ignorecase ? name.toLowerCase() : name).indexOf(needle) >= 0;
		};
	}

	// Highlight the frames `test` accepts and return those in view; or null, with nothing
	// highlighted, when that takes more than `budget` ms.
	function scan(test, budget) {
		var start = Date.now(), chosen = [];
		for (var i = 0; i < frames.length; i++) {
			if (test(frames[i].name)) chosen.push(frames[i]);
			if (Date.now() - start > budget) return null;
		}
		var hits = [];
		for (var j = 0; j < chosen.length; j++) {
			var f = chosen[j];
			f.rect.setAttribute("data-fill", f.rect.getAttribute("fill"));
			f.rect.setAttribute("fill", cfg.searchcolor);
			if (!f.g.classList.contains("hide")) hits.push(f);
		}
		return hits;
	}

	// Why a pattern could take too long as a regular expression, or null. A repeated group
	// that holds a repeat or an alternation ((a+)+, (.*)*, (a|ab)*) is exponential; a
	// backreference too; two unbounded repeats (a.*b.*c) take seconds on a name of 1000
	// characters and minutes on 4000. One unbounded repeat (x.*y) is fine.
	function riskOf(text) {
		var groups = [false], unbounded = 0;  // per open group: holds a repeat or a "|"
		for (var i = 0; i < text.length; i++) {
			var c = text[i], q = null;
			if (c === "\\") {
				if (/[1-9k]/.test(text.charAt(i + 1))) return "a backreference";
				i++;
				q = repeatAt(text, i + 1);
			} else if (c === "[") {
				while (i < text.length && text[i] !== "]") i += text[i] === "\\" ? 2 : 1;
				q = repeatAt(text, i + 1);
			} else if (c === "(") {
				groups.push(false);
				var prefix = /^\?(?:[:=!]|<[=!]|<[A-Za-z_$][\w$]*>)/.exec(text.substring(i + 1));
				if (prefix) i += prefix[0].length;
				continue;
			} else if (c === ")" && groups.length > 1) {
				var inner = groups.pop();
				q = repeatAt(text, i + 1);
				if (q && inner) return "a repeated group with a repeat or | inside";
				if (inner) groups[groups.length - 1] = true;
			} else if (c === "|") {
				groups[groups.length - 1] = true;
				continue;
			} else {
				q = repeatAt(text, i + 1);
			}
			if (q) {
				groups[groups.length - 1] = true;
				unbounded += q.unbounded;
				i += q.length;
				if (unbounded > 1) return "more than one unbounded repeat";
			}
		}
		return null;
	}

	// The repeat (*, +, ?, {n}, {n,}, {n,m}, maybe lazy) at text[i], if any; {n,m} with a
	// large m counts as unbounded.
	function repeatAt(text, i) {
		var m = /^(?:[*+?]|\{(\d+)(,(\d*))?\})\??/.exec(text.substring(i, i + 32));
		if (!m) return null;
		var open = m[0][0] === "*" || m[0][0] === "+" ||
			(m[2] !== undefined && (m[3] === "" || Number(m[3]) > 16));
		return {length: m[0].length, unbounded: open ? 1 : 0};
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
