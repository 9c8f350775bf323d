"""Python frames: CPython's own frame chain, read by the probe at each call, named in user
space (function, file, line) and merged into the native stacks."""
