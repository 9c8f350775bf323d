"""heaptrace: trace the syscalls through which a process takes memory from the kernel."""

__version__ = "0.1.0"
