"""One exception tree for every error a user can cause; the CLI prints it as one line."""

from __future__ import annotations


class HeaptraceError(Exception):
    """A user-facing error: printed as one line on stderr, never as a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class RecordingError(HeaptraceError):
    """The recording file is missing, foreign, corrupt or from an incompatible version."""


class PrivilegeError(HeaptraceError):
    """Not allowed to load BPF programs."""


class BackendUnavailable(HeaptraceError):
    """No tracing backend can run here (bcc missing, no DTrace, unsupported OS)."""


class CommandNotFound(HeaptraceError):
    """The command to trace could not be executed."""

    exit_code = 127


class ImportFormatError(HeaptraceError):
    """An input file given to `heaptrace import` does not have the expected format."""

    def __init__(self, path: str, line: int, expected: str) -> None:
        super().__init__(f"{path}:{line}: {expected}" if line else f"{path}: {expected}")
        self.path = path
        self.line = line


class UsageError(HeaptraceError):
    """Options that contradict each other or name something that does not exist."""

    exit_code = 2
