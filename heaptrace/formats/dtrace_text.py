"""Lines of DTrace's own output that both the aggregation importer and the per-event script's
parser read: a quantize() table as dtrace prints it at exit."""

from __future__ import annotations

import re

_A = re.ASCII
BLANK = re.compile(r"^\s*$", _A)
QUANTIZE_HEADER = re.compile(r"^\s*value\s+-+ Distribution -+\s+count\s*$", _A)
QUANTIZE_ROW = re.compile(r"^\s*(-?\d+) [ @]*\|[ @]* (-?\d+)\s*$", _A)
