"""Analyses over a recording: plain data in, plain data out, no I/O beyond the recording."""
