"""`heaptrace export`: a recording as a pprof profile or a speedscope file."""

from __future__ import annotations

import os

import click

from heaptrace.analysis.samples import load_samples
from heaptrace.commands.graph_options import SELECTION, apply, moment, selection
from heaptrace.recording import DEFAULT_PATH
from heaptrace.render.export import FORMATS, WITH_LINES, export
from heaptrace.render.terminal import printable


@click.command(name="export")
@click.argument("fmt", metavar="pprof|speedscope", type=click.Choice(FORMATS))
@click.argument("file", default=DEFAULT_PATH, required=False)
@apply(SELECTION)
@click.option("-o", "--output", default="-", show_default=True, metavar="OUT",
              type=click.Path(dir_okay=False, allow_dash=True),
              help="The file to write (-: stdout).")
def export_(fmt: str, file: str, kind: str, retained: bool, at: str, pid: int,
            start_s: float, end_s: float, process_names: bool, output: str) -> None:
    """Write FILE (default heaptrace.db) for the tools people already use: pprof's
    profile.proto (go tool pprof, Pyroscope, Parca, Grafana) or speedscope's JSON.

    \b
      heaptrace export pprof -o growth.pb.gz        go tool pprof -top growth.pb.gz
      heaptrace export pprof --event mmap -o mmap.pb.gz
      heaptrace export pprof --at peak -o peak.pb.gz     what was held at the peak
      heaptrace export speedscope -o growth.speedscope.json   then: speedscope FILE
    """
    samples = load_samples(file, selection(kind, pid, start_s, end_s, process_names),
                           moment(retained, at), lines=fmt in WITH_LINES)
    export(fmt, samples, f"{os.path.basename(file)}: {samples.description}", output)
    if output != "-":
        click.echo(printable(f"Wrote {output}: {len(samples.samples):,} samples, "
                             f"{samples.description}"),
                   err=True)
