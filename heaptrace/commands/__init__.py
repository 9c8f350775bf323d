"""One module per subcommand; each parses its options and calls one function."""

from heaptrace.commands.diff import diff
from heaptrace.commands.doctor import doctor
from heaptrace.commands.export import export_
from heaptrace.commands.flame import flame
from heaptrace.commands.histogram import histogram
from heaptrace.commands.import_ import import_
from heaptrace.commands.report import report
from heaptrace.commands.run import run
from heaptrace.commands.symbolize import symbolize
from heaptrace.commands.timeline import timeline

COMMANDS = [run, histogram, flame, diff, timeline, report, export_, import_, symbolize, doctor]
