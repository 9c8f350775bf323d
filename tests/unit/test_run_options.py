"""`heaptrace run` options that need no tracing: the printed BPF program, bad options."""

from __future__ import annotations

from tests.helpers.cli import heaptrace


def run(*args):
    return heaptrace("run", *args)


def test_ebpf_prints_the_program_with_its_settings():
    proc = run("--ebpf", "--events", "brk,munmap", "--unwind", "fp")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "#define KIND_MASK 5" in lines  # brk (bit 0) and munmap (bit 2)
    assert "#define STACK_BYTES 0" in lines and "#define USER_STACK_MAP 1" in lines
    assert "RAW_TRACEPOINT_PROBE(sys_exit)" in proc.stdout


def test_bad_event_kind_and_sizes_are_one_line_usage_errors():
    proc = run("--events", "brk,malloc", "--", "true")
    assert proc.returncode == 2 and "expected a comma list of brk, mmap" in proc.stderr
    proc = run("--ebpf", "--stack-bytes", "1000")
    assert proc.returncode == 2
    assert proc.stderr == "heaptrace: error: --stack-bytes must be a power of two, not 1000\n"
    proc = run("--ebpf", "--buffer-mib", "48")
    assert proc.returncode == 2
    assert proc.stderr == "heaptrace: error: --buffer-mib must be a power of two, not 48\n"
    proc = run("--ebpf", "--buffer-mib", "0")
    assert proc.returncode == 2 and "--buffer-mib must be a power of two, not 0" in proc.stderr


def test_duration_needs_a_pid():
    proc = run("--duration", "5", "--", "true")
    assert proc.returncode == 2
    assert proc.stderr == ("heaptrace: error: --duration applies to --pid: a command is traced "
                           "until it exits\n")
    proc = run("--pid", "1", "--duration", "0")
    assert proc.returncode == 2 and "--duration" in proc.stderr
    assert "must be more than 0 seconds" in proc.stderr


def test_a_debug_among_the_commands_arguments_is_the_commands():
    proc = run("--pid", "1", "--", "prog", "--debug")
    assert proc.returncode == 2
    assert proc.stderr == ("heaptrace: error: give either a command to run (after --) or "
                           "--pid PID\n")
    proc = heaptrace("--debug", "run", "--pid", "1", "--", "prog")
    assert proc.returncode == 1 and "Traceback" in proc.stderr  # heaptrace's own --debug


def test_either_a_command_or_a_pid():
    proc = run()
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("give either a command to run (after --) or --pid PID")
