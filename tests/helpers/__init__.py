"""What the tests share: running the CLI, synthetic recordings, the strace oracle, the
compiled test programs, the captured stack fixtures and hand-built call-frame information,
pprof profiles read by protoc and go tool pprof, the speedscope app in Chromium.
Import it as `tests.helpers.NAME` from every tier."""
