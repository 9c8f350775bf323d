"""One module per subcommand; each parses its options and calls one function."""

from heaptrace.commands.doctor import doctor
from heaptrace.commands.histogram import histogram
from heaptrace.commands.import_ import import_
from heaptrace.commands.run import run

COMMANDS = [run, histogram, import_, doctor]
