"""Orchestrating a recording: start or attach the target, arm a backend, turn its records into rows,
finish the file whatever happens."""
